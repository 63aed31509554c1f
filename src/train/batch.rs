//! TEMPORARY seeded mini-batcher with the interface of `itlin::data::Batcher` (being written on
//! another branch); replaced by a re-export when `itlin::data` lands.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Seeded mini-batching: a fresh permutation per epoch from a ChaCha8 stream seeded by
/// `(seed, epoch)`. Its state is plain data, so training can resume bit-for-bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batcher {
    n: usize,
    batch: usize,
    seed: u64,
    epoch: usize,
    pos: usize,
}

impl Batcher {
    /// A batcher over `n` rows with batches of `batch` (clamped to `1..=n`).
    pub fn new(n: usize, batch: usize, seed: u64) -> Self {
        Self {
            n,
            batch: batch.clamp(1, n.max(1)),
            seed,
            epoch: 0,
            pos: 0,
        }
    }
    fn perm(&self) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ (self.epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut p: Vec<usize> = (0..self.n).collect();
        p.shuffle(&mut rng);
        p
    }
    /// The next batch of row indices; the last batch of an epoch may be shorter, then a new
    /// epoch starts.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.pos >= self.n {
            self.epoch += 1;
            self.pos = 0;
        }
        let p = self.perm();
        let end = (self.pos + self.batch).min(self.n);
        let out = p[self.pos..end].to_vec();
        self.pos = end;
        out
    }
    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.epoch
    }
    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.n.div_ceil(self.batch)
    }
}
