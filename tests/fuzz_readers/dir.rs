//! `load_dir` over a temporary directory of IDX or NPY files, one of them damaged.

use super::common::strategies::config;
use super::npy::{dict, npy_file, tuple};
use super::{BOUND, alloc, assert_error, check_error, check_memory, gzip};
use itlin::data::{IDX_FILES, NPY_FILES, idx, load_dir, npy};
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;

/// Runs `load_dir` under the counting allocator and checks its outcome: a consistent split
/// or a short one-line error naming a file of `dir` (or `dir`).
fn run(dir: &Path, bound: usize) -> Result<bool, TestCaseError> {
    let (r, stats) = alloc::measure(|| load_dir::<f32>(dir));
    check_memory(stats, bound, "load_dir")?;
    match r {
        Ok(s) => {
            prop_assert!(!s.train.is_empty());
            prop_assert_eq!(s.train.n_features(), s.test.n_features());
            prop_assert_eq!(s.train.n_outputs(), s.test.n_outputs());
            prop_assert!(s.train.n_features() > 0 && s.train.n_outputs() > 0);
            for part in [&s.train, &s.test] {
                prop_assert_eq!(part.x.nrows(), part.y.nrows());
                for j in 0..part.x.ncols() {
                    for i in 0..part.x.nrows() {
                        prop_assert!(part.x[(i, j)].is_finite());
                    }
                }
            }
            Ok(true)
        }
        Err(e) => {
            check_error(&e, dir.to_str().unwrap())?;
            Ok(false)
        }
    }
}

/// The bytes of the four small IDX files.
fn idx_files() -> [Vec<u8>; 4] {
    let tr_x: Vec<u8> = (0..6 * 3 * 2).map(|i| (i * 7) as u8).collect();
    let te_x: Vec<u8> = (0..3 * 3 * 2).map(|i| (255 - i) as u8).collect();
    [
        idx::encode_idx(&[6, 3, 2], &tr_x).unwrap(),
        idx::encode_idx(&[6], &[0, 1, 2, 1, 0, 2]).unwrap(),
        idx::encode_idx(&[3, 3, 2], &te_x).unwrap(),
        idx::encode_idx(&[3], &[2, 0, 1]).unwrap(),
    ]
}

/// The bytes of four small NPY files: `kind` 0 = uint8 images and int64 labels, 1 = float32
/// features and one-hot float64 targets, 2 = float64 features and regression targets.
fn npy_files(kind: u8, version: u8) -> [Vec<u8>; 4] {
    let f = |descr: &str, shape: &[usize], data: Vec<u8>| {
        npy_file(version, &dict(descr, false, &tuple(shape)), &data)
    };
    let f32s = |n: usize| {
        (0..n)
            .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
            .collect()
    };
    let f64s = |v: Vec<f64>| v.into_iter().flat_map(f64::to_le_bytes).collect();
    let i64s = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let one_hot = |l: &[usize]| {
        f64s(
            l.iter()
                .flat_map(|&c| (0..3).map(move |j| f64::from(u8::from(j == c))))
                .collect(),
        )
    };
    match kind {
        0 => [
            f("|u1", &[5, 2, 2], (0..20).map(|i| i * 13).collect()),
            f("<i8", &[5], i64s(&[0, 1, 2, 1, 0])),
            f("|u1", &[2, 2, 2], (0..8).collect()),
            f("<i8", &[2, 1], i64s(&[2, 0])),
        ],
        1 => [
            f("<f4", &[5, 3], f32s(15)),
            f("<f8", &[5, 3], one_hot(&[0, 2, 1, 1, 0])),
            f("<f4", &[2, 3], f32s(6)),
            f("<f8", &[2, 3], one_hot(&[2, 0])),
        ],
        _ => [
            f("<f8", &[5], f64s((0..5).map(|i| i as f64).collect())),
            f(
                "<f8",
                &[5, 2],
                f64s((0..10).map(|i| i as f64 * 0.5).collect()),
            ),
            f("<f8", &[2], f64s(vec![1.5, -2.0])),
            f("<f8", &[2, 2], f64s(vec![0.0, 1.0, 2.0, 3.0])),
        ],
    }
}

/// One change to one file.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Cut(Index),
    /// A 4-byte field (an IDX dimension, the NPY header length, …) set to a value.
    Word(Index, u32),
    /// The file replaced by arbitrary bytes.
    Replace(Vec<u8>),
    /// NPY only: the shape replaced.
    Shape(Vec<u64>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        proptest::sample::select(&[0u64, 1, 2, 7, 255, 1 << 16, 1 << 31, 1 << 32, 1 << 62][..]),
        any::<u64>(),
    ];
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Cut),
        (
            any::<Index>(),
            prop_oneof![
                proptest::sample::select(&[0u32, 1, 2, 255, 1 << 16, 1 << 31, u32::MAX][..]),
                any::<u32>()
            ]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Mutation::Replace),
        proptest::collection::vec(big, 0..4).prop_map(Mutation::Shape),
    ]
}

fn apply(m: &Mutation, file: &[u8], npy_version: Option<u8>) -> Vec<u8> {
    let mut b = file.to_vec();
    match m {
        Mutation::Flip(i, bit) => b[i.index(file.len())] ^= 1 << bit,
        Mutation::Cut(i) => b.truncate(i.index(file.len())),
        Mutation::Word(i, v) => {
            let k = i.index(file.len().min(64) - 3);
            let v = if npy_version.is_some() {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            b[k..k + 4].copy_from_slice(&v);
        }
        Mutation::Replace(bytes) => b = bytes.clone(),
        Mutation::Shape(shape) => {
            if let Some(version) = npy_version {
                let h = npy::parse_header(file, Path::new("x")).unwrap();
                let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                let shape = match shape.len() {
                    1 => format!("({},)", shape[0]),
                    _ => format!("({})", shape.join(", ")),
                };
                let descr = h.dtype.descr();
                b = npy_file(version, &dict(descr, false, &shape), &file[h.data_offset..]);
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(config(160, 0x1D8_0003))]

    /// The four IDX files, each plain or compressed, one of them changed.
    #[test]
    fn idx_directory_with_a_damaged_file(
        which in 0usize..4,
        gz in proptest::collection::vec(any::<bool>(), 4),
        compress_after in any::<bool>(),
        m in mutation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (k, (name, file)) in IDX_FILES.iter().zip(idx_files()).enumerate() {
            let file = if k != which {
                file
            } else if gz[k] && compress_after {
                gzip(&apply(&m, &file, None))
            } else if gz[k] {
                apply(&m, &gzip(&file), None)
            } else {
                apply(&m, &file, None)
            };
            let name = if gz[k] { format!("{name}.gz") } else { name.to_string() };
            std::fs::write(dir.path().join(name), file).unwrap();
        }
        run(dir.path(), BOUND)?;
    }

    /// The four NPY files of each kind and version, one of them changed.
    #[test]
    fn npy_directory_with_a_damaged_file(
        which in 0usize..4,
        kind in 0u8..3,
        version in 1u8..=3,
        m in mutation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (k, (name, file)) in NPY_FILES.iter().zip(npy_files(kind, version)).enumerate() {
            let file = if k == which { apply(&m, &file, Some(version)) } else { file };
            std::fs::write(dir.path().join(name), file).unwrap();
        }
        run(dir.path(), BOUND)?;
    }
}

/// The undamaged directories load.
#[test]
fn undamaged_directories_load() {
    let dir = tempfile::tempdir().unwrap();
    for (name, file) in IDX_FILES.iter().zip(idx_files()) {
        std::fs::write(dir.path().join(name), file).unwrap();
    }
    assert!(run(dir.path(), BOUND).unwrap());
    for kind in 0..3 {
        for version in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            for (name, file) in NPY_FILES.iter().zip(npy_files(kind, version)) {
                std::fs::write(dir.path().join(name), file).unwrap();
            }
            assert!(run(dir.path(), BOUND).unwrap(), "kind {kind} v{version}");
        }
    }
}

/// Test parts of no samples whose other dimensions are huge or overflow: refused (or read as
/// an empty part of the training width) without a panic or an allocation.
#[test]
fn empty_parts_with_huge_widths() {
    let tr = idx_files();
    for dims in [
        vec![0u32, u32::MAX, u32::MAX, u32::MAX],
        vec![0, 1 << 31, 1 << 31],
        vec![0, 0],
        vec![3, 0],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut file = vec![0, 0, 0x08, dims.len() as u8];
        for d in &dims {
            file.extend_from_slice(&d.to_be_bytes());
        }
        let labels = idx::encode_idx(&[dims[0] as usize], &vec![0; dims[0] as usize]).unwrap();
        for (name, bytes) in IDX_FILES
            .iter()
            .zip([tr[0].clone(), tr[1].clone(), file, labels])
        {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let (r, stats) = alloc::measure(|| load_dir::<f32>(dir.path()));
        assert!(stats.peak < 1 << 20, "{dims:?}: {stats:?}");
        assert_error(&r.unwrap_err(), dir.path().to_str().unwrap());
    }
    for shape in [
        "(0, 4611686018427387904)",
        "(0, 4294967296, 4294967296)",
        "(0, 0)",
        "(4, 0)",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut files = npy_files(2, 1);
        files[2] = npy_file(1, &dict("<f8", false, shape), &[]);
        files[3] = npy_file(1, &dict("<f8", false, shape), &[]);
        for (name, bytes) in NPY_FILES.iter().zip(files) {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let (r, stats) = alloc::measure(|| load_dir::<f32>(dir.path()));
        assert!(stats.peak < 1 << 20, "{shape}: {stats:?}");
        assert_error(&r.unwrap_err(), dir.path().to_str().unwrap());
    }
}
