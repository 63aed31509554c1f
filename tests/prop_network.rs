//! Property tests of networks over random architectures (1–3 blocks of conv / pooling /
//! activation layers with random kernel, stride and padding, optional flatten and dense
//! read-out, 1–3 input channels, sizes 3–7) and batch sizes 1–4: forward against
//! the naive reference, the adjoint identity, the explicit Jacobian against JVP / VJP, and
//! the structured NTK (every layer assembled, every layer contracted) against `J Jᵀ`.
//!
//! The runner is deterministic (ChaCha, fixed seed, see `common::strategies::config`).

mod common;
mod network_ref;
use common::strategies::config;
use common::*;
use faer::{Mat, MatRef};
use itlin::{Activation, Init, LayerNtk, Model, Network, Parameterization};
use proptest::prelude::*;

/// A random layer choice, made valid for the current shape by [`build`].
type Choice = (u8, u8, u8, u8, u8);

/// Builds a valid spec from raw choices on the input `(c, h, w)`.
fn build(c: usize, h: usize, w: usize, choices: &[Choice], read_out: Option<u8>) -> String {
    let (mut ch, mut hh, mut ww) = (c, h, w);
    let mut items = Vec::new();
    let mut has_param = false;
    for &(kind, a, b, s, p) in choices {
        match kind % 4 {
            0 | 1 => {
                let pad = (p % 3) as usize;
                let lim = (hh + 2 * pad).min(ww + 2 * pad).min(4);
                let k = 1 + (b as usize) % lim;
                let stride = 1 + (s % 3) as usize;
                let out = 1 + (a % 3) as usize;
                let mut t = format!("conv({out},{k}");
                if stride != 1 {
                    t += &format!(",stride={stride}");
                }
                if pad != 0 {
                    t += &format!(",pad={pad}");
                }
                items.push(t + ")");
                ch = out;
                hh = (hh + 2 * pad - k) / stride + 1;
                ww = (ww + 2 * pad - k) / stride + 1;
                has_param = true;
            }
            2 => {
                let k = 1 + (b as usize) % hh.min(ww).min(3);
                items.push(format!(
                    "{}({k})",
                    if a % 2 == 0 { "avgpool" } else { "maxpool" }
                ));
                hh /= k;
                ww /= k;
            }
            _ => {
                let act = [
                    Activation::Tanh,
                    Activation::Gelu,
                    Activation::Softplus,
                    Activation::Identity,
                    Activation::Relu,
                ][(a % 5) as usize];
                items.push(act.name().to_string());
            }
        }
    }
    let _ = ch;
    match read_out {
        Some(o) => {
            if o % 2 == 0 {
                items.push("flatten".into());
            }
            items.push(format!("dense({})", 1 + o % 3));
        }
        None if !has_param => items.push("dense(2)".into()),
        None => {}
    }
    items.join(",")
}

fn rows(m: MatRef<'_, f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |k| m[(i, k)]))
        .collect()
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

proptest! {
    #![proptest_config(config(32, 0x6e65_7477))]

    #[test]
    fn network_derivatives_hold(
        c in 1usize..4, h in 3usize..8, w in 3usize..8,
        choices in prop::collection::vec(any::<Choice>(), 1..4),
        read_out in prop::option::of(any::<u8>()),
        n in 1usize..5, seed in any::<u64>(), ntk_param in any::<bool>(),
    ) {
        let spec = build(c, h, w, &choices, read_out);
        let p = if ntk_param { Parameterization::Ntk { sigma_w: 1.2, sigma_b: 0.3 } } else { Parameterization::Standard };
        let net = Network::with_parameterization((c, h, w), &spec, p).unwrap();
        let theta: Vec<f64> = net.init(Init::Ntk { sigma_w: 1.4, sigma_b: 0.5 }, seed);
        let mut r = rng(seed ^ 1);
        let x: Mat<f64> = rand_mat(&mut r, n, c * h * w);
        let co = Model::<f64>::n_outputs(&net);
        let pp = theta.len();
        // Forward against the naive reference.
        let f = net.forward(&theta, x.as_ref());
        for s in 0..n {
            let xs: Vec<f64> = (0..x.ncols()).map(|j| x[(s, j)]).collect();
            let want = network_ref::forward(&net, &theta, &xs);
            let got: Vec<f64> = (0..co).map(|k| f[(s, k)]).collect();
            prop_assert!(rel_err(&got, &want) <= 1e-12, "{spec}: forward {:e}", rel_err(&got, &want));
        }
        // Adjoint identity and J against JVP / VJP.
        let v: Vec<f64> = rand_vec(&mut r, pp);
        let u: Mat<f64> = rand_mat(&mut r, n, co);
        let (_, jv) = net.jvp(&theta, x.as_ref(), &v);
        let jtu = net.vjp(&theta, x.as_ref(), u.as_ref());
        let lhs: f64 = rows(jv.as_ref()).iter().zip(rows(u.as_ref())).map(|(a, b)| a * b).sum();
        let rhs: f64 = jtu.iter().zip(&v).map(|(a, b)| a * b).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-11 * lhs.abs().max(rhs.abs()).max(1.0), "{spec}: {lhs} vs {rhs}");
        let j = net.jacobian(&theta, x.as_ref());
        prop_assert!(rel_err(&j.mul_vec(&v), &rows(jv.as_ref())) <= 1e-11, "{spec}: J v");
        prop_assert!(rel_err(&j.tmul_vec(&rows(u.as_ref())), &jtu) <= 1e-11, "{spec}: Jᵀ u");
        // Structured NTK, every layer one way, against J Jᵀ.
        let want = lower((j.as_ref() * j.as_ref().transpose()).as_ref());
        for how in [LayerNtk::Assemble, LayerNtk::Contract] {
            let k = net.ntk_lower_with(&theta, x.as_ref(), how);
            let e = rel_err(&lower(k.as_ref()), &want);
            prop_assert!(e <= 1e-12, "{spec} {how:?}: {e:e}");
        }
    }
}
