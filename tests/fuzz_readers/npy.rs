//! The NPY reader, format versions 1.0, 2.0 and 3.0.

use super::common::strategies::config;
use super::{BOUND, alloc, assert_error, check_error, check_memory};
use itlin::data::npy;
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;

const NAME: &str = "fuzz.npy";

/// An NPY file of format `version` with header dictionary `dict` (padded as numpy pads it)
/// and element bytes `data`.
pub fn npy_file(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let version = if version == 1 && dict.len() > 60_000 {
        2
    } else {
        version
    };
    let pre = if version == 1 { 10 } else { 12 };
    let mut text = dict.to_string();
    while !(pre + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The header dictionary of a plain array.
pub fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let f = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}")
}

/// A Python tuple literal of `shape`.
pub fn tuple(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

const DESCRS: [(&str, usize); 14] = [
    ("|u1", 1),
    ("|i1", 1),
    ("<u2", 2),
    (">i2", 2),
    ("<u4", 4),
    ("<i4", 4),
    ("<u8", 8),
    ("<i8", 8),
    ("<f4", 4),
    (">f4", 4),
    ("<f8", 8),
    (">f8", 8),
    ("<f2", 2),
    ("<c16", 16),
];

/// Runs every NPY parser on `bytes` under the counting allocator and checks each outcome;
/// returns whether an array reader (not only the header reader) accepted the bytes.
fn run(bytes: &[u8], bound: usize) -> Result<bool, TestCaseError> {
    let name = Path::new(NAME);
    let (r, stats) = alloc::measure(|| {
        [
            npy::parse_header(bytes, name).map(|h| h.n_elements().unwrap_or(0)),
            npy::parse_npy::<f32>(bytes, name).map(|a| a.data.len()),
            npy::parse_npy::<f64>(bytes, name).map(|a| a.data.len()),
            npy::parse_npy_labels(bytes, name).map(|a| a.data.len()),
        ]
    });
    check_memory(stats, bound, "NPY parsers")?;
    let mut any_ok = false;
    for (k, r) in r.into_iter().enumerate() {
        match r {
            Ok(_) => any_ok |= k > 0,
            Err(e) => check_error(&e, NAME)?,
        }
    }
    Ok(any_ok)
}

/// Header texts that claim huge, overflowing or malformed shapes, or that hold characters a
/// message must not copy (newlines, control characters, a very long text).
fn evil_dicts() -> Vec<String> {
    let long_shape = format!("({})", vec!["1"; 5000].join(", "));
    let nested = format!("{}1{}", "(".repeat(40), ")".repeat(40));
    vec![
        dict("<f8", false, "(2147483648,)"),
        dict("<f4", false, "(2147483648, 784)"),
        dict("|u1", false, "(4294967296, 4294967296, 4294967296)"),
        dict("<f8", false, "(0, 4611686018427387904)"),
        dict("<f8", false, "(0, 4294967296, 4294967296, 4294967296)"),
        dict("<i8", false, "(18446744073709551616,)"),
        dict(
            "<f8",
            false,
            "(99999999999999999999999999999999999999999999,)",
        ),
        dict("<f8", false, "(-1, 3)"),
        dict("<f8", false, &long_shape),
        dict("<f8", true, "(2147483648, 2)"),
        dict("<f8", false, &nested),
        dict("a\nb\rc\u{0b}d\u{85}e", false, "(3,)"),
        format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (3,), '{}': 1}}\n\n",
            "x".repeat(3000)
        ),
        format!("{{'descr': '<f8',\n 'fortran_order': Fals\ne, 'shape': (3,)}}"),
        format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (3,)}} {}",
            "\n".repeat(100)
        ),
        "\u{0}\u{1}\u{7f}{".to_string(),
        String::new(),
    ]
}

/// One change to a valid file.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Cut(Index),
    /// The header-length field set to a value (2 bytes for 1.0, 4 for 2.0 and 3.0).
    HeaderLen(u32),
    /// The version byte.
    Version(u8),
    /// The header text replaced by one of [`evil_dicts`].
    Dict(Index),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Cut),
        prop_oneof![
            proptest::sample::select(&[0u32, 1, 63, 65_535, 1 << 31, u32::MAX][..]),
            any::<u32>()
        ]
        .prop_map(Mutation::HeaderLen),
        any::<u8>().prop_map(Mutation::Version),
        any::<Index>().prop_map(Mutation::Dict),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

proptest! {
    #![proptest_config(config(512, 0x1D8_0002))]

    /// Arbitrary bytes, bare and behind a valid magic and version.
    #[test]
    fn arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        version in 0u8..5,
    ) {
        run(&bytes, BOUND)?;
        let mut b = b"\x93NUMPY".to_vec();
        b.extend_from_slice(&[version, 0]);
        b.extend_from_slice(&bytes);
        run(&b, BOUND)?;
    }

    /// A valid file of any version, dtype, byte order and shape, changed once.
    #[test]
    fn mutated_files(
        version in 1u8..=3,
        descr in proptest::sample::select(&DESCRS[..]),
        fortran in any::<bool>(),
        shape in proptest::collection::vec(0usize..5, 0..4),
        seed in any::<u64>(),
        m in mutation(),
    ) {
        let (descr, size) = descr;
        let n: usize = shape.iter().product();
        // Small integers in every element type's bytes (finite when read as floats).
        let data: Vec<u8> = (0..n * size)
            .map(|i| if i % size == 0 { (seed >> (i % 56)) as u8 & 0x3f } else { 0 })
            .collect();
        let file = npy_file(version, &dict(descr, fortran, &tuple(&shape)), &data);
        let len_at = 8;
        let mut bytes = file.clone();
        match &m {
            Mutation::Flip(i, bit) => bytes[i.index(file.len())] ^= 1 << bit,
            Mutation::Cut(i) => bytes.truncate(i.index(file.len())),
            Mutation::HeaderLen(v) => {
                if version == 1 {
                    bytes[len_at..len_at + 2].copy_from_slice(&(*v as u16).to_le_bytes());
                } else {
                    bytes[len_at..len_at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            Mutation::Version(v) => bytes[6] = *v,
            Mutation::Dict(i) => {
                let evil = evil_dicts();
                bytes = npy_file(version, &evil[i.index(evil.len())], &data);
            }
            Mutation::Append(tail) => bytes.extend_from_slice(tail),
        }
        let ok = run(&bytes, BOUND)?;
        if matches!(m, Mutation::Cut(_)) {
            // A prefix may still hold a whole header, never the whole array.
            prop_assert!(!ok, "a cut file was accepted");
        }
    }
}

/// Every prefix of a valid file of each version is refused by the array readers.
#[test]
fn every_truncation_is_refused() {
    let name = Path::new(NAME);
    for version in 1..=3 {
        for shape in [&[][..], &[0], &[3], &[2, 3]] {
            let n: usize = shape.iter().product();
            let data: Vec<u8> = (0..n).flat_map(|i| (i as f64).to_le_bytes()).collect();
            let file = npy_file(version, &dict("<f8", false, &tuple(shape)), &data);
            for k in 0..file.len() {
                run(&file[..k], BOUND).unwrap();
                assert!(
                    npy::parse_npy::<f64>(&file[..k], name).is_err(),
                    "v{version} {k}"
                );
            }
            assert_eq!(npy::parse_npy::<f64>(&file, name).unwrap().data.len(), n);
        }
    }
}

/// Every header text of [`evil_dicts`], in every version: refused within 1 MiB, with a short
/// one-line message.
#[test]
fn evil_headers_are_refused_briefly() {
    for version in 1..=3 {
        for d in evil_dicts() {
            let file = npy_file(version, &d, &[0; 64]);
            let ok = run(&file, 1 << 20).unwrap();
            assert!(!ok, "v{version}: accepted {d:?}");
        }
    }
}

/// `read_header` reads only the header; a header length claiming 4 GiB in a small file is
/// refused without allocating it.
#[test]
fn read_header_trusts_no_claimed_length() {
    let dir = tempfile::tempdir().unwrap();
    let good = npy_file(2, &dict("<f8", false, "(3,)"), &[0; 24]);
    for claim in [u32::MAX, 1 << 31, 1 << 20, 1000] {
        let mut b = good.clone();
        b[8..12].copy_from_slice(&claim.to_le_bytes());
        let p = dir.path().join("claim.npy");
        std::fs::write(&p, &b).unwrap();
        let (r, stats) = alloc::measure(|| npy::read_header(&p));
        assert!(
            stats.largest < 1 << 20 && stats.peak < 1 << 20,
            "{claim}: {stats:?}"
        );
        assert_error(&r.unwrap_err(), p.to_str().unwrap());
    }
    let p = dir.path().join("good.npy");
    std::fs::write(&p, &good).unwrap();
    assert_eq!(npy::read_header(&p).unwrap().shape, vec![3]);
}
