//! Seeded mini-batching with a resumable state.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Tag mixed into the seed so that a batcher and, say, [`Mlp::init`](crate::Mlp::init) given
/// the same seed draw from different ChaCha8 keys.
const SEED_TAG: u64 = 0x6261_7463_6865_7231; // "batcher1"

/// Seeded mini-batching over `n` rows: every epoch is a fresh uniformly random permutation of
/// `0..n`, cut into consecutive batches of `batch` indices; the last batch of an epoch holds
/// the remaining `n mod batch` indices when `batch` does not divide `n` (it is kept, not
/// dropped), so every row is used exactly once per epoch.
///
/// The permutation of epoch `e` is drawn from ChaCha8 stream `e` of a key derived from the
/// seed (with rand's Fisher–Yates `shuffle`), so it depends only on `(n, seed, e)`. The whole
/// state is therefore the plain data `(n, batch, seed, epoch, position)`, which is what
/// serde (de)serialises: a batcher restored from a checkpoint, or cloned, continues with
/// exactly the same batches.
///
/// ```
/// use itlin::data::Batcher;
/// let mut b = Batcher::new(10, 4, 7);
/// let sizes: Vec<usize> = (0..3).map(|_| b.next_batch().len()).collect();
/// assert_eq!(sizes, [4, 4, 2]);
/// assert_eq!(b.epoch(), 1);
/// ```
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "BatcherState", into = "BatcherState")]
pub struct Batcher {
    n: usize,
    batch: usize,
    seed: u64,
    epoch: usize,
    pos: usize,
    /// Permutation of the current epoch (empty until needed; rebuilt from the state).
    perm: Vec<usize>,
}

/// The serialised form of a [`Batcher`].
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct BatcherState {
    n: usize,
    batch: usize,
    seed: u64,
    epoch: usize,
    position: usize,
}

impl From<Batcher> for BatcherState {
    fn from(b: Batcher) -> Self {
        Self {
            n: b.n,
            batch: b.batch,
            seed: b.seed,
            epoch: b.epoch,
            position: b.pos,
        }
    }
}

impl TryFrom<BatcherState> for Batcher {
    type Error = String;
    fn try_from(s: BatcherState) -> Result<Self, String> {
        if s.n == 0 || s.batch == 0 || s.batch > s.n || s.position >= s.n {
            return Err(format!(
                "invalid batcher state: n = {}, batch = {}, position = {} (need n ≥ 1, \
                 1 ≤ batch ≤ n, position < n)",
                s.n, s.batch, s.position
            ));
        }
        Ok(Batcher {
            n: s.n,
            batch: s.batch,
            seed: s.seed,
            epoch: s.epoch,
            pos: s.position,
            perm: Vec::new(),
        })
    }
}

impl PartialEq for Batcher {
    /// Two batchers are equal when their states are (the cached permutation is not compared).
    fn eq(&self, o: &Self) -> bool {
        (self.n, self.batch, self.seed, self.epoch, self.pos)
            == (o.n, o.batch, o.seed, o.epoch, o.pos)
    }
}

impl Eq for Batcher {}

impl Batcher {
    /// A batcher over rows `0..n` in batches of `batch` (clamped to `n`, so `usize::MAX`
    /// means full batch), starting at epoch 0.
    ///
    /// # Panics
    /// If `n == 0` or `batch == 0`.
    #[track_caller]
    pub fn new(n: usize, batch: usize, seed: u64) -> Self {
        assert!(n > 0, "Batcher::new: there are no rows to batch (n = 0)");
        assert!(batch > 0, "Batcher::new: the batch size must be at least 1");
        Self {
            n,
            batch: batch.min(n),
            seed,
            epoch: 0,
            pos: 0,
            perm: Vec::new(),
        }
    }

    /// The next batch of row indices. After the last batch of an epoch the batcher moves to
    /// the next epoch, so [`epoch`](Self::epoch) counts the completed epochs.
    pub fn next_batch(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        self.next_batch_into(&mut out);
        out
    }

    /// As [`next_batch`](Self::next_batch), written into `out` (its previous contents are
    /// replaced). Reuses `out` and the cached permutation, so after the first epoch it
    /// allocates nothing.
    pub fn next_batch_into(&mut self, out: &mut Vec<usize>) {
        if self.perm.len() != self.n {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ SEED_TAG);
            rng.set_stream(self.epoch as u64);
            self.perm.clear();
            self.perm.extend(0..self.n);
            self.perm.shuffle(&mut rng);
        }
        let end = (self.pos + self.batch).min(self.n);
        out.clear();
        out.extend_from_slice(&self.perm[self.pos..end]);
        self.pos = end;
        if self.pos == self.n {
            self.epoch += 1;
            self.pos = 0;
            self.perm.clear();
        }
    }

    /// Number of completed epochs (equivalently, the epoch the next batch belongs to).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Number of batches per epoch, `⌈n / batch⌉`.
    pub fn batches_per_epoch(&self) -> usize {
        self.n.div_ceil(self.batch)
    }

    /// Number of rows `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The batch size (after clamping to `n`).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many rows of the current epoch have been served.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The total number of batches served so far.
    pub fn batches_served(&self) -> usize {
        self.epoch * self.batches_per_epoch() + self.pos.div_ceil(self.batch)
    }
}
