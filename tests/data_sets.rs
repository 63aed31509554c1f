//! Data sets: embedded MNIST, `load_dir` (IDX and NPY), teacher-student, standardisation,
//! and `Dataset` helpers.

mod common;

use faer::Mat;
use itlin::data::{
    self, Dataset, Standardizer, TeacherStudent, idx, load_dir, mnist_embedded,
    mnist_embedded_split, npy,
};
use itlin::{Activation, Error, Init, Mlp, Model};
use sha2::{Digest, Sha256};
use std::path::Path;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[track_caller]
fn assert_err_names<T: std::fmt::Debug>(r: itlin::Result<T>, names: &[&str]) -> String {
    let msg = r.expect_err("expected an error").to_string();
    for n in names {
        assert!(msg.contains(n), "message does not contain '{n}': {msg}");
    }
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

// ---------------------------------------------------------------- embedded MNIST

#[test]
fn embedded_files_match_sha256_and_readme() {
    let readme = include_str!("../data/README.md");
    for (bytes, constant) in [
        (data::MNIST10K_IMAGES_GZ, data::MNIST10K_IMAGES_SHA256),
        (data::MNIST10K_LABELS_GZ, data::MNIST10K_LABELS_SHA256),
    ] {
        let sum = hex(&Sha256::digest(bytes));
        assert_eq!(sum, constant);
        assert!(readme.contains(&sum), "data/README.md lacks {sum}");
    }
    assert!(readme.contains("Juan Cazala") && readme.contains("LeCun"));
    assert!(readme.contains("Permission is hereby granted, free of charge"));
}

#[track_caller]
fn check_part(part: &Dataset<f32>, rows: usize) {
    assert_eq!(part.len(), rows);
    assert_eq!((part.n_features(), part.n_outputs()), (784, 10));
    assert!(part.is_classification());
    let labels = part.labels.as_ref().unwrap();
    let mut seen = [0usize; 10];
    for (n, &l) in labels.iter().enumerate() {
        seen[l as usize] += 1;
        let row_sum: f32 = (0..10).map(|c| part.y[(n, c)]).sum();
        assert_eq!(row_sum, 1.0, "row {n}");
        assert_eq!(part.y[(n, l as usize)], 1.0, "row {n}");
    }
    assert!(seen.iter().all(|&s| s > 0), "class counts {seen:?}");
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for j in 0..784 {
        for i in 0..rows {
            let v = part.x[(i, j)];
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    assert_eq!((lo, hi), (0.0, 1.0));
}

#[test]
fn embedded_mnist_default_split() {
    let s = mnist_embedded::<f32>().unwrap();
    check_part(&s.train, 8000);
    check_part(&s.test, 2000);

    // Rows are the raw bytes / 255 in file order: train row 0 is digit 0, test row 0 is 8000.
    let raw = idx::parse_idx(data::MNIST10K_IMAGES_GZ, Path::new("images")).unwrap();
    assert_eq!(raw.dims, vec![10000, 28, 28]);
    let labels = idx::parse_idx(data::MNIST10K_LABELS_GZ, Path::new("labels")).unwrap();
    for (part, offset) in [(&s.train, 0), (&s.test, 8000)] {
        for row in [0, 1, 1999] {
            for j in 0..784 {
                let b = raw.data[(offset + row) * 784 + j];
                assert_eq!(part.x[(row, j)], (b as f64 / 255.0) as f32);
            }
            assert_eq!(
                part.labels.as_ref().unwrap()[row],
                labels.data[offset + row] as u32
            );
        }
    }

    // f64 version agrees.
    let s64 = mnist_embedded::<f64>().unwrap();
    assert_eq!(s64.train.len(), 8000);
    assert_eq!(s64.test.x[(5, 400)] as f32, s.test.x[(5, 400)]);
}

#[test]
fn embedded_mnist_custom_split() {
    let s = mnist_embedded_split::<f32>(9999).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (9999, 1));
    for bad in [0, 10_000, 20_000] {
        let e = mnist_embedded_split::<f32>(bad).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        assert!(e.to_string().contains("9,999"), "{e}");
    }
}

// ---------------------------------------------------------------- load_dir: IDX

fn write_idx_dir(dir: &Path, gz: [bool; 4]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let tr_x: Vec<u8> = (0..6 * 6).map(|i| (i * 7 % 256) as u8).collect();
    let tr_y = vec![0u8, 1, 2, 1, 0, 2];
    let te_x: Vec<u8> = (0..3 * 6).map(|i| (255 - i) as u8).collect();
    let te_y = vec![2u8, 0, 1];
    let names = data::IDX_FILES;
    let files: [(&[usize], &[u8]); 4] = [
        (&[6, 3, 2], &tr_x),
        (&[6], &tr_y),
        (&[3, 3, 2], &te_x),
        (&[3], &te_y),
    ];
    for ((name, (dims, bytes)), gz) in names.iter().zip(files).zip(gz) {
        let file = if gz {
            format!("{name}.gz")
        } else {
            name.to_string()
        };
        idx::write_idx(&dir.join(file), dims, bytes).unwrap();
    }
    (tr_x, tr_y, te_x, te_y)
}

#[test]
fn load_dir_idx_plain_gz_and_mixed() {
    for gz in [[false; 4], [true; 4], [true, false, false, true]] {
        let dir = tempfile::tempdir().unwrap();
        let (tr_x, tr_y, te_x, te_y) = write_idx_dir(dir.path(), gz);
        let s = load_dir::<f64>(dir.path()).unwrap();
        for (part, x, y) in [(&s.train, &tr_x, &tr_y), (&s.test, &te_x, &te_y)] {
            assert_eq!((part.n_features(), part.n_outputs()), (6, 3), "{gz:?}");
            assert_eq!(part.len(), y.len());
            for i in 0..part.len() {
                for j in 0..6 {
                    assert_eq!(part.x[(i, j)], x[i * 6 + j] as f64 / 255.0);
                }
                for c in 0..3 {
                    let hot = if c == y[i] as usize { 1.0 } else { 0.0 };
                    assert_eq!(part.y[(i, c)], hot);
                }
            }
            let l: Vec<u8> = part
                .labels
                .as_ref()
                .unwrap()
                .iter()
                .map(|&l| l as u8)
                .collect();
            assert_eq!(&l, y);
        }
    }
}

#[test]
fn load_dir_idx_errors() {
    // Missing directory.
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere");
    assert_err_names(
        load_dir::<f32>(&nowhere),
        &["nowhere", "no such directory", "x_train.npy"],
    );
    // Empty directory: names both sets of expected files.
    assert_err_names(
        load_dir::<f32>(dir.path()),
        &["no data files", "t10k-labels-idx1-ubyte", "y_test.npy"],
    );
    // One file missing: named.
    write_idx_dir(dir.path(), [false; 4]);
    std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
    assert_err_names(
        load_dir::<f32>(dir.path()),
        &["missing t10k-images-idx3-ubyte[.gz]"],
    );

    // Label count differs from image count: names the labels file and both counts.
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), [false, true, false, false]);
    idx::write_idx(
        &dir.path().join("train-labels-idx1-ubyte.gz"),
        &[5],
        &[0, 1, 2, 1, 0],
    )
    .unwrap();
    assert_err_names(
        load_dir::<f32>(dir.path()),
        &[
            "train-labels-idx1-ubyte.gz",
            "label count 5",
            "image count 6",
        ],
    );

    // Test images of another width.
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), [false; 4]);
    idx::write_idx(
        &dir.path().join("t10k-images-idx3-ubyte"),
        &[3, 2, 2],
        &[0; 12],
    )
    .unwrap();
    assert_err_names(
        load_dir::<f32>(dir.path()),
        &["t10k-images-idx3-ubyte", "4 pixels", "6"],
    );

    // Images and labels swapped.
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), [false; 4]);
    idx::write_idx(
        &dir.path().join("t10k-labels-idx1-ubyte"),
        &[3, 3, 2],
        &[0; 18],
    )
    .unwrap();
    assert_err_names(
        load_dir::<f32>(dir.path()),
        &[
            "t10k-labels-idx1-ubyte",
            "must have 1 dimension",
            "[3, 3, 2]",
        ],
    );

    // A truncated file is named.
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), [false; 4]);
    let p = dir.path().join("train-images-idx3-ubyte");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 2]).unwrap();
    assert_err_names(
        load_dir::<f32>(dir.path()),
        &["train-images-idx3-ubyte", "truncated"],
    );
}

// ---------------------------------------------------------------- load_dir: NPY

#[test]
fn load_dir_npy_labels_and_u8_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tr_x: Vec<u8> = (0..4 * 2 * 2).map(|i| (i * 17) as u8).collect();
    npy::write_npy_u8(&d.join("x_train.npy"), &[4, 2, 2], &tr_x).unwrap();
    npy::write_npy_labels(&d.join("y_train.npy"), &[4], &[0, 3, 1, 3]).unwrap();
    npy::write_npy_u8(&d.join("x_test.npy"), &[2, 2, 2], &tr_x[..8]).unwrap();
    npy::write_npy_labels(&d.join("y_test.npy"), &[2, 1], &[4, 0]).unwrap();
    let s = load_dir::<f32>(d).unwrap();
    assert_eq!(
        (s.train.len(), s.train.n_features(), s.train.n_outputs()),
        (4, 4, 5)
    );
    assert_eq!((s.test.len(), s.test.n_outputs()), (2, 5));
    assert_eq!(s.train.x[(3, 1)], (tr_x[13] as f64 / 255.0) as f32);
    assert_eq!(s.train.labels.as_deref(), Some(&[0, 3, 1, 3][..]));
    assert_eq!(s.test.labels.as_deref(), Some(&[4, 0][..]));
    assert_eq!(s.test.y[(0, 4)], 1.0);

    // Negative labels are rejected, naming the file.
    npy::write_npy_labels(&d.join("y_test.npy"), &[2], &[1, -1]).unwrap();
    assert_err_names(load_dir::<f32>(d), &["y_test.npy", "negative label -1"]);
    // Labels in one part, float targets in the other.
    npy::write_npy(&d.join("y_test.npy"), &[2, 1], &[0.5f64, 1.5]).unwrap();
    assert_err_names(
        load_dir::<f32>(d),
        &["y_test.npy", "float targets", "y_train.npy"],
    );
    // Row count mismatch between x and y.
    npy::write_npy_labels(&d.join("y_test.npy"), &[3], &[0, 1, 2]).unwrap();
    assert_err_names(
        load_dir::<f32>(d),
        &["y_test.npy", "3 targets", "x_test.npy", "2 samples"],
    );
    // NaN in the features.
    npy::write_npy(
        &d.join("x_test.npy"),
        &[2, 4],
        &[0.0, 1.0, f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0],
    )
    .unwrap();
    assert_err_names(load_dir::<f32>(d), &["x_test.npy", "NaN"]);
    // One NPY file missing.
    std::fs::remove_file(d.join("y_train.npy")).unwrap();
    assert_err_names(load_dir::<f32>(d), &["missing y_train.npy"]);
}

#[test]
fn load_dir_npy_regression_and_one_hot_targets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x: Vec<f64> = (0..5 * 3).map(|i| i as f64 * 0.25 - 1.0).collect();
    npy::write_npy(&d.join("x_train.npy"), &[5, 3], &x).unwrap();
    npy::write_npy(&d.join("x_test.npy"), &[2, 3], &x[..6]).unwrap();
    let y: Vec<f32> = (0..5 * 2).map(|i| i as f32 * 0.1).collect();
    npy::write_npy(&d.join("y_train.npy"), &[5, 2], &y).unwrap();
    npy::write_npy(&d.join("y_test.npy"), &[2, 2], &y[..4]).unwrap();
    let s = load_dir::<f64>(d).unwrap();
    assert!(!s.train.is_classification());
    assert_eq!((s.train.n_features(), s.train.n_outputs()), (3, 2));
    assert_eq!(s.train.x[(4, 2)], x[14]);
    assert_eq!(s.train.y[(3, 1)], y[7] as f64);

    // Exactly one-hot float targets are read as classification.
    let oh = [0.0f32, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
    npy::write_npy(&d.join("y_train.npy"), &[5, 2], &oh).unwrap();
    npy::write_npy(&d.join("y_test.npy"), &[2, 2], &oh[..4]).unwrap();
    let s = load_dir::<f64>(d).unwrap();
    assert_eq!(s.train.labels.as_deref(), Some(&[1, 0, 1, 0, 1][..]));
    assert_eq!(s.test.labels.as_deref(), Some(&[1, 0][..]));

    // Output widths must agree.
    npy::write_npy(&d.join("y_test.npy"), &[2, 1], &[0.0f32, 1.0]).unwrap();
    assert_err_names(
        load_dir::<f64>(d),
        &["y_test.npy", "1 outputs", "y_train.npy"],
    );
}

/// The NPY feature rule: `uint8` is scaled by 1/255, floats are used as they are, and every
/// other integer dtype is refused with a message saying how to convert it.
#[test]
fn load_dir_npy_integer_features_are_refused_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    npy::write_npy_labels(&d.join("y_train.npy"), &[3], &[0, 1, 0]).unwrap();
    npy::write_npy_labels(&d.join("y_test.npy"), &[1], &[1]).unwrap();
    npy::write_npy(&d.join("x_test.npy"), &[1, 2], &[0.5f32, 2.0]).unwrap();

    // uint8: pixels, scaled.
    npy::write_npy_u8(
        &d.join("x_train.npy"),
        &[3, 2],
        &[0, 51, 102, 153, 204, 255],
    )
    .unwrap();
    let s = load_dir::<f64>(d).unwrap();
    assert_eq!(s.train.x[(0, 1)], 51.0 / 255.0);
    assert_eq!(s.train.x[(2, 1)], 1.0);
    // float32: as it is.
    assert_eq!((s.test.x[(0, 0)], s.test.x[(0, 1)]), (0.5, 2.0));

    // int64 (and every other integer dtype): refused, naming the dtype and the way out.
    npy::write_npy_labels(
        &d.join("x_train.npy"),
        &[3, 2],
        &[0, 51, 102, 153, 204, 255],
    )
    .unwrap();
    let msg = assert_err_names(
        load_dir::<f64>(d),
        &["x_train.npy", "dtype int64", "astype(np.float32)"],
    );
    assert!(msg.len() < 300, "{msg}");
    for (descr, size, name) in [
        ("|i1", 1, "int8"),
        ("<u2", 2, "uint16"),
        ("<i4", 4, "int32"),
        ("<u8", 8, "uint64"),
    ] {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1, 2), }}");
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        let pad = 64 - (10 + dict.len() + 1) % 64;
        let text = format!("{dict}{}\n", " ".repeat(pad % 64));
        file.extend_from_slice(&(text.len() as u16).to_le_bytes());
        file.extend_from_slice(text.as_bytes());
        file.extend_from_slice(&vec![1u8; 2 * size]);
        std::fs::write(d.join("x_test.npy"), &file).unwrap();
        npy::write_npy_u8(&d.join("x_train.npy"), &[3, 2], &[0; 6]).unwrap();
        assert_err_names(
            load_dir::<f64>(d),
            &["x_test.npy", &format!("dtype {name} ")],
        );
    }
}

/// A raw IDX file and its `.gz` side by side are refused, naming both; either alone loads.
#[test]
fn load_dir_refuses_a_raw_and_a_gz_file_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_idx_dir(d, [false; 4]);
    assert!(load_dir::<f32>(d).is_ok());
    let labels = std::fs::read(d.join("t10k-labels-idx1-ubyte")).unwrap();
    idx::write_idx(&d.join("t10k-labels-idx1-ubyte.gz"), &[3], &[2, 0, 1]).unwrap();
    let msg = assert_err_names(
        load_dir::<f32>(d),
        &[
            "t10k-labels-idx1-ubyte:",
            "t10k-labels-idx1-ubyte.gz",
            "both",
        ],
    );
    assert!(!msg.contains("train-"), "{msg}");
    // Either one alone is fine.
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
    assert!(load_dir::<f32>(d).is_ok());
    std::fs::write(d.join("t10k-labels-idx1-ubyte"), labels).unwrap();
    std::fs::remove_file(d.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert!(load_dir::<f32>(d).is_ok());
    // Refused even when the other files are missing (the clash is the first thing said).
    std::fs::remove_file(d.join("train-images-idx3-ubyte")).unwrap();
    idx::write_idx(&d.join("t10k-labels-idx1-ubyte.gz"), &[3], &[2, 0, 1]).unwrap();
    assert_err_names(load_dir::<f32>(d), &["t10k-labels-idx1-ubyte.gz", "both"]);
}

/// Samples of no features and targets of no outputs are refused, naming the file.
#[test]
fn load_dir_refuses_zero_widths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_idx_dir(d, [false; 4]);
    idx::write_idx(&d.join("train-images-idx3-ubyte"), &[6, 0], &[]).unwrap();
    assert_err_names(load_dir::<f32>(d), &["train-images-idx3-ubyte", "0 pixels"]);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    npy::write_npy(&d.join("x_train.npy"), &[2, 0], &[0f32; 0]).unwrap();
    npy::write_npy(&d.join("x_test.npy"), &[1, 0], &[0f32; 0]).unwrap();
    npy::write_npy(&d.join("y_train.npy"), &[2], &[1f32, 2.0]).unwrap();
    npy::write_npy(&d.join("y_test.npy"), &[1], &[1f32]).unwrap();
    assert_err_names(load_dir::<f32>(d), &["x_train.npy", "0 features"]);
    npy::write_npy(&d.join("x_train.npy"), &[2, 1], &[0f32; 2]).unwrap();
    npy::write_npy(&d.join("x_test.npy"), &[1, 1], &[0f32; 1]).unwrap();
    npy::write_npy(&d.join("y_train.npy"), &[2, 0], &[0f32; 0]).unwrap();
    assert_err_names(load_dir::<f32>(d), &["y_train.npy", "0 outputs"]);
}

// ---------------------------------------------------------------- teacher-student

fn bits(m: &Mat<f64>) -> Vec<u64> {
    common::mat_to_row_major(m.as_ref())
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn teacher_student_is_deterministic_and_seeded() {
    let cfg = TeacherStudent {
        n_train: 40,
        n_test: 15,
        widths: vec![5, 8, 2],
        activation: Activation::Tanh,
        noise: 0.1,
    };
    let a = data::teacher_student::<f64>(&cfg, 11);
    let b = data::teacher_student::<f64>(&cfg, 11);
    let c = data::teacher_student::<f64>(&cfg, 12);
    assert_eq!((a.train.len(), a.test.len()), (40, 15));
    assert_eq!((a.train.n_features(), a.train.n_outputs()), (5, 2));
    assert!(!a.train.is_classification());
    for (p, q) in [(&a.train, &b.train), (&a.test, &b.test)] {
        assert_eq!(bits(&p.x), bits(&q.x));
        assert_eq!(bits(&p.y), bits(&q.y));
    }
    assert_ne!(bits(&a.train.x), bits(&c.train.x));
    assert_ne!(bits(&a.train.y), bits(&c.train.y));
    // Train and test come from different streams.
    assert_ne!(bits(&a.train.x.subrows(0, 15).to_owned()), bits(&a.test.x));

    // f32 is the f64 set rounded.
    let a32 = data::teacher_student::<f32>(&cfg, 11);
    assert_eq!(a32.train.y[(7, 1)], a.train.y[(7, 1)] as f32);
    assert_eq!(a32.test.x[(3, 4)], a.test.x[(3, 4)] as f32);

    // More training samples: the first ones and the test set are unchanged.
    let more = data::teacher_student::<f64>(
        &TeacherStudent {
            n_train: 60,
            ..cfg.clone()
        },
        11,
    );
    assert_eq!(
        bits(&more.train.x.subrows(0, 40).to_owned()),
        bits(&a.train.x)
    );
    assert_eq!(bits(&more.test.y), bits(&a.test.y));
}

#[test]
fn teacher_student_targets_are_the_teacher_plus_noise() {
    let cfg = TeacherStudent {
        n_train: 200,
        n_test: 0,
        widths: vec![3, 6, 1],
        activation: Activation::Relu,
        noise: 0.0,
    };
    let s = data::teacher_student::<f64>(&cfg, 5);
    let mlp = Mlp::new(&cfg.widths, cfg.activation).unwrap();
    let theta: Vec<f64> = mlp.init(Init::Standard, 5);
    let f = mlp.forward(&theta, s.train.x.as_ref());
    assert_eq!(bits(&f), bits(&s.train.y));
    assert!(s.test.is_empty());

    // x ~ N(0, 1): sample moments of 200×3 draws.
    let xs = common::mat_to_vec(s.train.x.as_ref());
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / xs.len() as f64;
    assert!(
        mean.abs() < 0.15 && (var - 1.0).abs() < 0.2,
        "mean {mean}, var {var}"
    );

    // With noise, the residual has about the requested standard deviation.
    let noisy = data::teacher_student::<f64>(
        &TeacherStudent {
            noise: 0.5,
            ..cfg.clone()
        },
        5,
    );
    assert_eq!(bits(&noisy.train.x), bits(&s.train.x));
    let r: Vec<f64> = (0..200)
        .map(|i| noisy.train.y[(i, 0)] - f[(i, 0)])
        .collect();
    let sd = (r.iter().map(|v| v * v).sum::<f64>() / 200.0).sqrt();
    assert!((sd - 0.5).abs() < 0.1, "noise sd {sd}");
}

#[test]
fn teacher_student_rejects_bad_config() {
    let good = TeacherStudent::default();
    for bad in [
        TeacherStudent {
            widths: vec![4],
            ..good.clone()
        },
        TeacherStudent {
            widths: vec![4, 0, 1],
            ..good.clone()
        },
        TeacherStudent {
            n_train: 0,
            ..good.clone()
        },
        TeacherStudent {
            noise: -1.0,
            ..good.clone()
        },
        TeacherStudent {
            noise: f64::NAN,
            ..good.clone()
        },
    ] {
        let e = data::try_teacher_student::<f32>(&bad, 0).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{bad:?}: {e:?}");
    }
    assert!(data::try_teacher_student::<f32>(&good, 0).is_ok());
}

// ---------------------------------------------------------------- Standardizer

#[test]
fn standardizer_centres_and_scales_with_train_statistics() {
    let mut rng = common::rng(3);
    let mut train = common::rand_mat::<f64>(&mut rng, 50, 4);
    for i in 0..50 {
        train[(i, 1)] = 100.0 + 7.0 * train[(i, 1)];
        train[(i, 2)] = 0.3; // constant: centred only
    }
    let mut test = common::rand_mat::<f64>(&mut rng, 10, 4);
    let st = Standardizer::fit(train.as_ref());
    assert_eq!(st.n_features(), 4);
    assert_eq!(st.scale()[2], 1.0);
    let (mean, scale) = (st.mean().to_vec(), st.scale().to_vec());
    let orig_test = test.clone();
    st.apply(train.as_mut());
    st.apply(test.as_mut());
    for j in 0..4 {
        let col: Vec<f64> = (0..50).map(|i| train[(i, j)]).collect();
        let m = col.iter().sum::<f64>() / 50.0;
        let v = col.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 50.0;
        assert!(m.abs() < 1e-12, "feature {j}: mean {m}");
        let want_var = if j == 2 { 0.0 } else { 1.0 };
        assert!((v - want_var).abs() < 1e-12, "feature {j}: variance {v}");
        for i in 0..10 {
            assert_eq!(test[(i, j)], (orig_test[(i, j)] - mean[j]) / scale[j]);
        }
    }
    // f32 data are standardised through f64.
    let mut x32 = Mat::<f32>::from_fn(3, 1, |i, _| i as f32);
    Standardizer::fit(x32.as_ref()).apply(x32.as_mut());
    let s = (2.0f64 / 3.0).sqrt();
    assert_eq!(x32[(0, 0)], (-1.0 / s) as f32);
    assert_eq!(x32[(1, 0)], 0.0);
}

#[test]
#[should_panic(expected = "fitted on 4 features")]
fn standardizer_panics_on_width_mismatch() {
    let st = Standardizer::fit(Mat::<f64>::zeros(3, 4).as_ref());
    st.apply(Mat::<f64>::zeros(3, 5).as_mut());
}

// ---------------------------------------------------------------- Dataset helpers

#[test]
fn dataset_subset_and_head() {
    let x = Mat::<f64>::from_fn(5, 2, |i, j| (10 * i + j) as f64);
    let ds = Dataset::classification(x, vec![0, 1, 2, 1, 0], 3).unwrap();
    let sub = ds.subset(&[4, 0, 4]);
    assert_eq!(sub.len(), 3);
    assert_eq!(sub.x[(0, 1)], 41.0);
    assert_eq!(sub.x[(1, 0)], 0.0);
    assert_eq!(sub.labels.as_deref(), Some(&[0, 0, 0][..]));
    assert_eq!(sub.y[(2, 0)], 1.0);
    let h = ds.head(2);
    assert_eq!((h.len(), h.x[(1, 1)]), (2, 11.0));
    assert_eq!(ds.head(100).len(), 5);
    assert!(ds.head(0).is_empty());
    assert!(Dataset::classification(Mat::<f64>::zeros(2, 1), vec![0, 3], 3).is_err());
    assert!(Dataset::regression(Mat::<f64>::zeros(2, 1), Mat::<f64>::zeros(3, 1)).is_err());
}

#[test]
#[should_panic(expected = "row 5 out of range for a set of 5 rows")]
fn dataset_subset_panics_out_of_range() {
    let ds = Dataset::regression(Mat::<f32>::zeros(5, 1), Mat::<f32>::zeros(5, 1)).unwrap();
    let _ = ds.subset(&[0, 5]);
}

#[test]
fn one_hot_matches_labels() {
    let y = data::one_hot::<f32>(&[2, 0], 3);
    assert_eq!(
        common::mat_to_row_major(y.as_ref()),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );
}

// ---------------------------------------------------------------- load_dir_with_shape

#[test]
fn load_dir_with_shape_reports_the_stored_sample_shape() {
    // IDX images 3×2 per sample: one channel.
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), [false; 4]);
    let (s, shape) = data::load_dir_with_shape::<f64>(dir.path()).unwrap();
    assert_eq!(shape.train, vec![3, 2]);
    assert_eq!(shape.image(), Some((1, 3, 2)));
    assert_eq!(s.train.n_features(), 6);

    // NPY N×C×H×W, N×D and N: [C, H, W], [D], [].
    for (x_shape, image) in [
        (vec![4usize, 2, 3, 5], Some((2, 3, 5))),
        (vec![4, 7], Some((7, 1, 1))),
        (vec![4], Some((1, 1, 1))),
        (vec![4, 2, 1, 3, 2], None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d: usize = x_shape[1..].iter().product();
        let n = x_shape[0];
        let x: Vec<f64> = (0..n * d).map(|i| i as f64 * 0.25).collect();
        data::npy::write_npy(&dir.path().join("x_train.npy"), &x_shape, &x).unwrap();
        data::npy::write_npy(&dir.path().join("x_test.npy"), &x_shape, &x).unwrap();
        let y = vec![0i64, 1, 1, 0];
        data::npy::write_npy_labels(&dir.path().join("y_train.npy"), &[n], &y).unwrap();
        data::npy::write_npy_labels(&dir.path().join("y_test.npy"), &[n], &y).unwrap();
        let (s, shape) = data::load_dir_with_shape::<f64>(dir.path()).unwrap();
        assert_eq!(shape.train, x_shape[1..].to_vec());
        assert_eq!(shape.test, x_shape[1..].to_vec());
        assert_eq!(shape.image(), image, "{x_shape:?}");
        // flattened row-major, in (c, h, w) order
        assert_eq!(s.train.x[(1, d - 1)], (2 * d - 1) as f64 * 0.25);
    }

    // Train and test shapes that differ (same width) are not one image shape.
    let dir = tempfile::tempdir().unwrap();
    let x: Vec<f64> = (0..4 * 6).map(f64::from).collect();
    data::npy::write_npy(&dir.path().join("x_train.npy"), &[4, 2, 3], &x).unwrap();
    data::npy::write_npy(&dir.path().join("x_test.npy"), &[4, 3, 2], &x).unwrap();
    let y = vec![0i64, 1, 1, 0];
    data::npy::write_npy_labels(&dir.path().join("y_train.npy"), &[4], &y).unwrap();
    data::npy::write_npy_labels(&dir.path().join("y_test.npy"), &[4], &y).unwrap();
    let (_, shape) = data::load_dir_with_shape::<f64>(dir.path()).unwrap();
    assert_eq!(shape.image(), None);
}
