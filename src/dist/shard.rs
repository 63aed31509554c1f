//! [`Shard`]: the contiguous rows of a data set that one rank holds.

use std::ops::Range;

/// The rows `offset … offset + len` of a data set of `total` rows held by one rank.
///
/// [`Shard::of`] splits `N` rows over `R` ranks into contiguous blocks whose sizes differ by
/// at most one: rank `r` holds `⌊N/R⌋ + [r < N mod R]` rows starting at
/// `r⌊N/R⌋ + min(r, N mod R)`. The shards of all ranks partition `0 … N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// The first global row of the shard.
    pub offset: usize,
    /// The number of rows in the shard.
    pub len: usize,
    /// The number of rows of the whole data set.
    pub total: usize,
}

impl Shard {
    /// The whole data set of `n` rows (one rank).
    pub fn whole(n: usize) -> Self {
        Self {
            offset: 0,
            len: n,
            total: n,
        }
    }

    /// Rank `rank`'s shard of `n` rows split over `size` ranks.
    ///
    /// # Panics
    /// If `size == 0` or `rank ≥ size`.
    #[track_caller]
    pub fn of(n: usize, rank: usize, size: usize) -> Self {
        assert!(size > 0 && rank < size, "rank {rank} of {size}");
        let (q, rem) = (n / size, n % size);
        Self {
            offset: rank * q + rank.min(rem),
            len: q + usize::from(rank < rem),
            total: n,
        }
    }

    /// The global rows of the shard.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }

    /// The shard-local index of global row `i`, if the shard holds it.
    pub fn local(&self, i: usize) -> Option<usize> {
        i.checked_sub(self.offset).filter(|&l| l < self.len)
    }

    /// The shard-local rows of the global rows `0 … n` (the first `n` rows of the data set)
    /// that this shard holds.
    pub fn local_prefix(&self, n: usize) -> Range<usize> {
        let end = n.clamp(self.offset, self.offset + self.len);
        0..end - self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_rows() {
        for n in [0usize, 1, 2, 7, 10, 101] {
            for r in 1..6 {
                let mut next = 0;
                for k in 0..r {
                    let s = Shard::of(n, k, r);
                    assert_eq!(s.offset, next, "n {n} r {r} k {k}");
                    assert!(s.len == n / r || s.len == n / r + 1);
                    next += s.len;
                    for i in s.range() {
                        assert_eq!(s.local(i), Some(i - s.offset));
                    }
                    assert_eq!(s.local(s.offset + s.len), None);
                    let p = s.local_prefix(n / 2);
                    assert_eq!(p.len(), s.range().filter(|&i| i < n / 2).count());
                }
                assert_eq!(next, n);
            }
        }
    }
}
