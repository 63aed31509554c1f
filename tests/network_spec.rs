//! The network spec string and the θ layout: canonical forms that round-trip, shapes and
//! offsets, the initialisation stream and its gains, and one-line errors naming the layer.

use itlin::{Activation, Init, LayerKind, Mlp, Model, Network, Parameterization, Shape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const CNN: &str = "conv(16,3,pad=1),relu,avgpool(2),conv(32,3,pad=1),relu,avgpool(2),dense(10)";

#[test]
fn the_cnn_of_the_benchmarks() {
    let net = Network::from_spec((1, 28, 28), CNN).unwrap();
    assert_eq!(net.spec(), CNN);
    assert_eq!(net.input_shape(), (1, 28, 28));
    assert_eq!(net.output_shape(), (10, 1, 1));
    let shapes: Vec<(usize, usize, usize)> = net.layers().iter().map(|l| l.output.dims()).collect();
    assert_eq!(
        shapes,
        [
            (16, 28, 28),
            (16, 28, 28),
            (16, 14, 14),
            (32, 14, 14),
            (32, 14, 14),
            (32, 7, 7),
            (10, 1, 1)
        ]
    );
    let p0 = net.layers()[0].params.unwrap();
    assert_eq!(
        (p0.fan_in, p0.fan_out, p0.w_offset, p0.b_offset),
        (9, 16, 0, 144)
    );
    let p3 = net.layers()[3].params.unwrap();
    assert_eq!(
        (p3.fan_in, p3.fan_out, p3.w_offset, p3.b_offset),
        (144, 32, 160, 160 + 4608)
    );
    let p6 = net.layers()[6].params.unwrap();
    assert_eq!(
        (p6.fan_in, p6.fan_out, p6.w_offset),
        (32 * 49, 10, 160 + 4640)
    );
    assert_eq!(Model::<f32>::n_params(&net), 160 + 4640 + 15690);
    assert_eq!(Model::<f32>::n_inputs(&net), 784);
    assert_eq!(Model::<f32>::n_outputs(&net), 10);
    assert!(net.layers()[1].params.is_none());
    assert_eq!(
        net.layers()[1].kind,
        LayerKind::Activation(Activation::Relu)
    );
}

#[test]
fn specs_round_trip_through_their_canonical_form() {
    for (shape, spec, canonical) in [
        (
            (1, 8, 8),
            " conv( 4 , 3 , stride = 2 , pad = 1 ) , TANH ",
            "conv(4,3,stride=2,pad=1),tanh",
        ),
        (
            (1, 8, 8),
            "conv(4,3,pad=1,stride=2)",
            "conv(4,3,stride=2,pad=1)",
        ),
        (
            (1, 8, 8),
            "conv(4,3,stride=1,pad=0),maxpool(2)",
            "conv(4,3),maxpool(2)",
        ),
        (
            (3, 5, 7),
            "avgpool(2),flatten,dense(3),gelu,dense(2),softplus,identity",
            "avgpool(2),flatten,dense(3),gelu,dense(2),softplus,identity",
        ),
        (
            (6, 1, 1),
            "dense(4), relu, dense(1)",
            "dense(4),relu,dense(1)",
        ),
    ] {
        let net = Network::from_spec(shape, spec).unwrap();
        assert_eq!(net.spec(), canonical);
        assert_eq!(
            Network::from_spec(net.input_shape(), &net.spec()).unwrap(),
            net
        );
    }
}

#[test]
fn input_shapes_convert_from_tuples_arrays_and_widths() {
    let a = Network::from_spec((3, 1, 1), "dense(2)").unwrap();
    let b = Network::from_spec([3, 1, 1], "dense(2)").unwrap();
    let c = Network::from_spec(3, "dense(2)").unwrap();
    let d = Network::from_spec(Shape::new(3, 1, 1), "dense(2)").unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a, d);
}

#[test]
fn dense_networks_are_mlps() {
    let mlp = Mlp::new(&[784, 64, 10], Activation::Relu).unwrap();
    let net = Network::from_spec(784, "dense(64),relu,dense(10)").unwrap();
    assert_eq!(Network::from(&mlp), net);
    for init in [
        Init::Standard,
        Init::Ntk {
            sigma_w: 1.0,
            sigma_b: 0.1,
        },
    ] {
        assert_eq!(net.init::<f64>(init, 3), mlp.init::<f64>(init, 3));
    }
}

/// θ is drawn layer by layer, W then b, one f64 standard normal per entry scaled by
/// gain/√fan_in (fan_in = C_in·K·K for a conv) or σ's; f32 is the f64 draw rounded.
#[test]
fn init_follows_the_stream_and_the_gain_rule() {
    let net = Network::from_spec(
        (2, 6, 6),
        "conv(3,3,pad=1),avgpool(2),relu,conv(2,2),flatten,dense(4),tanh,dense(2)",
    )
    .unwrap();
    let gains: Vec<f64> = net
        .layers()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.params.is_some())
        .map(|(i, _)| net.init_gain(i))
        .collect();
    let r2 = 2f64.sqrt();
    // conv → (pool) relu: √2; conv → flatten, dense → tanh: the tanh after (1); read-out:
    // the last activation before it (tanh, 1).
    assert_eq!(gains, [r2, 1.0, 1.0, 1.0]);
    let theta: Vec<f64> = net.init(Init::Standard, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut k = 0;
    for (l, g) in net.layers().iter().filter_map(|l| l.params).zip(&gains) {
        for _ in 0..l.fan_in * l.fan_out {
            let z: f64 = StandardNormal.sample(&mut rng);
            assert_eq!(theta[k], g / (l.fan_in as f64).sqrt() * z);
            k += 1;
        }
        for _ in 0..l.fan_out {
            let _: f64 = StandardNormal.sample(&mut rng);
            assert_eq!(theta[k], 0.0);
            k += 1;
        }
    }
    assert_eq!(k, theta.len());
    // Relu read-out gain comes from the relu before it; no activation at all: 1.
    let net = Network::from_spec((1, 5, 5), "conv(2,3),relu,dense(3)").unwrap();
    assert_eq!((net.init_gain(0), net.init_gain(2)), (r2, r2));
    let net = Network::from_spec((1, 5, 5), "conv(2,3),dense(3)").unwrap();
    assert_eq!((net.init_gain(0), net.init_gain(1)), (1.0, 1.0));
    // NTK parameterisation: stored values are N(0,1) under the matching NTK init.
    let p = Parameterization::Ntk {
        sigma_w: 1.3,
        sigma_b: 0.2,
    };
    let net = Network::with_parameterization((1, 4, 4), "conv(2,3),dense(1)", p).unwrap();
    let l0 = net.layers()[0].params.unwrap();
    assert!(
        (l0.w_scale - 1.3 / 3.0).abs() < 1e-15,
        "fan_in of the conv is 1·3·3"
    );
    let theta: Vec<f64> = net.init(
        Init::Ntk {
            sigma_w: 1.3,
            sigma_b: 0.2,
        },
        5,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for t in theta {
        let z: f64 = StandardNormal.sample(&mut rng);
        assert!((t - z).abs() <= 1e-15 * z.abs().max(1.0));
    }
}

#[test]
fn bad_specs_are_one_line_errors_naming_the_layer() {
    for (shape, spec, needles) in [
        (
            (1, 4, 4),
            "conv(2,3),pool(2),dense(1)",
            &["layer 2 of 3", "`pool(2)`", "unknown layer"][..],
        ),
        (
            (1, 4, 4),
            "conv(2,5),dense(1)",
            &[
                "layer 1 of 2",
                "`conv(2,5)`",
                "larger than the padded input 4×4",
            ][..],
        ),
        (
            (1, 4, 4),
            "conv(2,7,pad=1)",
            &["layer 1 of 1", "padded input 6×6"][..],
        ),
        (
            (1, 4, 4),
            "maxpool(5),dense(1)",
            &["layer 1 of 2", "larger than the input 1×4×4"][..],
        ),
        (
            (1, 4, 4),
            "conv(2,3),avgpool(3),dense(1)",
            &[
                "layer 2 of 3",
                "`avgpool(3)`",
                "larger than the input 2×2×2",
            ][..],
        ),
        (
            (1, 4, 4),
            "conv(2,3,dilation=1)",
            &["`conv(2,3,dilation=1)`", "unknown argument `dilation`"][..],
        ),
        (
            (1, 4, 4),
            "conv(0,3)",
            &["output channels must be at least 1"][..],
        ),
        (
            (1, 4, 4),
            "conv(2,0)",
            &["kernel size must be at least 1"][..],
        ),
        (
            (1, 4, 4),
            "conv(2,3,stride=0)",
            &["stride must be at least 1"][..],
        ),
        ((1, 4, 4), "conv(2)", &["conv(OUT,K"][..]),
        ((1, 4, 4), "dense(x)", &["`x` is not a whole number"][..]),
        (
            (1, 4, 4),
            "dense(2),,relu",
            &["layer 2 of 3", "empty item"][..],
        ),
        ((1, 4, 4), "dense(2),", &["layer 2 of 2", "empty item"][..]),
        (
            (1, 4, 4),
            "relu,flatten,maxpool(1)",
            &["no dense or conv layer"][..],
        ),
        ((1, 4, 4), "", &["empty"][..]),
        (
            (1, 4, 4),
            "dense(99999999999999999999999)",
            &["too large"][..],
        ),
        ((0, 4, 4), "dense(1)", &["zero dimension"][..]),
        (
            (1, 4, 4),
            "relu(1),dense(1)",
            &["layer 1 of 2", "takes no arguments"][..],
        ),
    ] {
        let e = Network::from_spec(shape, spec).expect_err(spec);
        assert!(matches!(e, itlin::Error::Config(_)), "{spec}: {e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{spec}: {msg}");
        for n in needles {
            assert!(msg.contains(n), "{spec}: `{msg}` lacks `{n}`");
        }
    }
    let bad = Parameterization::Ntk {
        sigma_w: 0.0,
        sigma_b: 0.1,
    };
    assert!(Network::with_parameterization(4, "dense(1)", bad).is_err());
}
