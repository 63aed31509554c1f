//! [`load_dir`]: a train/test split from a directory of IDX or NPY files.

use super::idx::read_idx;
use super::mnist::{check_idx_pair, idx_images_labels};
use super::npy::{self, Dtype};
use super::{Dataset, Split, dims_text, read_file, thousands};
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
/// `t10k-labels-idx1-ubyte`, each plain or `.gz`, never both) or the four NPY files
/// `x_train.npy`, `y_train.npy`, `x_test.npy`, `y_test.npy` (if both sets are complete, the
/// IDX files are used).
///
/// - IDX: images (`N × …`) are flattened to `N × d` and scaled to `[0, 1]` (`v / 255`);
///   labels become one-hot targets with `C` = one more than the largest label of either part.
/// - NPY `x`: 1-D (`N` samples of one feature) or `N × …` (flattened). `uint8` features are
///   image pixels and are scaled to `[0, 1]` (`v / 255`), as IDX images are; `float32` and
///   `float64` features are used as they are. Features of any other integer dtype are refused
///   rather than guessed at (a `uint16` image wants `/ 65535`, a count wants no scaling):
///   convert them to floats, scaled as intended, with `x.astype(np.float32)`.
/// - NPY `y`: integer labels of shape `(N,)` or `(N, 1)` become one-hot targets
///   (classification, `C` as for IDX); other targets `(N,)` or `(N, C)` (floats, or integers
///   of width `C > 1`) are regression targets with their values unscaled, except that when
///   every row of both parts is exactly one-hot the set is read as classification with those
///   labels.
///
/// Widths are checked before any matrix is built, so a part of no samples whose header
/// claims a huge row width costs nothing.
///
/// # Errors
/// [`Error::Format`] naming the directory when it is missing or does not hold either set of
/// four files (the message names the missing ones), naming both files when an IDX file is
/// present both plain and as `.gz`, and naming the offending file for any bad file (see
/// [`idx::parse_idx`](super::idx::parse_idx) and [`npy::parse_npy`](super::npy::parse_npy)),
/// integer features other than `uint8`, a label count that differs from the image count, row
/// counts of `x` and `y` that differ, train and test widths that differ, samples of no
/// features or targets of no outputs, negative labels, or an empty training set.
pub fn load_dir<T: Real>(dir: &Path) -> Result<Split<T>> {
    load_dir_with_shape(dir).map(|(split, _)| split)
}

/// The shape of one sample's features as the files store it, outermost first, without the
/// sample dimension: IDX images `[H, W]`, NPY `x` of shape `(N, C, H, W)` gives `[C, H, W]`,
/// `(N, D)` gives `[D]`, `(N,)` gives `[]`. Features are flattened row-major in this order
/// (index `(c·H + h)·W + w`), so a network of layers can read them back as images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleShape {
    /// Per-sample dimensions of the training features.
    pub train: Vec<usize>,
    /// Per-sample dimensions of the test features (same product as `train`).
    pub test: Vec<usize>,
}

impl SampleShape {
    /// The features as a `C × H × W` image: `[]` is `1×1×1`, `[D]` is `D×1×1`, `[H, W]` is
    /// `1×H×W` (one channel), `[C, H, W]` as it is; `None` for more dimensions or when train
    /// and test shapes differ.
    pub fn image(&self) -> Option<(usize, usize, usize)> {
        if self.train != self.test {
            return None;
        }
        match self.train[..] {
            [] => Some((1, 1, 1)),
            [d] => Some((d, 1, 1)),
            [h, w] => Some((1, h, w)),
            [c, h, w] => Some((c, h, w)),
            _ => None,
        }
    }
}

/// [`load_dir`], also returning the [`SampleShape`] of the features.
///
/// # Errors
/// As [`load_dir`].
pub fn load_dir_with_shape<T: Real>(dir: &Path) -> Result<(Split<T>, SampleShape)> {
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
    let mut idx: Vec<Option<PathBuf>> = Vec::with_capacity(IDX_FILES.len());
    for name in IDX_FILES {
        let plain = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        if plain.is_file() && gz.is_file() {
            return Err(Error::format(
                &plain,
                format!(
                    "both this file and {} exist; remove one (which of them is meant is not \
                     guessed)",
                    gz.display()
                ),
            ));
        }
        idx.push([plain, gz].into_iter().find(|p| p.is_file()));
    }
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

/// Refuses a row width of zero (`what`: "features", "outputs").
fn check_width_nonzero(d: usize, what: &str, shape: &[usize], path: &Path) -> Result<()> {
    if d == 0 {
        return Err(Error::format(
            path,
            format!("has 0 {what} per sample (shape {})", dims_text(shape)),
        ));
    }
    Ok(())
}

fn load_idx<T: Real>(p: &[PathBuf]) -> Result<(Split<T>, SampleShape)> {
    let arrays = p.iter().map(|p| read_idx(p)).collect::<Result<Vec<_>>>()?;
    let shape = SampleShape {
        train: arrays[0].dims.get(1..).unwrap_or_default().to_vec(),
        test: arrays[2].dims.get(1..).unwrap_or_default().to_vec(),
    };
    let (n_tr, d_tr) = check_idx_pair(&arrays[0], &p[0], &arrays[1], &p[1])?;
    let (_, d_te) = check_idx_pair(&arrays[2], &p[2], &arrays[3], &p[3])?;
    check_nonempty(n_tr, &p[0])?;
    check_widths(d_tr, d_te, "pixels", &p[0], &p[2])?;
    let (x_tr, l_tr) = idx_images_labels::<T>(&arrays[0], &p[0], &arrays[1], &p[1])?;
    let (x_te, l_te) = idx_images_labels::<T>(&arrays[2], &p[2], &arrays[3], &p[3])?;
    let c = 1 + l_tr.iter().chain(&l_te).max().map_or(0, |&m| m as usize);
    let split = Split {
        train: Dataset::classification(x_tr, l_tr, c)?,
        test: Dataset::classification(x_te, l_te, c)?,
    };
    Ok((split, shape))
}

/// A row-major `n × d` table read from an NPY file, not yet a matrix (widths are checked
/// first, so that no matrix is built for a width that a header merely claims).
struct Table<T> {
    n: usize,
    d: usize,
    /// Per-sample dimensions (features only; empty for targets).
    dims: Vec<usize>,
    data: Vec<T>,
}

impl<T: Real> Table<T> {
    fn into_mat(self) -> Mat<T> {
        let (d, data) = (self.d, self.data);
        Mat::from_fn(self.n, d, |i, j| data[i * d + j])
    }
}

/// Features from an NPY file: `N × d` (trailing dimensions flattened); `uint8` scaled by
/// `1/255`, floats as they are, other integer dtypes refused.
fn npy_features<T: Real>(path: &Path) -> Result<Table<T>> {
    let bytes = read_file(path)?;
    let h = npy::parse_header(&bytes, path)?;
    if !h.dtype.is_float() && h.dtype != Dtype::U8 {
        return Err(Error::format(
            path,
            format!(
                "features of dtype {} are not guessed at: uint8 is read as pixels scaled by \
                 1/255, float32 and float64 as they are; save them as floats, scaled as \
                 intended (x.astype(np.float32))",
                h.dtype
            ),
        ));
    }
    let arr = npy::parse_npy::<T>(&bytes, path)?;
    if arr.shape.is_empty() {
        return Err(Error::format(
            path,
            "features must have at least one dimension (samples), found a 0-d scalar",
        ));
    }
    let n = arr.shape[0];
    // Cannot overflow: the reader checks every partial product of the shape.
    let d: usize = arr.shape[1..].iter().product();
    check_width_nonzero(d, "features", &arr.shape, path)?;
    let mut data = arr.data;
    if h.dtype == Dtype::U8 {
        for v in &mut data {
            *v = T::from_f64(v.to_f64() / 255.0);
        }
    }
    let dims = arr.shape[1..].to_vec();
    Ok(Table { n, d, dims, data })
}

/// Targets from an NPY file.
enum Targets<T> {
    Labels(Vec<i64>),
    Values(Table<T>),
}

impl<T> Targets<T> {
    fn len(&self) -> usize {
        match self {
            Targets::Labels(l) => l.len(),
            Targets::Values(t) => t.n,
        }
    }
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
                     shape {}",
                    dims_text(&arr.shape)
                ),
            ));
        }
    };
    check_width_nonzero(c, "outputs", &arr.shape, path)?;
    Ok(Targets::Values(Table {
        n,
        d: c,
        dims: Vec::new(),
        data: arr.data,
    }))
}

/// The labels of `y` if every row is exactly one-hot.
fn one_hot_labels<T: Real>(y: &Table<T>) -> Option<Vec<i64>> {
    if y.d < 2 {
        return None;
    }
    let (zero, one) = (T::zero_impl(), T::one_impl());
    y.data
        .chunks_exact(y.d)
        .map(|row| {
            let mut hot = None;
            for (j, &v) in row.iter().enumerate() {
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

fn load_npy<T: Real>(p: &[PathBuf]) -> Result<(Split<T>, SampleShape)> {
    let x_tr = npy_features::<T>(&p[0])?;
    let y_tr = npy_targets::<T>(&p[1])?;
    let x_te = npy_features::<T>(&p[2])?;
    let y_te = npy_targets::<T>(&p[3])?;
    let shape = SampleShape {
        train: x_tr.dims.clone(),
        test: x_te.dims.clone(),
    };
    load_npy_tables(p, x_tr, y_tr, x_te, y_te).map(|split| (split, shape))
}

fn load_npy_tables<T: Real>(
    p: &[PathBuf],
    x_tr: Table<T>,
    y_tr: Targets<T>,
    x_te: Table<T>,
    y_te: Targets<T>,
) -> Result<Split<T>> {
    check_nonempty(x_tr.n, &p[0])?;
    check_widths(x_tr.d, x_te.d, "features", &p[0], &p[2])?;
    for (x, y, xp, yp) in [(&x_tr, &y_tr, &p[0], &p[1]), (&x_te, &y_te, &p[2], &p[3])] {
        if y.len() != x.n {
            return Err(Error::format(
                yp,
                format!(
                    "has {} targets but {} has {} samples",
                    thousands(y.len()),
                    xp.display(),
                    thousands(x.n)
                ),
            ));
        }
    }
    let to_u32 = |l: Vec<i64>| l.into_iter().map(|v| v as u32).collect::<Vec<u32>>();
    match (y_tr, y_te) {
        (Targets::Labels(a), Targets::Labels(b)) => {
            let c = n_classes([(&a, &p[1]), (&b, &p[3])])?;
            Ok(Split {
                train: Dataset::classification(x_tr.into_mat(), to_u32(a), c)?,
                test: Dataset::classification(x_te.into_mat(), to_u32(b), c)?,
            })
        }
        (Targets::Values(a), Targets::Values(b)) => {
            check_widths(a.d, b.d, "outputs", &p[1], &p[3])?;
            if let (Some(la), Some(lb)) = (one_hot_labels(&a), one_hot_labels(&b)) {
                let c = a.d;
                return Ok(Split {
                    train: Dataset::classification(x_tr.into_mat(), to_u32(la), c)?,
                    test: Dataset::classification(x_te.into_mat(), to_u32(lb), c)?,
                });
            }
            Ok(Split {
                train: Dataset::regression(x_tr.into_mat(), a.into_mat())?,
                test: Dataset::regression(x_te.into_mat(), b.into_mat())?,
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
