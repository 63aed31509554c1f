//! [`load_dir`]: a train/test split from a directory of IDX or NPY files.

use super::idx::read_idx;
use super::mnist::idx_images_labels;
use super::npy::{self, Dtype};
use super::{Dataset, Split, read_file, thousands};
use crate::{Error, Real, Result};
use faer::Mat;
use std::path::{Path, PathBuf};

/// The four standard IDX names (each may carry a `.gz` suffix).
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
/// The four NPY names.
pub const NPY_FILES: [&str; 4] = ["x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"];

/// Largest number of classes accepted from integer labels.
const MAX_CLASSES: usize = 1 << 16;

/// Loads a train/test split from a directory holding either the four standard IDX files
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each plain or `.gz`; a plain file is preferred when both exist)
/// or the four NPY files `x_train.npy`, `y_train.npy`, `x_test.npy`, `y_test.npy` (if both
/// sets are complete, the IDX files are used).
///
/// - IDX: images (`N × …`) are flattened to `N × d` and scaled to `[0, 1]`; labels become
///   one-hot targets with `C` = one more than the largest label of either part.
/// - NPY `x`: 1-D (`N` samples of one feature) or `N × …` (flattened), of any supported
///   dtype; `uint8` is scaled to `[0, 1]`, other types are converted unscaled.
/// - NPY `y`: integer labels of shape `(N,)` or `(N, 1)` become one-hot targets
///   (classification, `C` as for IDX); float targets `(N,)` or `(N, C)` are regression
///   targets, except that when every row of both parts is exactly one-hot the set is read as
///   classification with those labels.
///
/// # Errors
/// [`Error::Format`] naming the directory when it is missing or does not hold either set of
/// four files (the message names the missing ones), and naming the offending file for any bad
/// file (see [`idx::parse_idx`](super::idx::parse_idx) and
/// [`npy::parse_npy`](super::npy::parse_npy)), a label count that differs from the image
/// count, row counts of `x` and `y` that differ, train and test widths that differ, negative
/// labels, or an empty training set.
pub fn load_dir<T: Real>(dir: &Path) -> Result<Split<T>> {
    let expected = || {
        format!(
            "expected the four IDX files {} (each optionally .gz) or the four NPY files {}",
            IDX_FILES.join(", "),
            NPY_FILES.join(", ")
        )
    };
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a directory"
        } else {
            "no such directory"
        };
        return Err(Error::format(dir, format!("{what}; {}", expected())));
    }
    let idx: Vec<Option<PathBuf>> = IDX_FILES
        .iter()
        .map(|name| {
            let plain = dir.join(name);
            let gz = dir.join(format!("{name}.gz"));
            [plain, gz].into_iter().find(|p| p.is_file())
        })
        .collect();
    let npy: Vec<Option<PathBuf>> = NPY_FILES
        .iter()
        .map(|name| Some(dir.join(name)).filter(|p| p.is_file()))
        .collect();
    let n_idx = idx.iter().flatten().count();
    let n_npy = npy.iter().flatten().count();
    if n_idx == 4 {
        let p: Vec<PathBuf> = idx.into_iter().flatten().collect();
        return load_idx(&p);
    }
    if n_npy == 4 {
        let p: Vec<PathBuf> = npy.into_iter().flatten().collect();
        return load_npy(&p);
    }
    let missing: Vec<String> = if n_idx >= n_npy && n_idx > 0 {
        IDX_FILES
            .iter()
            .zip(&idx)
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| format!("{n}[.gz]"))
            .collect()
    } else if n_npy > 0 {
        NPY_FILES
            .iter()
            .zip(&npy)
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n.to_string())
            .collect()
    } else {
        return Err(Error::format(
            dir,
            format!("holds no data files; {}", expected()),
        ));
    };
    Err(Error::format(
        dir,
        format!("missing {}; {}", missing.join(", "), expected()),
    ))
}

/// One more than the largest label of both parts, checked.
fn n_classes(labels: [(&[i64], &Path); 2]) -> Result<usize> {
    let mut c = 0usize;
    for (l, path) in labels {
        if let Some((i, &v)) = l.iter().enumerate().find(|&(_, &v)| v < 0) {
            return Err(Error::format(
                path,
                format!("negative label {v} at index {i}"),
            ));
        }
        if let Some(&m) = l.iter().max() {
            if m as u64 >= MAX_CLASSES as u64 {
                return Err(Error::format(
                    path,
                    format!(
                        "label {m} is too large for one-hot targets (at most {} classes)",
                        thousands(MAX_CLASSES)
                    ),
                ));
            }
            c = c.max(m as usize + 1);
        }
    }
    Ok(c)
}

fn check_widths(
    train: usize,
    test: usize,
    what: &str,
    train_p: &Path,
    test_p: &Path,
) -> Result<()> {
    if train != test {
        return Err(Error::format(
            test_p,
            format!(
                "has {test} {what} per sample but {} has {train}",
                train_p.display()
            ),
        ));
    }
    Ok(())
}

fn check_nonempty(n: usize, path: &Path) -> Result<()> {
    if n == 0 {
        return Err(Error::format(path, "holds no samples"));
    }
    Ok(())
}

fn load_idx<T: Real>(p: &[PathBuf]) -> Result<Split<T>> {
    let arrays = p.iter().map(|p| read_idx(p)).collect::<Result<Vec<_>>>()?;
    let (x_tr, l_tr) = idx_images_labels::<T>(&arrays[0], &p[0], &arrays[1], &p[1])?;
    let (x_te, l_te) = idx_images_labels::<T>(&arrays[2], &p[2], &arrays[3], &p[3])?;
    check_nonempty(x_tr.nrows(), &p[0])?;
    check_widths(x_tr.ncols(), x_te.ncols(), "pixels", &p[0], &p[2])?;
    let c = 1 + l_tr.iter().chain(&l_te).max().map_or(0, |&m| m as usize);
    Ok(Split {
        train: Dataset::classification(x_tr, l_tr, c)?,
        test: Dataset::classification(x_te, l_te, c)?,
    })
}

/// Features from an NPY file: `N × d` (trailing dimensions flattened), `uint8` scaled.
fn npy_features<T: Real>(path: &Path) -> Result<Mat<T>> {
    let bytes = read_file(path)?;
    let h = npy::parse_header(&bytes, path)?;
    let arr = npy::parse_npy::<T>(&bytes, path)?;
    if arr.shape.is_empty() {
        return Err(Error::format(
            path,
            "features must have at least one dimension (samples), found a 0-d scalar",
        ));
    }
    let n = arr.shape[0];
    let d: usize = arr.shape[1..].iter().product();
    let scale = if h.dtype == Dtype::U8 { 255.0 } else { 1.0 };
    let data = &arr.data;
    Ok(Mat::from_fn(n, d, |i, j| {
        let v = data[i * d + j];
        if scale == 1.0 {
            v
        } else {
            T::from_f64(v.to_f64() / scale)
        }
    }))
}

/// Targets from an NPY file.
enum Targets<T> {
    Labels(Vec<i64>),
    Values(Mat<T>),
}

fn npy_targets<T: Real>(path: &Path) -> Result<Targets<T>> {
    let bytes = read_file(path)?;
    let h = npy::parse_header(&bytes, path)?;
    let is_col = h.shape.len() == 2 && h.shape[1] == 1;
    if !h.dtype.is_float() && (h.shape.len() == 1 || is_col) {
        return Ok(Targets::Labels(npy::parse_npy_labels(&bytes, path)?.data));
    }
    let arr = npy::parse_npy::<T>(&bytes, path)?;
    let (n, c) = match arr.shape[..] {
        [n] => (n, 1),
        [n, c] => (n, c),
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "targets must be 1-D labels or values, or 2-D (samples × outputs); found \
                     shape {:?}",
                    arr.shape
                ),
            ));
        }
    };
    Ok(Targets::Values(Mat::from_fn(n, c, |i, j| {
        arr.data[i * c + j]
    })))
}

/// The labels of `y` if every row is exactly one-hot.
fn one_hot_labels<T: Real>(y: &Mat<T>) -> Option<Vec<i64>> {
    if y.ncols() < 2 {
        return None;
    }
    let (zero, one) = (T::zero_impl(), T::one_impl());
    (0..y.nrows())
        .map(|i| {
            let mut hot = None;
            for j in 0..y.ncols() {
                let v = y[(i, j)];
                if v == one && hot.is_none() {
                    hot = Some(j as i64);
                } else if v != zero {
                    return None;
                }
            }
            hot
        })
        .collect()
}

fn load_npy<T: Real>(p: &[PathBuf]) -> Result<Split<T>> {
    let x_tr = npy_features::<T>(&p[0])?;
    let y_tr = npy_targets::<T>(&p[1])?;
    let x_te = npy_features::<T>(&p[2])?;
    let y_te = npy_targets::<T>(&p[3])?;
    check_nonempty(x_tr.nrows(), &p[0])?;
    check_widths(x_tr.ncols(), x_te.ncols(), "features", &p[0], &p[2])?;
    for (x, y, xp, yp) in [(&x_tr, &y_tr, &p[0], &p[1]), (&x_te, &y_te, &p[2], &p[3])] {
        let ny = match y {
            Targets::Labels(l) => l.len(),
            Targets::Values(m) => m.nrows(),
        };
        if ny != x.nrows() {
            return Err(Error::format(
                yp,
                format!(
                    "has {} targets but {} has {} samples",
                    thousands(ny),
                    xp.display(),
                    thousands(x.nrows())
                ),
            ));
        }
    }
    let to_u32 = |l: Vec<i64>| l.into_iter().map(|v| v as u32).collect::<Vec<u32>>();
    match (y_tr, y_te) {
        (Targets::Labels(a), Targets::Labels(b)) => {
            let c = n_classes([(&a, &p[1]), (&b, &p[3])])?;
            Ok(Split {
                train: Dataset::classification(x_tr, to_u32(a), c)?,
                test: Dataset::classification(x_te, to_u32(b), c)?,
            })
        }
        (Targets::Values(a), Targets::Values(b)) => {
            check_widths(a.ncols(), b.ncols(), "outputs", &p[1], &p[3])?;
            if let (Some(la), Some(lb)) = (one_hot_labels(&a), one_hot_labels(&b)) {
                let c = a.ncols();
                return Ok(Split {
                    train: Dataset::classification(x_tr, to_u32(la), c)?,
                    test: Dataset::classification(x_te, to_u32(lb), c)?,
                });
            }
            Ok(Split {
                train: Dataset::regression(x_tr, a)?,
                test: Dataset::regression(x_te, b)?,
            })
        }
        (a, _) => {
            let kind = |labels: bool| {
                if labels {
                    "integer labels"
                } else {
                    "float targets"
                }
            };
            let train_labels = matches!(a, Targets::Labels(_));
            Err(Error::format(
                &p[3],
                format!(
                    "holds {} but {} holds {}; both must be labels or both targets",
                    kind(!train_labels),
                    p[1].display(),
                    kind(train_labels)
                ),
            ))
        }
    }
}
