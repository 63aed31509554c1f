//! Bad bytes never crash the checkpoint reader: every single-bit flip of a real checkpoint is
//! refused by its CRC-32 with an error naming the file; arbitrary bytes, truncations and
//! mutations whose checksum was recomputed (so that the parser itself is exercised) give an
//! error naming the file or a consistent state, never a panic; and no allocation is sized by
//! a length the file does not hold (measured with a counting allocator).

use faer::Mat;
use itlin::train::{DataRef, Inner, Loss, Period, TrainConfig, TrainState, Trainer, checkpoint};
use itlin::{Activation, Init, Mlp};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// The system allocator, recording the largest single request made by a thread that armed it.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping touches only
// const-initialised thread-locals without destructors (no allocation, no re-entrance).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note(size: usize) {
    let _ = ARMED.try_with(|a| {
        if a.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Decodes `bytes` as the file `path` (f64) and returns the result with the largest single
/// allocation made.
fn decode_measured(bytes: &[u8], path: &Path) -> (itlin::Result<TrainState<f64>>, usize) {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    let r = checkpoint::decode::<f64>(bytes, path);
    ARMED.with(|a| a.set(false));
    (r, LARGEST.with(Cell::get))
}

/// A real checkpoint (Adam, so that both optimiser buffers are present) and its bytes.
fn real_checkpoint(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("checkpoint.bin");
    let x = Mat::from_fn(12, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin());
    let labels: Vec<u32> = (0..12).map(|i| (i % 2) as u32).collect();
    let y = Mat::from_fn(12, 2, |i, k| f64::from(labels[i] as usize == k));
    let mlp = Mlp::new(&[3, 2, 2], Activation::Tanh).unwrap();
    let cfg = TrainConfig::new()
        .with_inner(Inner::adam(0.01))
        .with_loss(Loss::CrossEntropy)
        .with_period(Period::Steps(2))
        .with_batch(4)
        .with_steps(5)
        .with_probe(0)
        .with_checkpoint(&path, 5);
    let mut t = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 1), cfg).unwrap();
    t.fit(
        DataRef::new(x.as_ref(), y.as_ref(), Some(&labels)),
        None,
        &mut (),
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"ITLINCK2");
    (path, bytes)
}

/// A refusal must be one line naming the file.
fn assert_names_file(e: &itlin::Error, path: &Path) {
    let msg = e.to_string();
    assert!(
        msg.contains(path.to_str().unwrap()),
        "error does not name the file: {msg}"
    );
    assert_eq!(msg.lines().count(), 1, "not one line: {msg}");
}

/// `body` (everything before the CRC) with a fresh CRC-32 appended.
fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    v
}

#[test]
fn every_single_bit_flip_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, good) = real_checkpoint(dir.path());
    assert!(checkpoint::load::<f64>(&path).is_ok());
    let bad = dir.path().join("flipped.bin");
    let mut b = good.clone();
    for byte in 0..good.len() {
        for bit in 0..8 {
            b[byte] ^= 1 << bit;
            let (r, largest) = decode_measured(&b, &bad);
            b[byte] ^= 1 << bit;
            let e = r.expect_err("a flipped bit was accepted");
            assert_names_file(&e, &bad);
            assert!(largest <= good.len() + 4096, "allocated {largest} bytes");
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = real_checkpoint(dir.path());
    let bad = dir.path().join("cut.bin");
    std::fs::write(&bad, &good[..good.len() - 1]).unwrap();
    assert_names_file(&checkpoint::load::<f64>(&bad).unwrap_err(), &bad);
    for len in 0..good.len() {
        let e = checkpoint::decode::<f64>(&good[..len], &bad)
            .expect_err("a truncated file was accepted");
        assert_names_file(&e, &bad);
    }
}

/// A header that claims 2⁴⁰ parameters (with a valid checksum) is refused from the file's
/// length, without allocating for the claim.
#[test]
fn a_huge_claimed_length_is_refused_without_allocating_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = real_checkpoint(dir.path());
    let hlen = u64::from_le_bytes(good[8..16].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[16..16 + hlen]).unwrap();
    for (field, huge) in [
        ("\"p\":", "1099511627776"),
        ("\"m_len\":", "1099511627776"),
        ("\"p\":", "4611686018427387904"),
    ] {
        let at = header.find(field).unwrap() + field.len();
        let end = at + header[at..].find(',').unwrap();
        let new_header = format!("{}{huge}{}", &header[..at], &header[end..]);
        let mut body = b"ITLINCK2".to_vec();
        body.extend_from_slice(&(new_header.len() as u64).to_le_bytes());
        body.extend_from_slice(new_header.as_bytes());
        body.extend_from_slice(&good[16 + hlen..good.len() - 4]);
        let bad = dir.path().join("huge.bin");
        let (r, largest) = decode_measured(&with_crc(&body), &bad);
        let e = r.expect_err("a huge claim was accepted");
        assert_names_file(&e, &bad);
        assert!(largest <= good.len() + 4096, "allocated {largest} bytes");
    }
}

/// Format 1 (no checksum) is still read.
#[test]
fn format_1_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let (path, good) = real_checkpoint(dir.path());
    let mut v1 = good[..good.len() - 4].to_vec();
    v1[..8].copy_from_slice(b"ITLINCK1");
    let old = dir.path().join("v1.bin");
    std::fs::write(&old, &v1).unwrap();
    assert_eq!(
        checkpoint::load::<f64>(&old).unwrap(),
        checkpoint::load::<f64>(&path).unwrap()
    );
}

/// One real checkpoint for all cases of the property tests.
static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x1717),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary bytes, with or without a checkpoint's magic in front: an error naming the
    /// file, no panic, no allocation beyond the file's size.
    #[test]
    fn arbitrary_bytes_are_refused(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        magic in 0usize..3,
    ) {
        let path = Path::new("run/checkpoint.bin");
        let mut bytes = [&b""[..], b"ITLINCK2", b"ITLINCK1"][magic].to_vec();
        bytes.extend_from_slice(&tail);
        let (r, largest) = decode_measured(&bytes, path);
        if let Err(e) = &r {
            assert_names_file(e, path);
        }
        prop_assert!(largest <= bytes.len() + 4096, "allocated {} bytes", largest);
    }

    /// Bytes of a real checkpoint changed (header length, header text or arrays) and the
    /// checksum recomputed, so that the parser sees them: an error naming the file, or a
    /// state whose lengths agree with each other.
    #[test]
    fn mutated_bodies_with_a_valid_checksum_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let good = GOOD.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            real_checkpoint(dir.path()).1
        });
        let mut body = good[..good.len() - 4].to_vec();
        for (at, v) in &edits {
            let i = 8 + at.index(body.len() - 8);
            body[i] = *v;
        }
        if let Some(c) = cut {
            body.truncate(16.max(c.index(body.len())));
        }
        let path = Path::new("run/mutated.bin");
        let (r, largest) = decode_measured(&with_crc(&body), path);
        match r {
            Err(e) => assert_names_file(&e, path),
            Ok(s) => {
                let p = s.theta.len();
                prop_assert!(s.theta_tilde.len() == p && s.theta0.len() == p);
                prop_assert!(s.opt.m.is_empty() || s.opt.m.len() == p);
                prop_assert!(s.opt.v.is_empty() || s.opt.v.len() == p);
            }
        }
        prop_assert!(largest <= good.len() + 4096, "allocated {} bytes", largest);
    }
}
