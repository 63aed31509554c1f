//! [`Dataset`], [`Split`] and one-hot encoding.

use crate::{Error, Real, Result};
use faer::Mat;

/// A supervised data set: features `x` (`N × d`), targets `y` (`N × C`) and, for
/// classification, the class index of every row.
///
/// For classification `y` holds one-hot rows (`y[n, c] = 1` if `c = labels[n]`, else `0`); for
/// regression `y` holds real-valued targets and `labels` is `None`.
#[derive(Clone, Debug)]
pub struct Dataset<T> {
    /// Features, one sample per row (`N × d`).
    pub x: Mat<T>,
    /// Targets, one sample per row (`N × C`).
    pub y: Mat<T>,
    /// The class index of every row when the set is a classification set.
    pub labels: Option<Vec<u32>>,
}

/// A train/test pair of data sets with the same feature and output widths.
#[derive(Clone, Debug)]
pub struct Split<T> {
    /// The training set.
    pub train: Dataset<T>,
    /// The test set.
    pub test: Dataset<T>,
}

/// One-hot targets: an `N × n_classes` matrix with `1` at `(n, labels[n])` and `0` elsewhere.
///
/// # Panics
/// If a label is `≥ n_classes`.
#[track_caller]
pub fn one_hot<T: Real>(labels: &[u32], n_classes: usize) -> Mat<T> {
    if let Some((n, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= n_classes)
    {
        panic!("one_hot: label {l} of row {n} is not below n_classes = {n_classes}");
    }
    let mut y = Mat::<T>::zeros(labels.len(), n_classes);
    for (n, &l) in labels.iter().enumerate() {
        y[(n, l as usize)] = T::one_impl();
    }
    y
}

impl<T: Real> Dataset<T> {
    /// A classification set from features and class indices, with one-hot targets of width
    /// `n_classes`.
    ///
    /// # Errors
    /// [`Error::Data`] if `labels.len() != x.nrows()` or a label is `≥ n_classes`.
    pub fn classification(x: Mat<T>, labels: Vec<u32>, n_classes: usize) -> Result<Self> {
        if labels.len() != x.nrows() {
            return Err(Error::data(format!(
                "{} labels for {} feature rows",
                labels.len(),
                x.nrows()
            )));
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= n_classes) {
            return Err(Error::data(format!(
                "label {l} is out of range for {n_classes} classes"
            )));
        }
        let y = one_hot(&labels, n_classes);
        Ok(Self {
            x,
            y,
            labels: Some(labels),
        })
    }

    /// A regression set from features and targets.
    ///
    /// # Errors
    /// [`Error::Data`] if `x` and `y` have different numbers of rows.
    pub fn regression(x: Mat<T>, y: Mat<T>) -> Result<Self> {
        if x.nrows() != y.nrows() {
            return Err(Error::data(format!(
                "{} feature rows but {} target rows",
                x.nrows(),
                y.nrows()
            )));
        }
        Ok(Self { x, y, labels: None })
    }

    /// Number of samples `N`.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// Whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feature width `d`.
    pub fn n_features(&self) -> usize {
        self.x.ncols()
    }

    /// Target width `C` (the number of classes for classification).
    pub fn n_outputs(&self) -> usize {
        self.y.ncols()
    }

    /// Whether the set carries class labels (one-hot targets).
    pub fn is_classification(&self) -> bool {
        self.labels.is_some()
    }

    /// The rows `rows` gathered in the order given (repeats allowed).
    ///
    /// # Panics
    /// If a row index is `≥ N`.
    #[track_caller]
    pub fn subset(&self, rows: &[usize]) -> Dataset<T> {
        let n = self.len();
        if let Some(&r) = rows.iter().find(|&&r| r >= n) {
            panic!("Dataset::subset: row {r} out of range for a set of {n} rows");
        }
        let gather = |m: &Mat<T>| Mat::from_fn(rows.len(), m.ncols(), |i, j| m[(rows[i], j)]);
        Dataset {
            x: gather(&self.x),
            y: gather(&self.y),
            labels: self
                .labels
                .as_ref()
                .map(|l| rows.iter().map(|&r| l[r]).collect()),
        }
    }

    /// The first `min(n, N)` rows (for example a fixed probe subset).
    pub fn head(&self, n: usize) -> Dataset<T> {
        let n = n.min(self.len());
        Dataset {
            x: self.x.subrows(0, n).to_owned(),
            y: self.y.subrows(0, n).to_owned(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
        }
    }
}
