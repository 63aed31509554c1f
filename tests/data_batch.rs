//! Seeded mini-batching: coverage, determinism, and bit-for-bit resume.

use itlin::data::Batcher;

/// The batches of one epoch, checking that the epoch counter moves only at its end.
fn one_epoch(b: &mut Batcher) -> Vec<Vec<usize>> {
    let e = b.epoch();
    let mut out = Vec::new();
    while b.epoch() == e {
        out.push(b.next_batch());
        assert!(out.len() <= b.batches_per_epoch(), "epoch did not end");
    }
    out
}

#[test]
fn every_index_exactly_once_per_epoch() {
    for (n, batch) in [
        (1, 1),
        (10, 3),
        (10, 10),
        (10, 100),
        (17, 4),
        (100, 7),
        (64, 1),
    ] {
        let mut b = Batcher::new(n, batch, 42);
        let bs = batch.min(n);
        assert_eq!(b.batch_size(), bs);
        assert_eq!(b.batches_per_epoch(), n.div_ceil(bs));
        let mut perms = Vec::new();
        for epoch in 0..4 {
            assert_eq!(b.epoch(), epoch);
            let batches = one_epoch(&mut b);
            assert_eq!(batches.len(), n.div_ceil(bs), "n={n} batch={batch}");
            for (k, bt) in batches.iter().enumerate() {
                let want = if k + 1 < batches.len() {
                    bs
                } else {
                    n - bs * (batches.len() - 1)
                };
                assert_eq!(bt.len(), want, "n={n} batch={batch} batch #{k}");
            }
            let perm: Vec<usize> = batches.concat();
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "n={n} batch={batch}");
            perms.push(perm);
            assert_eq!(b.batches_served(), (epoch + 1) * n.div_ceil(bs));
        }
        if n >= 10 {
            // Shuffled, and differently each epoch.
            assert_ne!(perms[0], (0..n).collect::<Vec<_>>());
            assert_ne!(perms[0], perms[1]);
            assert_ne!(perms[1], perms[2]);
        }
    }
}

fn take(b: &mut Batcher, k: usize) -> Vec<Vec<usize>> {
    (0..k).map(|_| b.next_batch()).collect()
}

#[test]
fn deterministic_for_a_seed_and_different_across_seeds() {
    let mut a = Batcher::new(50, 8, 7);
    let mut b = Batcher::new(50, 8, 7);
    let mut c = Batcher::new(50, 8, 8);
    let (ta, tb, tc) = (take(&mut a, 30), take(&mut b, 30), take(&mut c, 30));
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
}

#[test]
fn clone_and_serde_round_trip_continue_identically() {
    // Stop mid-epoch, exactly at an epoch boundary, and at the start.
    for stop in [0, 3, 7, 11] {
        let mut a = Batcher::new(23, 3, 99);
        take(&mut a, stop);
        let cloned = a.clone();
        let json = serde_json::to_string(&a).unwrap();
        let mut restored: Batcher = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, a);
        assert_eq!(
            (restored.epoch(), restored.position()),
            (a.epoch(), a.position())
        );
        let mut cloned = cloned;
        let rest = take(&mut a, 40);
        assert_eq!(take(&mut restored, 40), rest, "serde, stop {stop}");
        assert_eq!(take(&mut cloned, 40), rest, "clone, stop {stop}");
    }
}

#[test]
fn serialised_state_is_plain_data() {
    let mut b = Batcher::new(10, 4, 5);
    take(&mut b, 4);
    let v: serde_json::Value = serde_json::to_value(&b).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"n": 10, "batch": 4, "seed": 5, "epoch": 1, "position": 4})
    );
}

#[test]
fn invalid_serialised_state_is_rejected() {
    for bad in [
        r#"{"n": 10, "batch": 4, "seed": 5, "epoch": 1, "position": 10}"#,
        r#"{"n": 10, "batch": 0, "seed": 5, "epoch": 1, "position": 0}"#,
        r#"{"n": 0, "batch": 1, "seed": 5, "epoch": 0, "position": 0}"#,
        r#"{"n": 10, "batch": 11, "seed": 5, "epoch": 0, "position": 0}"#,
    ] {
        let e = serde_json::from_str::<Batcher>(bad).unwrap_err();
        assert!(e.to_string().contains("invalid batcher state"), "{e}");
    }
}

#[test]
#[should_panic(expected = "no rows")]
fn zero_rows_panics() {
    let _ = Batcher::new(0, 1, 0);
}

#[test]
#[should_panic(expected = "at least 1")]
fn zero_batch_panics() {
    let _ = Batcher::new(5, 0, 0);
}
