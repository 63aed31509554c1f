//! Networks of layers: forward against a naive loop reference, derivatives against central
//! finite differences (f64), the adjoint identity, the explicit Jacobian against JVP / VJP,
//! the structured NTK (both per-layer methods) against `J Jᵀ`, max-pooling ties, the
//! workspace tier on reused buffers, the f32 path, and the `Mlp` equivalence.

mod common;
mod network_ref;
use common::*;
use faer::{Mat, MatRef};
use itlin::model::{Trace, Workspace};
use itlin::ntk::Method;
use itlin::{Activation, Init, LayerNtk, Mlp, Model, Network, Parameterization};

/// Every layer kind, stride/padding combinations, 1×1 kernels, a kernel as large as the
/// padded input, odd sizes, several channels, layers before the first parameterised one and
/// after the last.
const NETS: &[((usize, usize, usize), &str)] = &[
    ((2, 5, 5), "conv(3,3),tanh,flatten,dense(2)"),
    (
        (1, 6, 7),
        "conv(2,3,stride=2,pad=1),gelu,avgpool(2),dense(3)",
    ),
    (
        (3, 4, 4),
        "conv(2,1),softplus,maxpool(2),conv(2,2),identity,dense(2)",
    ),
    ((2, 3, 3), "conv(2,5,pad=1),tanh,dense(2)"),
    (
        (1, 7, 5),
        "maxpool(2),conv(2,2,stride=3,pad=2),tanh,avgpool(1),flatten,dense(3),tanh",
    ),
    ((4, 1, 1), "dense(5),tanh,dense(3)"),
    ((2, 5, 6), "avgpool(2),dense(4),gelu,dense(2)"),
    ((1, 5, 5), "conv(2,3,stride=2)"),
    (
        (2, 6, 6),
        "conv(3,3,pad=1),relu,maxpool(3),conv(2,2,pad=1,stride=1),relu,dense(2)",
    ),
];

fn net(i: usize) -> Network {
    let (shape, spec) = NETS[i];
    let p = if i % 2 == 1 {
        Parameterization::Ntk {
            sigma_w: 1.3,
            sigma_b: 0.4,
        }
    } else {
        Parameterization::Standard
    };
    Network::with_parameterization(shape, spec, p).unwrap()
}

/// Non-zero biases, so every path is exercised.
fn theta_for(net: &Network, seed: u64) -> Vec<f64> {
    net.init(
        Init::Ntk {
            sigma_w: 1.5,
            sigma_b: 0.5,
        },
        seed,
    )
}

fn rows(m: MatRef<'_, f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |k| m[(i, k)]))
        .collect()
}

fn x_for(net: &Network, n: usize, seed: u64) -> Mat<f64> {
    rand_mat(&mut rng(seed), n, Model::<f64>::n_inputs(net))
}

#[test]
fn forward_matches_the_naive_reference() {
    let extra: &[((usize, usize, usize), &str)] = &[
        ((3, 7, 9), "conv(4,3,stride=2,pad=2),identity"),
        ((2, 8, 8), "conv(3,4,stride=3,pad=1)"),
        ((1, 4, 4), "conv(2,6,pad=1)"),
        ((5, 3, 2), "conv(2,1,stride=2)"),
        ((2, 9, 7), "avgpool(3)"),
        ((2, 9, 7), "maxpool(2),flatten,dense(3)"),
        ((3, 5, 5), "conv(2,2,stride=1,pad=3),maxpool(4),dense(2)"),
    ];
    let all: Vec<(Network, u64)> = (0..NETS.len())
        .map(|i| (net(i), i as u64))
        .chain(extra.iter().enumerate().map(|(k, &(s, spec))| {
            let body = if spec.contains("conv") || spec.contains("dense") {
                spec.to_string()
            } else {
                format!("{spec},dense(2)")
            };
            (Network::from_spec(s, &body).unwrap(), 100 + k as u64)
        }))
        .collect();
    for (net, seed) in all {
        let theta = theta_for(&net, seed);
        let x = x_for(&net, 3, seed + 7);
        let f = net.forward(&theta, x.as_ref());
        for s in 0..3 {
            let xs: Vec<f64> = (0..x.ncols()).map(|j| x[(s, j)]).collect();
            let want = network_ref::forward(&net, &theta, &xs);
            let got: Vec<f64> = (0..f.ncols()).map(|k| f[(s, k)]).collect();
            assert_close(&format!("{} sample {s}", net.spec()), &got, &want, 1e-13);
        }
    }
}

#[test]
fn maxpool_ties_go_to_the_first_maximum() {
    // One channel 2×4, windows 2×2: window 0 all equal, window 1 ties at (0,3) and (1,2).
    let net = Network::from_spec((1, 2, 4), "maxpool(2),dense(1)").unwrap();
    let theta = vec![1.0, -2.0, 0.0];
    let x = Mat::from_fn(1, 8, |_, j| [1.0, 1.0, 0.0, 5.0, 1.0, 1.0, 5.0, 2.0][j]);
    let f = net.forward(&theta, x.as_ref());
    assert_eq!(f[(0, 0)], 1.0 - 10.0);
    // Gradient with respect to the input through VJP: emulate by a conv-free probe: the
    // JVP of a network whose first layer is dense on the pooled input only sees θ, so check
    // the routing with a preceding 1×1 conv whose weights carry the tangent.
    let net = Network::from_spec((1, 2, 4), "conv(1,1),maxpool(2),dense(1)").unwrap();
    // θ = [w_conv, b_conv, W(1×2), b]
    let theta = vec![1.0, 0.0, 1.0, 1.0, 0.0];
    let j = net.jacobian(&theta, x.as_ref());
    // ∂f/∂w_conv = Σ over windows of the routed input = x[first max of window 0] + x[first
    // max of window 1] = 1 + 5; a tie routed to every maximum would give 4·1 + 2·5.
    assert_eq!(j[(0, 0)], 6.0);
    // And J from the VJP agrees.
    let g = net.vjp(&theta, x.as_ref(), Mat::from_fn(1, 1, |_, _| 1.0).as_ref());
    assert_eq!(g[0], 6.0);
    let (_, jv) = net.jvp(&theta, x.as_ref(), &[1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(jv[(0, 0)], 6.0);
}

/// Central differences of `f` along `v`.
fn fd_dir(net: &Network, theta: &[f64], x: MatRef<'_, f64>, v: &[f64], h: f64) -> Vec<f64> {
    let tp: Vec<f64> = theta.iter().zip(v).map(|(t, d)| t + h * d).collect();
    let tm: Vec<f64> = theta.iter().zip(v).map(|(t, d)| t - h * d).collect();
    let fp = rows(net.forward(&tp, x).as_ref());
    let fm = rows(net.forward(&tm, x).as_ref());
    fp.iter()
        .zip(&fm)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect()
}

#[test]
fn jvp_and_jacobian_match_central_differences() {
    for i in 0..NETS.len() {
        let net = net(i);
        let theta = theta_for(&net, 3 + i as u64);
        let x = x_for(&net, 3, 50 + i as u64);
        let p = theta.len();
        let v: Vec<f64> = rand_vec(&mut rng(90 + i as u64), p);
        let (f, jv) = net.jvp(&theta, x.as_ref(), &v);
        assert_close(
            &format!("{}: primal of jvp", net.spec()),
            &rows(f.as_ref()),
            &rows(net.forward(&theta, x.as_ref()).as_ref()),
            0.0,
        );
        let fd = fd_dir(&net, &theta, x.as_ref(), &v, 1e-5);
        assert_close(
            &format!("{}: J v", net.spec()),
            &rows(jv.as_ref()),
            &fd,
            1e-7,
        );
        // Every column of J by central differences.
        let j = net.jacobian(&theta, x.as_ref());
        let m = j.nrows();
        let mut e = vec![0.0; p];
        for col in 0..p {
            e[col] = 1.0;
            let fdc = fd_dir(&net, &theta, x.as_ref(), &e, 1e-5);
            e[col] = 0.0;
            let jc: Vec<f64> = (0..m).map(|r| j[(r, col)]).collect();
            let scale = fdc.iter().fold(1.0f64, |a, b| a.max(b.abs()));
            let err = jc
                .iter()
                .zip(&fdc)
                .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
            assert!(
                err <= 1e-7 * scale,
                "{}: column {col} of J: error {err:e}",
                net.spec()
            );
        }
    }
}

#[test]
fn adjoint_identity_and_jacobian_against_jvp_vjp() {
    for i in 0..NETS.len() {
        let net = net(i);
        let theta = theta_for(&net, 13 + i as u64);
        let n = 4;
        let x = x_for(&net, n, 60 + i as u64);
        let c = Model::<f64>::n_outputs(&net);
        let p = theta.len();
        let mut r = rng(70 + i as u64);
        let v: Vec<f64> = rand_vec(&mut r, p);
        let u: Mat<f64> = rand_mat(&mut r, n, c);
        let (_, jv) = net.jvp(&theta, x.as_ref(), &v);
        let jtu = net.vjp(&theta, x.as_ref(), u.as_ref());
        let lhs: f64 = rows(jv.as_ref())
            .iter()
            .zip(rows(u.as_ref()))
            .map(|(a, b)| a * b)
            .sum();
        let rhs: f64 = jtu.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(rhs.abs()).max(1.0),
            "{}: ⟨Jv,u⟩ = {lhs}, ⟨v,Jᵀu⟩ = {rhs}",
            net.spec()
        );
        let j = net.jacobian(&theta, x.as_ref());
        assert_eq!((j.nrows(), j.ncols()), (n * c, p));
        assert_close(
            &format!("{}: J v", net.spec()),
            &j.mul_vec(&v),
            &rows(jv.as_ref()),
            1e-12,
        );
        assert_close(
            &format!("{}: Jᵀ u", net.spec()),
            &j.tmul_vec(&rows(u.as_ref())),
            &jtu,
            1e-12,
        );
        // jacobian_into reuses a buffer of the right shape and replaces a wrong one.
        let mut out = itlin::Jacobian::zeros(1, 1);
        net.jacobian_into(&theta, x.as_ref(), &mut out);
        assert_eq!(out, j);
        net.jacobian_into(&theta, x.as_ref(), &mut out);
        assert_eq!(out, j);
    }
}

fn lower(m: MatRef<'_, f64>) -> Vec<f64> {
    let mut v = Vec::new();
    for j in 0..m.ncols() {
        for i in j..m.nrows() {
            v.push(m[(i, j)]);
        }
    }
    v
}

#[test]
fn structured_ntk_equals_j_jt_for_both_layer_methods() {
    for i in 0..NETS.len() {
        let net = net(i);
        let theta = theta_for(&net, 23 + i as u64);
        let x = x_for(&net, 5, 80 + i as u64);
        let j = net.jacobian(&theta, x.as_ref());
        let jjt = j.as_ref() * j.as_ref().transpose();
        let want = lower(jjt.as_ref());
        for how in [LayerNtk::Assemble, LayerNtk::Contract, LayerNtk::Auto] {
            let k = net.ntk_lower_with(&theta, x.as_ref(), how);
            assert_close(
                &format!("{} {how:?}", net.spec()),
                &lower(k.as_ref()),
                &want,
                1e-12,
            );
        }
        for m in [Method::Structured, Method::Explicit, Method::Auto] {
            let k = net.ntk_lower(&theta, x.as_ref(), m);
            assert_close(
                &format!("{} {m:?}", net.spec()),
                &lower(k.as_ref()),
                &want,
                1e-12,
            );
        }
    }
}

#[test]
fn the_cost_model_contracts_early_convs_and_assembles_dense_layers() {
    let net = Network::from_spec(
        (1, 28, 28),
        "conv(16,3,pad=1),relu,avgpool(2),conv(32,3,pad=1),relu,avgpool(2),dense(10)",
    )
    .unwrap();
    let plan = net.ntk_plan(128, LayerNtk::Auto);
    assert_eq!(
        plan,
        vec![
            (0, LayerNtk::Contract),
            (3, LayerNtk::Contract),
            (6, LayerNtk::Assemble)
        ]
    );
    let (e, s) = net.ntk_flop_estimates(128);
    assert!(
        s < e,
        "structured {s:e} should be cheaper than explicit {e:e}"
    );
}

/// The workspace tier gives the convenience forms' numbers bit for bit on reused buffers,
/// across batches of changing size and networks of different shapes.
#[test]
fn traced_products_equal_the_convenience_forms() {
    let mut trace = Trace::new();
    let mut ws = Workspace::new();
    for i in 0..NETS.len() {
        let net = net(i);
        let theta = theta_for(&net, 31 + i as u64);
        let p = theta.len();
        let c = Model::<f64>::n_outputs(&net);
        let v: Vec<f64> = rand_vec(&mut rng(5), p);
        for n in [3, 1, 4] {
            let x = x_for(&net, n, n as u64);
            let u: Mat<f64> = rand_mat(&mut rng(9), n, c);
            net.trace_into(&theta, x.as_ref(), &mut trace);
            assert_eq!(
                trace.output(),
                rows(net.forward(&theta, x.as_ref()).as_ref())
            );
            let mut jv = vec![0.0; n * c];
            net.jvp_with_trace_into(&theta, x.as_ref(), &trace, &v, &mut jv, &mut ws);
            assert_eq!(jv, rows(net.jvp(&theta, x.as_ref(), &v).1.as_ref()));
            let mut g = vec![0.0; p];
            net.vjp_with_trace_into(&theta, x.as_ref(), &trace, u.as_ref(), &mut g, &mut ws);
            assert_eq!(g, net.vjp(&theta, x.as_ref(), u.as_ref()));
        }
    }
}

#[test]
#[should_panic(expected = "call trace_into first")]
fn a_product_without_a_trace_panics() {
    let net = Network::from_spec((1, 4, 4), "conv(2,3),dense(1)").unwrap();
    let theta = net.init::<f64>(Init::Standard, 0);
    let x = Mat::<f64>::zeros(2, 16);
    let mut g = vec![0.0; theta.len()];
    net.vjp_with_trace_into(
        &theta,
        x.as_ref(),
        &Trace::new(),
        Mat::<f64>::zeros(2, 1).as_ref(),
        &mut g,
        &mut Workspace::new(),
    );
}

#[test]
#[should_panic(expected = "θ has length 3")]
fn a_wrong_theta_panics_naming_both_shapes() {
    let net = Network::from_spec((1, 4, 4), "conv(2,3),dense(1)").unwrap();
    let _ = net.forward(&[0.0f64; 3], Mat::<f64>::zeros(1, 16).as_ref());
}

/// The f32 path computes the f64 numbers to f32 accuracy.
#[test]
fn f32_matches_f64() {
    for i in 0..NETS.len() {
        let net = net(i);
        let t64 = theta_for(&net, 41 + i as u64);
        let t32: Vec<f32> = net.init(
            Init::Ntk {
                sigma_w: 1.5,
                sigma_b: 0.5,
            },
            41 + i as u64,
        );
        assert_eq!(t32, t64.iter().map(|&t| t as f32).collect::<Vec<_>>());
        let x64 = x_for(&net, 3, 3);
        let x32 = Mat::from_fn(x64.nrows(), x64.ncols(), |a, b| x64[(a, b)] as f32);
        let c = Model::<f64>::n_outputs(&net);
        let u64m: Mat<f64> = rand_mat(&mut rng(2), 3, c);
        let u32m = Mat::from_fn(3, c, |a, b| u64m[(a, b)] as f32);
        let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let m32 = |m: MatRef<'_, f32>| {
            rows(Mat::from_fn(m.nrows(), m.ncols(), |a, b| m[(a, b)] as f64).as_ref())
        };
        let t32x: Vec<f64> = to64(&t32);
        // compare at the same (rounded) θ and X
        let x64r = Mat::from_fn(x64.nrows(), x64.ncols(), |a, b| x32[(a, b)] as f64);
        let u64r = Mat::from_fn(3, c, |a, b| u32m[(a, b)] as f64);
        let name = net.spec();
        assert_close(
            &name,
            &m32(net.forward(&t32, x32.as_ref()).as_ref()),
            &rows(net.forward(&t32x, x64r.as_ref()).as_ref()),
            1e-4,
        );
        assert_close(
            &name,
            &to64(&net.vjp(&t32, x32.as_ref(), u32m.as_ref())),
            &net.vjp(&t32x, x64r.as_ref(), u64r.as_ref()),
            1e-4,
        );
        let j32 = net.jacobian(&t32, x32.as_ref());
        let j64 = net.jacobian(&t32x, x64r.as_ref());
        assert_close(&name, &to64(j32.as_slice()), j64.as_slice(), 1e-4);
        let k32 = net.ntk_lower(&t32, x32.as_ref(), Method::Structured);
        let k64 = net.ntk_lower(&t32x, x64r.as_ref(), Method::Structured);
        let k32l: Vec<f64> = {
            let mut v = Vec::new();
            for j in 0..k32.ncols() {
                for i in j..k32.nrows() {
                    v.push(k32[(i, j)] as f64);
                }
            }
            v
        };
        assert_close(&name, &k32l, &lower(k64.as_ref()), 1e-4);
    }
}

fn mlp_param(k: usize) -> Parameterization {
    if k.is_multiple_of(2) {
        Parameterization::Standard
    } else {
        Parameterization::Ntk {
            sigma_w: 1.2,
            sigma_b: 0.3,
        }
    }
}

/// An Mlp and the equivalent dense network: identical θ (both inits), outputs, J v, Jᵀ u
/// (bit for bit: the same GEMMs in the same order), Jacobian and NTK (to 1e-14).
#[test]
fn mlp_and_dense_network_agree() {
    let archs: &[&[usize]] = &[&[5, 7, 3], &[4, 6, 5, 2], &[3, 8, 1]];
    for (ai, arch) in archs.iter().enumerate() {
        for (k, act) in Activation::ALL.into_iter().enumerate() {
            let mlp = Mlp::with_parameterization(arch, act, mlp_param(k + ai)).unwrap();
            let net = Network::from(&mlp);
            assert_eq!(net, mlp.to_network());
            assert_eq!(Model::<f64>::n_params(&net), Model::<f64>::n_params(&mlp));
            for init in [
                Init::Standard,
                Init::Ntk {
                    sigma_w: 1.4,
                    sigma_b: 0.6,
                },
            ] {
                assert_eq!(
                    net.init::<f64>(init, 7),
                    mlp.init::<f64>(init, 7),
                    "{act} {init:?}"
                );
                assert_eq!(
                    net.init::<f32>(init, 7),
                    mlp.init::<f32>(init, 7),
                    "{act} {init:?}"
                );
            }
            let theta = mlp.init::<f64>(
                Init::Ntk {
                    sigma_w: 1.4,
                    sigma_b: 0.6,
                },
                ai as u64,
            );
            let n = 6;
            let x: Mat<f64> = rand_mat(&mut rng(k as u64), n, arch[0]);
            let c = *arch.last().unwrap();
            let v: Vec<f64> = rand_vec(&mut rng(3), theta.len());
            let u: Mat<f64> = rand_mat(&mut rng(4), n, c);
            let name = format!("{arch:?} {act}");
            assert_eq!(
                net.forward(&theta, x.as_ref()),
                mlp.forward(&theta, x.as_ref()),
                "{name}"
            );
            let (f1, jv1) = net.jvp(&theta, x.as_ref(), &v);
            let (f2, jv2) = mlp.jvp(&theta, x.as_ref(), &v);
            assert_eq!((f1, jv1), (f2, jv2), "{name}");
            assert_eq!(
                net.vjp(&theta, x.as_ref(), u.as_ref()),
                mlp.vjp(&theta, x.as_ref(), u.as_ref()),
                "{name}"
            );
            let (j1, j2) = (
                net.jacobian(&theta, x.as_ref()),
                mlp.jacobian(&theta, x.as_ref()),
            );
            assert_close(&name, j1.as_slice(), j2.as_slice(), 1e-14);
            let k1 = net.ntk_lower(&theta, x.as_ref(), Method::Structured);
            let k2 = mlp.ntk_lower(&theta, x.as_ref(), Method::Structured);
            assert_close(&name, &lower(k1.as_ref()), &lower(k2.as_ref()), 1e-14);
        }
    }
}

/// Training runs of an Mlp and of its dense network give the same metrics.
#[test]
fn trainer_runs_agree_on_mlp_and_dense_network() {
    use itlin::train::{DataRef, Inner, Loss, Period, Schedule, TrainConfig, Trainer};
    let x = Mat::from_fn(32, 4, |i, j| ((i * 4 + j) as f64 * 0.61).sin());
    let labels: Vec<u32> = (0..32)
        .map(|i| u32::from(x[(i, 0)] + x[(i, 1)] > 0.0))
        .collect();
    let y = Mat::from_fn(32, 2, |i, k| f64::from(labels[i] as usize == k));
    let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let mlp = Mlp::new(&[4, 6, 2], Activation::Relu).unwrap();
    let net = Network::from(&mlp);
    for inner in [
        Inner::sgd(0.1),
        Inner::GaussNewton {
            damping: 0.1,
            adaptive: true,
        },
    ] {
        let cfg = TrainConfig::new()
            .with_inner(inner)
            .with_loss(Loss::CrossEntropy)
            .with_period(Period::Steps(3))
            .with_schedule(Schedule::Constant)
            .with_batch(8)
            .with_steps(12)
            .with_eval_every(4)
            .with_probe(4);
        let mut t1 = Trainer::new(&mlp, mlp.init::<f64>(Init::Standard, 2), cfg.clone()).unwrap();
        let mut t2 = Trainer::new(&net, net.init::<f64>(Init::Standard, 2), cfg).unwrap();
        let r1 = t1.fit(d, None, &mut ()).unwrap();
        let r2 = t2.fit(d, None, &mut ()).unwrap();
        assert_eq!(r1.history.len(), r2.history.len());
        for (a, b) in r1.history.iter().zip(&r2.history) {
            assert_eq!(a.step, b.step);
            assert!(
                (a.train_loss - b.train_loss).abs() <= 1e-12 * a.train_loss.abs().max(1.0),
                "{inner:?}: {} vs {}",
                a.train_loss,
                b.train_loss
            );
            assert_eq!(a.train_acc, b.train_acc);
        }
        assert_close(&format!("{inner:?} θ"), t2.theta(), t1.theta(), 1e-10);
    }
}

/// A small CNN trains: the loss of a few Gauss-Newton steps goes down.
#[test]
fn a_cnn_trains() {
    use itlin::train::{DataRef, Inner, Loss, Period, Schedule, TrainConfig, Trainer};
    let net = Network::from_spec((1, 6, 6), "conv(3,3,pad=1),relu,avgpool(2),dense(2)").unwrap();
    let x = Mat::from_fn(24, 36, |i, j| (((i * 36 + j) as f64) * 0.37).sin());
    let labels: Vec<u32> = (0..24)
        .map(|i| u32::from(x[(i, 7)] + x[(i, 14)] > 0.0))
        .collect();
    let y = Mat::from_fn(24, 2, |i, k| f64::from(labels[i] as usize == k));
    let d = DataRef::new(x.as_ref(), y.as_ref(), Some(&labels));
    let cfg = TrainConfig::new()
        .with_inner(Inner::GaussNewton {
            damping: 0.1,
            adaptive: true,
        })
        .with_loss(Loss::CrossEntropy)
        .with_period(Period::Steps(1))
        .with_schedule(Schedule::Constant)
        .with_batch(24)
        .with_steps(8)
        .with_eval_every(8)
        .with_probe(4);
    let mut t = Trainer::new(&net, net.init::<f64>(Init::Standard, 1), cfg).unwrap();
    let r = t.fit(d, None, &mut ()).unwrap();
    // Mean cross-entropy at θ₀, from the network's outputs.
    let theta0 = net.init::<f64>(Init::Standard, 1);
    let f0 = net.forward(&theta0, x.as_ref());
    let first: f64 = (0..24)
        .map(|i| {
            let (a, b) = (f0[(i, 0)], f0[(i, 1)]);
            let m = a.max(b);
            let lse = m + ((a - m).exp() + (b - m).exp()).ln();
            lse - f0[(i, labels[i] as usize)]
        })
        .sum::<f64>()
        / 24.0;
    let last = r.last().unwrap().train_loss;
    assert!(last < 0.8 * first, "loss {first} -> {last}");
}
