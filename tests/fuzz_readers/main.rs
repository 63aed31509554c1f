//! Bad bytes never crash the data readers.
//!
//! Property tests (fixed seeds, bounded case counts) feed the IDX reader (plain and gzip),
//! the NPY reader (format versions 1.0, 2.0 and 3.0) and `load_dir` over a temporary
//! directory with arbitrary bytes, with valid files mutated (bit flips, truncations in every
//! region, header fields set to huge values, dimensions whose product overflows) and with
//! gzip streams that decompress to far more than the file's size. Each reader runs inside
//! the test, so a panic fails it, and under a counting allocator ([`alloc`]), so an
//! allocation sized by a header's claim before the file is known to hold that much fails it.
//! Every error must be one line that names the file.

#[path = "../common/mod.rs"]
mod common;

mod alloc;
mod dir;
mod idx;
mod npy;

use itlin::Error;
use proptest::test_runner::TestCaseError;

#[global_allocator]
static WATCH: alloc::Watch = alloc::Watch;

/// The most memory a reader may hold at once, and the largest single request it may make,
/// while reading the small files of these tests (a few kilobytes, or a few hundred for the
/// gzip streams).
pub const BOUND: usize = 64 << 20;

/// The longest message allowed, not counting the file paths in it.
pub const MAX_MESSAGE: usize = 300;

/// Fails unless `stats` stays within `bound` bytes (peak and largest single request).
pub fn check_memory(stats: alloc::Stats, bound: usize, what: &str) -> Result<(), TestCaseError> {
    if stats.peak > bound || stats.largest > bound {
        return Err(TestCaseError::fail(format!(
            "{what}: peak {} bytes, largest request {} bytes; bound {bound}",
            stats.peak, stats.largest
        )));
    }
    Ok(())
}

/// Fails unless `e` is a format or I/O error whose message is one short line naming `file`
/// (`file` is removed from the message before its length is measured).
pub fn check_error(e: &Error, file: &str) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    let fail = |why: &str| Err(TestCaseError::fail(format!("{why}: {msg:?}")));
    if !matches!(e, Error::Format { .. } | Error::Io { .. }) {
        return fail("not a Format or Io error");
    }
    if msg.contains('\n') || msg.contains('\r') {
        return fail("not one line");
    }
    if !msg.contains(file) {
        return fail(&format!("does not name {file}"));
    }
    let rest = msg.replace(file, "");
    if rest.chars().count() > MAX_MESSAGE {
        return fail(&format!("longer than {MAX_MESSAGE} characters"));
    }
    if rest.chars().any(|c| c.is_control()) {
        return fail("holds a control character");
    }
    Ok(())
}

/// `check_error` as a plain assertion, for the deterministic tests.
#[track_caller]
pub fn assert_error(e: &Error, file: &str) {
    if let Err(f) = check_error(e, file) {
        panic!("{f}");
    }
}

/// gzip-compresses `bytes` as one member.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}
