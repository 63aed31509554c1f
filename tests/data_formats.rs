//! IDX and NPY readers and writers: round trips and every bad-file case.

mod common;

use itlin::Error;
use itlin::data::idx::{self, IdxArray};
use itlin::data::npy::{self, Dtype};
use rand::Rng;
use std::path::{Path, PathBuf};

const SHAPES: &[&[usize]] = &[
    &[],
    &[0],
    &[1],
    &[7],
    &[3, 4],
    &[0, 5],
    &[2, 3, 4],
    &[2, 1, 3, 2],
    &[3, 0, 2, 2],
];

fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = common::rng(seed);
    (0..n).map(|_| rng.random::<u8>()).collect()
}

/// Asserts that `r` is an `Error::Format` whose message names `file` and contains `needle`.
#[track_caller]
fn assert_format_err<T: std::fmt::Debug>(r: itlin::Result<T>, file: &Path, needle: &str) {
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Format { .. }),
        "expected a Format error, got {e:?}"
    );
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name), "message does not name {name}: {msg}");
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "message does not say '{needle}': {msg}"
    );
    assert!(!msg.contains('\n'), "message is not one line: {msg}");
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------- IDX

#[test]
fn idx_round_trip_plain_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    for (k, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let data = random_bytes(k as u64, n);
        for name in [format!("a{k}-idx"), format!("a{k}-idx.gz")] {
            let p = dir.path().join(&name);
            idx::write_idx(&p, shape, &data).unwrap();
            let raw = std::fs::read(&p).unwrap();
            assert_eq!(
                raw.starts_with(&[0x1f, 0x8b]),
                name.ends_with(".gz"),
                "{name}: gzip iff .gz"
            );
            let back = idx::read_idx(&p).unwrap();
            assert_eq!(
                back,
                IdxArray {
                    dims: shape.to_vec(),
                    data: data.clone()
                },
                "{name}"
            );
        }
    }
}

#[test]
fn idx_layout_is_big_endian_standard() {
    let bytes = idx::encode_idx(&[2, 258], &[7; 516]).unwrap();
    assert_eq!(&bytes[..4], &[0, 0, 0x08, 2]);
    assert_eq!(&bytes[4..8], &[0, 0, 0, 2]);
    assert_eq!(&bytes[8..12], &[0, 0, 1, 2]);
    assert_eq!(bytes.len(), 12 + 516);
}

#[test]
fn idx_gzip_is_detected_by_magic_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("x.gz");
    idx::write_idx(&gz, &[2, 2], &[1, 2, 3, 4]).unwrap();
    let renamed = dir.path().join("x-idx1-ubyte");
    std::fs::rename(&gz, &renamed).unwrap();
    assert_eq!(idx::read_idx(&renamed).unwrap().data, vec![1, 2, 3, 4]);
}

#[test]
fn idx_bad_files_name_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = idx::encode_idx(&[3, 4], &random_bytes(1, 12)).unwrap();

    let mut wrong_magic = good.clone();
    wrong_magic[0] = 0x12;
    let p = write_bytes(d, "wrong-magic-idx", &wrong_magic);
    assert_format_err(idx::read_idx(&p), &p, "wrong magic");

    let p = write_bytes(d, "tiny-idx", &[0, 0]);
    assert_format_err(idx::read_idx(&p), &p, "too short");

    let mut float = good.clone();
    float[2] = 0x0D;
    let p = write_bytes(d, "float-idx", &float);
    assert_format_err(idx::read_idx(&p), &p, "type 0x0d (32-bit float)");

    let p = write_bytes(d, "short-header-idx", &good[..6]);
    assert_format_err(idx::read_idx(&p), &p, "truncated IDX header");

    let p = write_bytes(d, "short-data-idx", &good[..good.len() - 1]);
    assert_format_err(idx::read_idx(&p), &p, "truncated IDX data");

    let mut long = good.clone();
    long.push(0);
    let p = write_bytes(d, "long-data-idx", &long);
    assert_format_err(idx::read_idx(&p), &p, "1 extra");

    // A gzip stream cut in half.
    let gz = d.join("full.gz");
    idx::write_idx(&gz, &[100, 10], &random_bytes(2, 1000)).unwrap();
    let bytes = std::fs::read(&gz).unwrap();
    let p = write_bytes(d, "cut.gz", &bytes[..bytes.len() / 2]);
    assert_format_err(idx::read_idx(&p), &p, "gzip");

    // parse_idx names the given name.
    assert_format_err(
        idx::parse_idx(&wrong_magic, Path::new("some/where/named-idx")),
        Path::new("named-idx"),
        "wrong magic",
    );

    let missing = d.join("missing-idx");
    let e = idx::read_idx(&missing).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("missing-idx"), "{e}");
}

/// A header of 255 dimensions gives a short message: the first dimensions and a count.
#[test]
fn idx_many_dimensions_give_a_short_message() {
    let mut file = vec![0, 0, 0x08, 255];
    for k in 0..255u32 {
        file.extend_from_slice(&(1_000_000 + k).to_be_bytes());
    }
    let p = Path::new("dims255-idx");
    let r = idx::parse_idx(&file, p);
    assert_format_err(r, p, "(255 dimensions)");
    let msg = idx::parse_idx(&file, p).unwrap_err().to_string();
    assert!(msg.len() < 200, "{} characters: {msg}", msg.len());
    // Also when the product fits and the data are short.
    let mut ones = vec![0, 0, 0x08, 255];
    for _ in 0..255 {
        ones.extend_from_slice(&1u32.to_be_bytes());
    }
    let msg = idx::parse_idx(&ones, p).unwrap_err().to_string();
    assert!(msg.len() < 200 && msg.contains("truncated"), "{msg}");
    // And an NPY shape of 5,000 dimensions.
    let dict = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}), }}",
        vec!["1"; 5000].join(", ")
    );
    let msg = npy::parse_npy::<f64>(&npy_bytes(2, &dict, &[]), Path::new("x.npy"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.len() < 200 && msg.contains("(5000 dimensions)"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- NPY

fn random_f64(seed: u64, n: usize) -> Vec<f64> {
    let mut rng = common::rng(seed);
    let special = [0.0, -0.0, 1.0, f64::MAX, f64::MIN_POSITIVE, 5e-324, -1e300];
    (0..n)
        .map(|i| {
            if i < special.len() && seed.is_multiple_of(2) {
                special[i]
            } else {
                (rng.random::<f64>() - 0.5) * 10f64.powi(rng.random_range(-30..30))
            }
        })
        .collect()
}

fn random_f32(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = common::rng(seed + 1000);
    let special = [0.0, -0.0, 1.0, f32::MAX, f32::MIN_POSITIVE, 1e-45, -1e30];
    (0..n)
        .map(|i| {
            if i < special.len() && seed.is_multiple_of(2) {
                special[i]
            } else {
                (rng.random::<f32>() - 0.5) * 10f32.powi(rng.random_range(-20..20))
            }
        })
        .collect()
}

#[test]
fn npy_round_trip_f64_f32_u8_labels() {
    let dir = tempfile::tempdir().unwrap();
    for (k, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let p = dir.path().join(format!("a{k}.npy"));

        let v64 = random_f64(k as u64, n);
        npy::write_npy(&p, shape, &v64).unwrap();
        let h = npy::read_header(&p).unwrap();
        assert_eq!((h.dtype, h.shape.as_slice()), (Dtype::F64, *shape));
        let back = npy::read_npy::<f64>(&p).unwrap();
        assert_eq!(back.shape, shape.to_vec());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.data), bits(&v64), "f64 {shape:?}");

        let v32 = random_f32(k as u64, n);
        npy::write_npy(&p, shape, &v32).unwrap();
        assert_eq!(npy::read_header(&p).unwrap().dtype, Dtype::F32);
        let back = npy::read_npy::<f32>(&p).unwrap();
        assert_eq!(back.shape, shape.to_vec());
        let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits32(&back.data), bits32(&v32), "f32 {shape:?}");
        // f32 on disk read as f64 is exact.
        let wide = npy::read_npy::<f64>(&p).unwrap();
        assert!(wide.data.iter().zip(&v32).all(|(a, &b)| *a == b as f64));

        let bytes = random_bytes(k as u64, n);
        npy::write_npy_u8(&p, shape, &bytes).unwrap();
        assert_eq!(npy::read_header(&p).unwrap().dtype, Dtype::U8);
        let back = npy::read_npy::<f64>(&p).unwrap();
        assert_eq!(back.shape, shape.to_vec());
        assert!(back.data.iter().zip(&bytes).all(|(a, &b)| *a == b as f64));

        let labels: Vec<i64> = (0..n as i64).map(|i| i * 7919 - 3 - (i << 40)).collect();
        npy::write_npy_labels(&p, shape, &labels).unwrap();
        let back = npy::read_npy_labels(&p).unwrap();
        assert_eq!((back.shape, back.data), (shape.to_vec(), labels));
    }
}

#[test]
fn npy_f64_read_as_f32_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.npy");
    let v = random_f64(3, 50);
    npy::write_npy(&p, &[5, 10], &v).unwrap();
    let back = npy::read_npy::<f32>(&p).unwrap();
    assert!(back.data.iter().zip(&v).all(|(a, &b)| *a == b as f32));
}

/// An NPY file with a hand-written header dictionary and raw element bytes.
fn npy_bytes(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let mut b = b"\x93NUMPY".to_vec();
    b.push(version);
    b.push(0);
    if version == 1 {
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(dict.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn npy_reads_big_endian_and_versions_2_and_3() {
    let v = [1.5f64, -2.25, 1e-300];
    let be: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
    let le: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let name = Path::new("v.npy");
    let a = npy::parse_npy::<f64>(
        &npy_bytes(
            1,
            "{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }\n",
            &be,
        ),
        name,
    )
    .unwrap();
    assert_eq!(a.data, v);
    for version in [2, 3] {
        let a = npy::parse_npy::<f64>(
            &npy_bytes(
                version,
                "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(3,)}",
                &le,
            ),
            name,
        )
        .unwrap();
        assert_eq!(a.data, v, "version {version}");
    }
    let i32s: Vec<u8> = [-4i32, 0, 9].iter().flat_map(|x| x.to_be_bytes()).collect();
    let l = npy::parse_npy_labels(
        &npy_bytes(
            1,
            "{'descr': '>i4', 'fortran_order': False, 'shape': (3,)}",
            &i32s,
        ),
        name,
    )
    .unwrap();
    assert_eq!(l.data, vec![-4, 0, 9]);
}

#[test]
fn npy_bad_files_name_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let six = f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let dict23 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";

    let p = write_bytes(d, "magic.npy", b"PK\x03\x04 this is a zip");
    assert_format_err(npy::read_npy::<f64>(&p), &p, "wrong magic");
    let p = write_bytes(d, "empty.npy", b"");
    assert_format_err(npy::read_npy::<f64>(&p), &p, "wrong magic");

    let mut v4 = npy_bytes(1, dict23, &six);
    v4[6] = 4;
    let p = write_bytes(d, "version.npy", &v4);
    assert_format_err(npy::read_npy::<f64>(&p), &p, "version 4.0");

    let full = npy_bytes(1, dict23, &six);
    let p = write_bytes(d, "cut-header.npy", &full[..30]);
    assert_format_err(npy::read_npy::<f64>(&p), &p, "truncated NPY header");

    let p = write_bytes(d, "cut-data.npy", &full[..full.len() - 3]);
    assert_format_err(npy::read_npy::<f64>(&p), &p, "truncated NPY data");
    assert_format_err(npy::read_npy_labels(&p), &p, "integer labels");

    let mut long = full.clone();
    long.extend_from_slice(&[0; 8]);
    let p = write_bytes(d, "long.npy", &long);
    assert_format_err(npy::read_npy::<f64>(&p), &p, "8 extra");

    let p = write_bytes(
        d,
        "nan.npy",
        &npy_bytes(1, dict23, &f64s(&[1.0, 2.0, 3.0, 4.0, f64::NAN, 6.0])),
    );
    assert_format_err(npy::read_npy::<f64>(&p), &p, "NaN at index (1, 1)");

    let p = write_bytes(
        d,
        "inf.npy",
        &npy_bytes(
            1,
            dict23,
            &f64s(&[f64::NEG_INFINITY, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
    );
    assert_format_err(npy::read_npy::<f32>(&p), &p, "-inf at index (0, 0)");

    let p = write_bytes(
        d,
        "overflow.npy",
        &npy_bytes(1, dict23, &f64s(&[1.0, 2.0, 1e300, 4.0, 5.0, 6.0])),
    );
    assert!(npy::read_npy::<f64>(&p).is_ok());
    assert_format_err(npy::read_npy::<f32>(&p), &p, "overflows f32");

    let fortran = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
    let p = write_bytes(d, "fortran.npy", &npy_bytes(1, fortran, &six));
    assert_format_err(npy::read_npy::<f64>(&p), &p, "Fortran");
    // The same layout as C order when at most one dimension exceeds 1: accepted.
    let fortran_row = "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 6), }";
    let p = write_bytes(d, "fortran-row.npy", &npy_bytes(1, fortran_row, &six));
    assert_eq!(npy::read_npy::<f64>(&p).unwrap().data.len(), 6);

    for (file, descr) in [
        ("complex.npy", "'<c16'"),
        ("half.npy", "'<f2'"),
        ("string.npy", "'<U3'"),
        ("record.npy", "[('a', '<f8')]"),
    ] {
        let dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (6,), }}");
        let p = write_bytes(d, file, &npy_bytes(1, &dict, &six));
        assert_format_err(npy::read_npy::<f64>(&p), &p, "unsupported dtype");
    }

    let p = write_bytes(
        d,
        "no-shape.npy",
        &npy_bytes(1, "{'descr': '<f8', 'fortran_order': False}", &six),
    );
    assert_format_err(npy::read_npy::<f64>(&p), &p, "no 'shape'");

    let p = write_bytes(d, "garbage.npy", &npy_bytes(1, "{'descr': '<f8', ", &six));
    assert_format_err(npy::read_npy::<f64>(&p), &p, "cannot parse");

    let labels_as_floats = d.join("float-labels.npy");
    npy::write_npy(&labels_as_floats, &[3], &[0.0f32, 1.0, 2.0]).unwrap();
    assert_format_err(
        npy::read_npy_labels(&labels_as_floats),
        &labels_as_floats,
        "expected integer labels, found dtype float32",
    );

    let big = d.join("u64.npy");
    let data: Vec<u8> = [1u64, u64::MAX]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(
        &big,
        npy_bytes(
            1,
            "{'descr': '<u8', 'fortran_order': False, 'shape': (2,)}",
            &data,
        ),
    )
    .unwrap();
    assert_format_err(npy::read_npy_labels(&big), &big, "does not fit in int64");

    let missing = d.join("missing.npy");
    let e = npy::read_npy::<f64>(&missing).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.npy"), "{e}");
}

#[test]
fn npy_writer_header_is_numpy_layout() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.npy");
    npy::write_npy(&p, &[2, 3], &[0f32; 6]).unwrap();
    let b = std::fs::read(&p).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let dict = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(
        dict.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"),
        "{dict}"
    );
    assert!(dict.ends_with(" \n"));
    assert_eq!(b.len(), 10 + hlen + 24);
}

#[test]
#[should_panic(expected = "shape [2, 3] holds 6 elements but data has 5")]
fn npy_write_shape_mismatch_panics() {
    let dir = tempfile::tempdir().unwrap();
    let _ = npy::write_npy(&dir.path().join("x.npy"), &[2, 3], &[0f64; 5]);
}

// ---------------------------------------------------------------- robustness (proptest)

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes never panic a reader: they parse or give a Format error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let name = Path::new("fuzz");
            for r in [
                idx::parse_idx(&bytes, name).map(|_| ()),
                npy::parse_npy::<f32>(&bytes, name).map(|_| ()),
                npy::parse_npy_labels(&bytes, name).map(|_| ()),
            ] {
                if let Err(e) = r {
                    prop_assert!(matches!(e, Error::Format { .. }), "{e:?}");
                }
            }
        }

        /// Any prefix of a valid file is an error, and a valid file with one byte changed
        /// parses or errors, never panics.
        #[test]
        fn truncated_or_corrupted_files(
            shape in proptest::collection::vec(0usize..5, 0..4),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let n: usize = shape.iter().product();
            let data: Vec<f64> = (0..n).map(|i| i as f64 - 2.5).collect();
            let name = Path::new("f.npy");
            let file = npy::encode_npy(&shape, &data);
            prop_assert_eq!(npy::parse_npy::<f64>(&file, name).unwrap().data, data);
            let k = cut.index(file.len());
            prop_assert!(npy::parse_npy::<f64>(&file[..k], name).is_err());
            let mut bad = file.clone();
            bad[flip.index(file.len())] ^= xor;
            let _ = npy::parse_npy::<f64>(&bad, name);

            let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let file = idx::encode_idx(&shape, &bytes).unwrap();
            prop_assert_eq!(&idx::parse_idx(&file, name).unwrap().data, &bytes);
            let k = cut.index(file.len());
            prop_assert!(idx::parse_idx(&file[..k], name).is_err());
            let mut bad = file.clone();
            bad[flip.index(file.len())] ^= xor;
            let _ = idx::parse_idx(&bad, name);
        }
    }
}
