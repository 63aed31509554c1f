//! The NPY reader and writer against files written by numpy itself
//! (`tests/fixtures/npy/make_fixtures.py`, numpy 2.4).

use itlin::data::npy;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npy")
        .join(name)
}

#[test]
fn reads_numpy_files() {
    let a = npy::read_npy::<f32>(&fixture("f32_2x3.npy")).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    let want: Vec<f32> = (0..6).map(|i| i as f32 / 7.0).collect();
    assert_eq!(a.data, want);

    let a = npy::read_npy::<f64>(&fixture("f64_be.npy")).unwrap();
    assert_eq!(a.data, vec![1.5, -2.25, 1e-300, 3e200]);

    let a = npy::read_npy::<f64>(&fixture("f64_scalar.npy")).unwrap();
    assert_eq!((a.shape, a.data), (vec![], vec![2.5]));

    let a = npy::read_npy::<f64>(&fixture("f64_empty_0x3.npy")).unwrap();
    assert_eq!((a.shape, a.data.len()), (vec![0, 3], 0));

    let a = npy::read_npy::<f32>(&fixture("u8_2x2x3.npy")).unwrap();
    assert_eq!(a.shape, vec![2, 2, 3]);
    assert_eq!(a.data, (0..12).map(|i| (i * 20) as f32).collect::<Vec<_>>());

    for (file, want) in [
        ("i64_labels.npy", vec![3, 0, -2, 9, 1]),
        ("i32_labels.npy", vec![7, 1, 0]),
        ("u8_labels.npy", vec![255, 0, 4]),
    ] {
        assert_eq!(
            npy::read_npy_labels(&fixture(file)).unwrap().data,
            want,
            "{file}"
        );
    }

    for file in ["v2.npy", "v3.npy"] {
        let a = npy::read_npy::<f64>(&fixture(file)).unwrap();
        assert_eq!(
            (a.shape, a.data),
            (vec![2, 2], vec![-1.5, -0.5, 0.5, 1.5]),
            "{file}"
        );
    }
}

#[test]
fn rejects_numpy_files_we_do_not_support() {
    for (file, needle) in [
        ("fortran_2x3.npy", "Fortran"),
        ("nan.npy", "NaN at index (1)"),
        ("f16.npy", "unsupported dtype '<f2'"),
    ] {
        let e = npy::read_npy::<f64>(&fixture(file))
            .unwrap_err()
            .to_string();
        assert!(e.contains(file) && e.contains(needle), "{file}: {e}");
    }
}

#[test]
fn writer_produces_the_bytes_of_np_save() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    let same = |file: &str| {
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(fixture(file)).unwrap(),
            "{file}"
        );
    };
    let v: Vec<f32> = (0..6).map(|i| i as f32 / 7.0).collect();
    npy::write_npy(&out, &[2, 3], &v).unwrap();
    same("f32_2x3.npy");
    npy::write_npy(&out, &[], &[2.5f64]).unwrap();
    same("f64_scalar.npy");
    npy::write_npy::<f64>(&out, &[0, 3], &[]).unwrap();
    same("f64_empty_0x3.npy");
    let b: Vec<u8> = (0..12).map(|i| i * 20).collect();
    npy::write_npy_u8(&out, &[2, 2, 3], &b).unwrap();
    same("u8_2x2x3.npy");
    npy::write_npy_labels(&out, &[5], &[3, 0, -2, 9, 1]).unwrap();
    same("i64_labels.npy");
}
