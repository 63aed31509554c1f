//! Data: file formats, the embedded MNIST-10k digits, a synthetic teacher-student set,
//! standardisation and seeded mini-batching.
//!
//! A [`Dataset`] holds features `X` (`N × d`), targets `Y` (`N × C`: one-hot rows for
//! classification, real values for regression) and, for classification, the class index of
//! every row. A [`Split`] is a train/test pair.
//!
//! | source | function |
//! |---|---|
//! | the 10,000 embedded MNIST digits (first 8,000 train / last 2,000 test) | [`mnist_embedded`], [`mnist_embedded_split`] |
//! | a directory of IDX files (MNIST, Fashion-MNIST, KMNIST) or NPY files | [`load_dir`] |
//! | a deterministic teacher-student regression problem | [`teacher_student`] |
//!
//! File readers ([`idx`], [`npy`]) never panic on bad files: a wrong magic number, truncated
//! data, a label count that differs from the image count, NaN or infinity in an NPY array, an
//! unsupported dtype or Fortran order give an [`Error::Format`](crate::Error::Format) naming
//! the file and the problem, in one line of bounded length (long dimension lists and header
//! texts are cut, control characters escaped). No allocation is sized by what a header
//! claims before the file is known to hold that much: a header claiming 2³¹ rows in a small
//! file is refused, not allocated (the property tests in `tests/fuzz_readers/` check this
//! with a counting allocator).

mod batch;
mod dataset;
mod dir;
pub mod idx;
mod mnist;
pub mod npy;
mod standardize;
mod synthetic;

pub use batch::Batcher;
pub use dataset::{Dataset, Split, one_hot};
pub use dir::{IDX_FILES, NPY_FILES, SampleShape, load_dir, load_dir_with_shape};
pub use mnist::{
    MNIST10K_IMAGES_GZ, MNIST10K_IMAGES_SHA256, MNIST10K_LABELS_GZ, MNIST10K_LABELS_SHA256,
    MNIST10K_LEN, mnist_embedded, mnist_embedded_split,
};
pub use standardize::Standardizer;
pub use synthetic::{TeacherStudent, teacher_student, try_teacher_student};

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: into a temporary file in the same directory, flushed
/// to disk (`fsync`), then renamed over `path`, so a crash never leaves a half-written file
/// and an existing file is replaced only by a complete one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let io = |e| crate::Error::io(path, e);
    let name = path.file_name().ok_or_else(|| {
        crate::Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads a whole file, mapping failures to [`Error::Io`](crate::Error::Io) naming the file.
pub(crate) fn read_file(path: &Path) -> crate::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| crate::Error::io(path, e))
}

/// Groups the digits of `n` in threes (`10000` → `"10,000"`) for messages.
pub(crate) fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Dimensions for a message: `[60000, 28, 28]`, or, past [`DIMS_SHOWN`] of them, the first
/// ones and a count (`[1, 2, 3, 4, 5, 6, … (255 dimensions)]`), so that a header of many
/// dimensions cannot make a message long.
pub(crate) fn dims_text(dims: &[usize]) -> String {
    let shown: Vec<String> = dims
        .iter()
        .take(DIMS_SHOWN)
        .map(|d| d.to_string())
        .collect();
    if dims.len() <= DIMS_SHOWN {
        format!("[{}]", shown.join(", "))
    } else {
        format!("[{}, … ({} dimensions)]", shown.join(", "), dims.len())
    }
}

/// Most dimensions [`dims_text`] lists.
pub(crate) const DIMS_SHOWN: usize = 6;

/// Text taken from a file, made fit for a one-line message: control characters (newlines
/// included) written as escapes, and at most `max` characters kept, with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dims_text_caps_the_list() {
        assert_eq!(super::dims_text(&[]), "[]");
        assert_eq!(super::dims_text(&[60000, 28, 28]), "[60000, 28, 28]");
        let many: Vec<usize> = (1..=255).collect();
        assert_eq!(
            super::dims_text(&many),
            "[1, 2, 3, 4, 5, 6, … (255 dimensions)]"
        );
    }

    #[test]
    fn excerpt_escapes_and_cuts() {
        assert_eq!(super::excerpt("a\nb\tc", 10), "a\\nb\\tc");
        assert_eq!(super::excerpt("abcdef", 3), "abc…");
        assert_eq!(super::excerpt("\u{85}x", 10), "\\u{85}x");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
