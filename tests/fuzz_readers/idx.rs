//! The IDX reader, plain and gzip-compressed.

use super::common::strategies::config;
use super::{BOUND, alloc, check_error, check_memory, gzip};
use itlin::data::idx;
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;

const NAME: &str = "fuzz-images-idx3-ubyte";

/// Runs `parse_idx` under the counting allocator and checks its outcome: a consistent array
/// or a short one-line error naming the file, within `bound` bytes of memory.
fn run(bytes: &[u8], bound: usize) -> Result<Option<idx::IdxArray>, TestCaseError> {
    let (r, stats) = alloc::measure(|| idx::parse_idx(bytes, Path::new(NAME)));
    check_memory(stats, bound, "parse_idx")?;
    match r {
        Ok(a) => {
            let n = a.dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
            prop_assert_eq!(n, Some(a.data.len()), "dims {:?}", a.dims);
            Ok(Some(a))
        }
        Err(e) => {
            check_error(&e, NAME)?;
            Ok(None)
        }
    }
}

/// Values a mutated header field takes: small, exactly the data size, and huge.
const FIELD_VALUES: [u32; 8] = [0, 1, 3, 255, 1 << 16, 1 << 31, u32::MAX - 1, u32::MAX];

/// One change to a valid file.
#[derive(Clone, Debug)]
enum Mutation {
    /// Flip one bit.
    Flip(Index, u8),
    /// Keep only a prefix.
    Cut(Index),
    /// Set one header field (0: the dimension count byte, k ≥ 1: dimension k) to a value.
    Field(Index, u32),
    /// Set the type byte.
    Type(u8),
    /// Append bytes.
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Cut),
        (
            any::<Index>(),
            prop_oneof![proptest::sample::select(&FIELD_VALUES[..]), any::<u32>()]
        )
            .prop_map(|(i, v)| Mutation::Field(i, v)),
        any::<u8>().prop_map(Mutation::Type),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

/// Applies `m` to the IDX file `file` of `ndims` dimensions.
fn apply(m: &Mutation, file: &[u8], ndims: usize) -> Vec<u8> {
    let mut b = file.to_vec();
    match m {
        Mutation::Flip(i, bit) => {
            if !b.is_empty() {
                b[i.index(file.len())] ^= 1 << bit;
            }
        }
        Mutation::Cut(i) => b.truncate(i.index(file.len())),
        Mutation::Field(i, v) => match i.index(ndims + 1) {
            0 => b[3] = *v as u8,
            k => b[4 * k..4 * k + 4].copy_from_slice(&v.to_be_bytes()),
        },
        Mutation::Type(t) => b[2] = *t,
        Mutation::Append(tail) => b.extend_from_slice(tail),
    }
    b
}

proptest! {
    #![proptest_config(config(512, 0x1D8_0001))]

    /// Arbitrary bytes, bare, behind an IDX magic, and gzip-compressed.
    #[test]
    fn arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ty in prop_oneof![Just(0x08u8), any::<u8>()],
        ndims in 0u8..6,
    ) {
        run(&bytes, BOUND)?;
        let mut idx = vec![0, 0, ty, ndims];
        idx.extend_from_slice(&bytes);
        run(&idx, BOUND)?;
        run(&gzip(&idx), BOUND)?;
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        run(&gz, BOUND)?;
    }

    /// A valid file, changed once, plain, compressed after the change (a valid gzip stream
    /// of a bad file) or changed after compression (a bad gzip stream).
    #[test]
    fn mutated_files(
        dims in proptest::collection::vec(0usize..6, 0..4),
        m in mutation(),
        where_ in 0u8..3,
    ) {
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
        let file = idx::encode_idx(&dims, &data).unwrap();
        let bytes = match where_ {
            0 => apply(&m, &file, dims.len()),
            1 => gzip(&apply(&m, &file, dims.len())),
            _ => {
                let gz = gzip(&file);
                let mut bad = gz.clone();
                match &m {
                    Mutation::Flip(i, bit) => bad[i.index(gz.len())] ^= 1 << bit,
                    Mutation::Cut(i) => bad.truncate(i.index(gz.len())),
                    Mutation::Append(tail) => bad.extend_from_slice(tail),
                    Mutation::Field(i, v) => {
                        // A field of the gzip header or trailer (ISIZE, CRC) set to `v`.
                        let k = i.index(gz.len() - 3);
                        bad[k..k + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    Mutation::Type(t) => bad[3] = *t, // the gzip FLG byte
                }
                bad
            }
        };
        let out = run(&bytes, BOUND)?;
        if matches!(m, Mutation::Cut(_)) && where_ != 2 {
            prop_assert!(out.is_none(), "a cut file was accepted");
        }
    }
}

/// Every prefix of a valid file, plain or compressed, is refused.
#[test]
fn every_truncation_is_refused() {
    for dims in [&[][..], &[0], &[5], &[3, 4], &[2, 3, 2]] {
        let n: usize = dims.iter().product();
        let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let file = idx::encode_idx(dims, &data).unwrap();
        for bytes in [file.clone(), gzip(&file)] {
            for k in 0..bytes.len() {
                let r = run(&bytes[..k], BOUND).unwrap();
                assert!(
                    r.is_none(),
                    "{dims:?}: the prefix of {k} bytes was accepted"
                );
            }
            assert!(run(&bytes, BOUND).unwrap().is_some(), "{dims:?}");
        }
    }
}

/// Headers that claim far more than the file holds, or dimensions whose product overflows,
/// plain and compressed: refused within 1 MiB.
#[test]
fn huge_claims_are_refused_without_allocating() {
    let claims: Vec<Vec<u32>> = vec![
        vec![1 << 31],
        vec![1 << 31, 28, 28],
        vec![u32::MAX; 3],
        vec![0, u32::MAX, u32::MAX, u32::MAX],
        vec![u32::MAX, u32::MAX, 0],
        vec![u32::MAX; 255],
        vec![1 << 16; 2],
    ];
    for dims in claims {
        let mut file = vec![0, 0, 0x08, dims.len() as u8];
        for d in &dims {
            file.extend_from_slice(&d.to_be_bytes());
        }
        file.extend_from_slice(&[7; 100]);
        for bytes in [file.clone(), gzip(&file)] {
            let r = run(&bytes, 1 << 20).unwrap();
            assert!(r.is_none(), "{} dims accepted", dims.len());
        }
    }
}

/// A gzip stream of `members` members of `1 MiB` zeros each after a first member holding
/// `head` (a file of about 1 KiB per MiB it decompresses to).
fn gzip_bomb(head: &[u8], members: usize) -> Vec<u8> {
    let zeros = gzip(&vec![0u8; 1 << 20]);
    let mut out = gzip(head);
    for _ in 0..members {
        out.extend_from_slice(&zeros);
    }
    out
}

/// gzip streams that decompress to 96 MiB, far more than the header claims or than the
/// compressed file, or to less than a claim their size allows: refused within a few MiB;
/// and one whose header claims exactly what it decompresses to, read with no more memory
/// than its data.
#[test]
fn gzip_bombs_are_read_within_bounds() {
    const MIB: usize = 1 << 20;
    let header = |dims: &[u32]| {
        let mut h = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            h.extend_from_slice(&d.to_be_bytes());
        }
        h
    };
    for dims in [&[16][..], &[1 << 31], &[u32::MAX, u32::MAX]] {
        let bomb = gzip_bomb(&header(dims), 96);
        assert!(bomb.len() < MIB, "{} bytes", bomb.len());
        let r = run(&bomb, 4 * MIB).unwrap();
        assert!(r.is_none(), "{dims:?}: accepted");
    }
    // Claims within what the stream's size allows (a member of incompressible bytes makes
    // it large) but other than the 33 MiB it holds: counted, then refused, never stored.
    let mut noise = vec![0u8; MIB];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for claim in [&[512, 1024, 1024][..], &[34, 1024, 1024], &[32, 1024, 1024]] {
        let mut bomb = gzip_bomb(&header(claim), 32);
        bomb.extend_from_slice(&gzip(&noise));
        let r = run(&bomb, 4 * MIB).unwrap();
        assert!(r.is_none(), "{claim:?}: accepted");
    }
    // Valid: the header says 96 MiB and the stream holds them.
    let bomb = gzip_bomb(&header(&[96, 1024, 1024]), 96);
    let (r, stats) = alloc::measure(|| idx::parse_idx(&bomb, Path::new(NAME)));
    let a = r.unwrap();
    assert_eq!((a.dims, a.data.len()), (vec![96, 1024, 1024], 96 * MIB));
    assert!(
        stats.peak <= 97 * MIB && stats.largest <= 96 * MIB,
        "a 96 MiB array took {stats:?}"
    );
}
