//! The data and state types shared by the trainer and its inner steps: [`DataRef`] (a
//! borrowed data set) and [`TrainState`] (everything that evolves during training).

use super::metrics::Timings;
use super::optim::OptState;
use crate::data::{Batcher, Dataset};
use crate::{Error, Real, Result};
use faer::MatRef;

/// A borrowed supervised data set: features `x` (`N × d`), targets `y` (`N × C`, one-hot rows
/// for classification) and, for classification, the class of each row.
#[derive(Clone, Copy, Debug)]
pub struct DataRef<'a, T> {
    /// Features, `N × d`.
    pub x: MatRef<'a, T>,
    /// Targets, `N × C`.
    pub y: MatRef<'a, T>,
    /// Class labels (length `N`) when the task is classification.
    pub labels: Option<&'a [u32]>,
}

impl<'a, T: Real> DataRef<'a, T> {
    /// A view of `x`, `y` and optional labels.
    pub fn new(x: MatRef<'a, T>, y: MatRef<'a, T>, labels: Option<&'a [u32]>) -> Self {
        Self { x, y, labels }
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.x.nrows() == 0
    }

    pub(crate) fn check(&self, what: &str, d: usize, c: usize) -> Result<()> {
        if self.x.ncols() != d {
            return Err(Error::data(format!(
                "{what} data has {} features per row but the model takes {d} inputs; change --arch to start with {}",
                self.x.ncols(),
                self.x.ncols()
            )));
        }
        if self.y.ncols() != c {
            return Err(Error::data(format!(
                "{what} data has {} targets per row but the model has {c} outputs; change --arch to end with {}",
                self.y.ncols(),
                self.y.ncols()
            )));
        }
        if self.y.nrows() != self.x.nrows() {
            return Err(Error::data(format!(
                "{what} data has {} feature rows but {} target rows",
                self.x.nrows(),
                self.y.nrows()
            )));
        }
        if let Some(l) = self.labels
            && l.len() != self.x.nrows()
        {
            return Err(Error::data(format!(
                "{what} data has {} rows but {} labels",
                self.x.nrows(),
                l.len()
            )));
        }
        Ok(())
    }
}

impl<'a, T: Real> From<&'a Dataset<T>> for DataRef<'a, T> {
    fn from(d: &'a Dataset<T>) -> Self {
        Self::new(d.x.as_ref(), d.y.as_ref(), d.labels.as_deref())
    }
}

/// Everything that evolves during training; a checkpoint stores exactly this.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState<T> {
    /// Inner steps taken.
    pub step: u64,
    /// Current parameters `θ`.
    pub theta: Vec<T>,
    /// Linearisation point `θ̃`.
    pub theta_tilde: Vec<T>,
    /// Initial parameters `θ₀`.
    pub theta0: Vec<T>,
    /// Optimiser state.
    pub opt: OptState<T>,
    /// Mini-batch order (created at the first step).
    pub batcher: Option<Batcher>,
    /// Rows of the training set the batcher was made for.
    pub n_train: usize,
    /// Re-linearisations so far.
    pub relinearisations: u64,
    /// Inner steps since the last re-linearisation.
    pub since_relin: u64,
    /// Current Gauss-Newton damping.
    pub damping: f64,
    /// Rejected Gauss-Newton steps.
    pub rejected: u64,
    /// Wall time spent before this process (for resumed runs).
    pub seconds: f64,
    /// Phase timings accumulated so far.
    pub timings: Timings,
}
