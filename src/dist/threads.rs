//! [`ThreadComm`]: ranks as threads of one process, for tests and emulation.

use super::Comm;
use crate::{Error, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What one rank brings to a collective.
#[derive(Clone, Debug)]
enum Payload {
    F64(Vec<f64>),
    F32(Vec<f32>),
    Bytes(Vec<u8>),
    Nothing,
}

/// The state of the group, behind one mutex.
#[derive(Debug)]
struct State {
    /// The number of completed collectives.
    generation: u64,
    /// The collective being assembled: its name and each rank's payload.
    op: Option<&'static str>,
    slots: Vec<Option<Payload>>,
    /// The result of the last completed collective.
    result: Payload,
    /// Why the group is broken (a rank left or timed out), if it is.
    broken: Option<String>,
}

#[derive(Debug)]
struct Group {
    state: Mutex<State>,
    cv: Condvar,
    timeout: Duration,
}

/// A communicator between `R` threads of one process: rank `r` of a group made by
/// [`ThreadComm::group`]. Sums are taken in rank order by the last rank to arrive and read by
/// all, so every rank gets the same bits (as with `MpiComm`).
///
/// A collective waits at most the group's timeout for the other ranks; when a rank's
/// `ThreadComm` is dropped (its thread ended or panicked) the others' pending and later
/// collectives fail at once with [`Error::Comm`].
#[derive(Debug)]
pub struct ThreadComm {
    rank: usize,
    size: usize,
    group: Arc<Group>,
}

impl ThreadComm {
    /// `size` communicators, one per rank (`group[r].rank() == r`), whose collectives time
    /// out after `timeout`.
    ///
    /// # Panics
    /// If `size == 0`.
    #[track_caller]
    pub fn group(size: usize, timeout: Duration) -> Vec<ThreadComm> {
        assert!(size > 0, "a group needs at least one rank");
        let group = Arc::new(Group {
            state: Mutex::new(State {
                generation: 0,
                op: None,
                slots: vec![None; size],
                result: Payload::Nothing,
                broken: None,
            }),
            cv: Condvar::new(),
            timeout,
        });
        (0..size)
            .map(|rank| ThreadComm {
                rank,
                size,
                group: Arc::clone(&group),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // a panicking rank is reported through `broken` (Drop); the state stays consistent
        self.group
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deposits `mine`, waits for every rank, and returns the combined result.
    fn exchange(
        &self,
        op: &'static str,
        mine: Payload,
        combine: impl FnOnce(&mut [Option<Payload>]) -> Result<Payload>,
    ) -> Result<Payload> {
        let mut st = self.lock();
        if let Some(why) = &st.broken {
            return Err(Error::Comm(format!("rank {}: {op}: {why}", self.rank)));
        }
        match st.op {
            Some(other) if other != op => {
                let why = format!(
                    "ranks called different collectives ({other} and {op}) at collective {}",
                    st.generation
                );
                st.broken = Some(why.clone());
                self.group.cv.notify_all();
                return Err(Error::Comm(format!("rank {}: {why}", self.rank)));
            }
            _ => st.op = Some(op),
        }
        st.slots[self.rank] = Some(mine);
        let generation = st.generation;
        if st.slots.iter().all(Option::is_some) {
            let result = combine(&mut st.slots);
            st.slots.iter_mut().for_each(|s| *s = None);
            st.op = None;
            match result {
                Ok(r) => {
                    st.result = r;
                    st.generation += 1;
                }
                Err(e) => {
                    // the waiting ranks see `broken` (the generation stays)
                    st.broken = Some(e.to_string());
                    self.group.cv.notify_all();
                    return Err(e);
                }
            }
            self.group.cv.notify_all();
            return Ok(st.result.clone());
        }
        let deadline = Instant::now() + self.group.timeout;
        loop {
            if st.generation != generation {
                return Ok(st.result.clone());
            }
            if let Some(why) = &st.broken {
                return Err(Error::Comm(format!("rank {}: {op}: {why}", self.rank)));
            }
            let now = Instant::now();
            if now >= deadline {
                let arrived = st.slots.iter().filter(|s| s.is_some()).count();
                let why = format!(
                    "{op} did not complete within {:.1} s: {arrived} of {} ranks arrived",
                    self.group.timeout.as_secs_f64(),
                    self.size
                );
                st.broken = Some(why.clone());
                self.group.cv.notify_all();
                return Err(Error::Comm(format!("rank {}: {why}", self.rank)));
            }
            st = self
                .group
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

impl Drop for ThreadComm {
    fn drop(&mut self) {
        let mut st = self.lock();
        if st.broken.is_none() && self.size > 1 {
            st.broken = Some(format!("rank {} left the group", self.rank));
        }
        self.group.cv.notify_all();
    }
}

/// Σ over the slots in rank order.
fn sum_slots<T: Copy + std::ops::Add<Output = T>>(
    slots: &mut [Option<Payload>],
    take: impl Fn(Payload) -> Option<Vec<T>>,
    wrap: impl Fn(Vec<T>) -> Payload,
) -> Result<Payload> {
    let mut parts = slots.iter_mut().map(|s| s.take().and_then(&take));
    let mut acc = parts
        .next()
        .flatten()
        .ok_or_else(|| Error::Comm("sum: a rank brought no buffer".into()))?;
    for (r, p) in parts.enumerate() {
        let p = p.ok_or_else(|| Error::Comm("sum: a rank brought no buffer".into()))?;
        if p.len() != acc.len() {
            return Err(Error::Comm(format!(
                "sum: rank 0 brought {} values, rank {} brought {}",
                acc.len(),
                r + 1,
                p.len()
            )));
        }
        acc.iter_mut().zip(&p).for_each(|(a, &b)| *a = *a + b);
    }
    Ok(wrap(acc))
}

impl Comm for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let out = self.exchange("sum", Payload::F64(buf.to_vec()), |s| {
            sum_slots(
                s,
                |p| match p {
                    Payload::F64(v) => Some(v),
                    _ => None,
                },
                Payload::F64,
            )
        })?;
        match out {
            Payload::F64(v) => buf.copy_from_slice(&v),
            _ => unreachable!("a sum of f64 gives f64"),
        }
        Ok(())
    }
    fn sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let out = self.exchange("sum", Payload::F32(buf.to_vec()), |s| {
            sum_slots(
                s,
                |p| match p {
                    Payload::F32(v) => Some(v),
                    _ => None,
                },
                Payload::F32,
            )
        })?;
        match out {
            Payload::F32(v) => buf.copy_from_slice(&v),
            _ => unreachable!("a sum of f32 gives f32"),
        }
        Ok(())
    }
    fn broadcast(&self, root: usize, buf: &mut Vec<u8>) -> Result<()> {
        if root >= self.size {
            return Err(Error::Comm(format!(
                "broadcast from rank {root} of {}",
                self.size
            )));
        }
        let mine = if self.rank == root {
            Payload::Bytes(buf.clone())
        } else {
            Payload::Nothing
        };
        let out = self.exchange("broadcast", mine, |s| {
            s[root]
                .take()
                .ok_or_else(|| Error::Comm("broadcast: the root brought nothing".into()))
        })?;
        match out {
            Payload::Bytes(b) => *buf = b,
            _ => unreachable!("a broadcast gives bytes"),
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.exchange("barrier", Payload::Nothing, |_| Ok(Payload::Nothing))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<R: Send>(size: usize, f: impl Fn(&ThreadComm) -> R + Sync) -> Vec<R> {
        let comms = ThreadComm::group(size, Duration::from_secs(10));
        std::thread::scope(|s| {
            let hs: Vec<_> = comms
                .iter()
                .map(|c| {
                    let f = &f;
                    s.spawn(move || f(c))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn sums_in_rank_order_on_every_rank() {
        let out = run(3, |c| {
            let mut v = vec![c.rank() as f64 + 0.5, 1e16, -(c.rank() as f64)];
            c.sum_f64(&mut v).unwrap();
            let mut w = vec![c.rank() as f32; 2];
            c.sum_f32(&mut w).unwrap();
            (v, w)
        });
        // rank order: ((0.5 + 1.5) + 2.5), (1e16 + 1e16) + 1e16, ...
        let want = vec![4.5, 3e16, -3.0];
        for (v, w) in &out {
            assert_eq!(v, &want);
            assert_eq!(w, &vec![3.0f32, 3.0]);
        }
    }

    #[test]
    fn broadcast_and_many_rounds() {
        let out = run(4, |c| {
            let mut acc = 0.0;
            for k in 0..50 {
                let mut b = if c.rank() == k % 4 {
                    vec![k as u8; k]
                } else {
                    vec![]
                };
                c.broadcast(k % 4, &mut b).unwrap();
                assert_eq!(b, vec![k as u8; k]);
                let mut s = [1.0];
                c.sum_f64(&mut s).unwrap();
                acc += s[0];
                c.barrier().unwrap();
            }
            acc
        });
        assert!(out.iter().all(|&a| a == 200.0));
    }

    #[test]
    fn a_rank_that_leaves_fails_the_others() {
        let mut comms = ThreadComm::group(2, Duration::from_secs(30));
        let gone = comms.pop().unwrap();
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                drop(gone);
            });
            let e = comms[0].sum_f64(&mut [1.0]).unwrap_err().to_string();
            assert!(e.contains("rank 1 left the group"), "{e}");
        });
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_rank_that_stops_calling_times_out() {
        let comms = ThreadComm::group(2, Duration::from_millis(200));
        let e = comms[0].barrier().unwrap_err().to_string();
        assert!(e.contains("did not complete within 0.2 s: 1 of 2"), "{e}");
        // the group stays broken
        assert!(comms[1].barrier().is_err());
    }

    #[test]
    fn mismatched_lengths_are_an_error_on_every_rank() {
        let out = run(2, |c| c.sum_f64(&mut vec![0.0; 1 + c.rank()]).is_err());
        assert_eq!(out, vec![true, true]);
    }
}
