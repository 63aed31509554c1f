"""Mlp: init, forward, jvp, vjp and jacobian against the NumPy re-implementation of the θ
layout, central finite differences in float64, and the adjoint identities."""

import numpy as np
import pytest
from conftest import ACTIVATIONS, numpy_forward, small_problem

import itlin


def test_attributes_and_repr():
    net = itlin.Mlp([784, 128, 10], activation="tanh")
    assert net.n_params == 784 * 128 + 128 + 128 * 10 + 10
    assert (net.n_inputs, net.n_outputs) == (784, 10)
    assert net.widths == [784, 128, 10]
    assert net.activation == "tanh"
    assert net.parameterization == "standard"
    assert isinstance(net, itlin.Model)
    assert "784, 128, 10" in repr(net)
    ntk = itlin.Mlp([3, 4, 2], "relu", parameterization=("ntk", 1.5, 0.1))
    assert ntk.parameterization == ("ntk", 1.5, 0.1)


def test_help_says_what_it_computes():
    assert "J v" in itlin.Mlp.jvp.__doc__
    assert "Jᵀ" in itlin.Mlp.vjp.__doc__
    assert "n·C + c" in itlin.Mlp.jacobian.__doc__
    assert "(JᵀHJ + NλI) δ = −Jᵀg" in itlin.gauss_newton_step.__doc__
    assert "J Jᵀ" in itlin.ntk.__doc__


def test_init_is_deterministic_and_f32_is_f64_rounded():
    net = itlin.Mlp([20, 30, 4], activation="tanh")
    a, b = net.init(seed=7), net.init(seed=7)
    assert a.dtype == np.float64 and a.shape == (net.n_params,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, net.init(seed=8))
    s = net.init(seed=7, dtype="float32")
    assert s.dtype == np.float32
    np.testing.assert_array_equal(s, a.astype(np.float32))
    np.testing.assert_array_equal(net.init(seed=7, dtype=np.float32), s)


@pytest.mark.parametrize("activation,gain", [("tanh", 1.0), ("relu", np.sqrt(2.0))])
def test_init_layout_and_scale(activation, gain):
    widths = [400, 300, 10]
    net = itlin.Mlp(widths, activation=activation)
    theta = net.init(seed=1)
    off = 0
    for fi, fo in zip(widths[:-1], widths[1:]):
        w = theta[off : off + fi * fo]
        b = theta[off + fi * fo : off + fi * fo + fo]
        off += fi * fo + fo
        # LeCun / He normal: std g/√fan_in (n ≥ 3000 draws: 5 % is > 3.8 standard errors)
        assert abs(w.std() / (gain / np.sqrt(fi)) - 1.0) < 0.05
        assert abs(w.mean()) < 4 * gain / np.sqrt(fi) / np.sqrt(w.size)
        np.testing.assert_array_equal(b, 0.0)
    assert off == net.n_params
    ntk_init = net.init(seed=1, scheme=("ntk", 1.0, 0.5))
    b_out = ntk_init[-10:]
    assert np.all(b_out != 0.0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_numpy_layout(rng, activation):
    net, theta, x = small_problem(rng, activation=activation)
    f = net.forward(theta, x)
    assert f.shape == (4, 3) and f.dtype == np.float64
    np.testing.assert_allclose(f, numpy_forward(net.widths, activation, theta, x), rtol=1e-12, atol=1e-13)


def test_ntk_parameterization_forward(rng):
    net = itlin.Mlp([5, 6, 2], "tanh", parameterization=("ntk", 1.3, 0.2))
    theta = net.init(seed=0, scheme=("ntk", 1.3, 0.2))
    x = rng.standard_normal((3, 5))
    np.testing.assert_allclose(
        net.forward(theta, x), numpy_forward([5, 6, 2], "tanh", theta, x, ntk=(1.3, 0.2)), rtol=1e-12, atol=1e-13
    )


def central_jvp(net, theta, x, v, h=1e-6):
    return (net.forward(theta + h * v, x) - net.forward(theta - h * v, x)) / (2 * h)


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus", "identity", "relu"])
def test_jvp_against_finite_differences(rng, activation):
    net, theta, x = small_problem(rng, activation=activation)
    v = rng.standard_normal(net.n_params)
    f, jv = net.jvp(theta, x, v)
    np.testing.assert_allclose(f, net.forward(theta, x), rtol=0, atol=0)
    np.testing.assert_allclose(jv, central_jvp(net, theta, x, v), rtol=1e-6, atol=1e-7)


def test_vjp_adjoint_and_jacobian_consistency(rng):
    net, theta, x = small_problem(rng, activation="gelu", n=6)
    n, c, p = 6, net.n_outputs, net.n_params
    v = rng.standard_normal(p)
    u = rng.standard_normal((n, c))
    _, jv = net.jvp(theta, x, v)
    g = net.vjp(theta, x, u)
    assert g.shape == (p,)
    # adjoint: ⟨u, J v⟩ = ⟨Jᵀ u, v⟩
    assert np.isclose(np.sum(u * jv), g @ v, rtol=1e-12)
    J = net.jacobian(theta, x)
    assert J.shape == (n * c, p) and J.flags.c_contiguous
    np.testing.assert_allclose(J @ v, jv.ravel(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(J.T @ u.ravel(), g, rtol=1e-12, atol=1e-12)


def test_jacobian_columns_against_finite_differences(rng):
    net, theta, x = small_problem(rng, activation="softplus", n=3)
    J = net.jacobian(theta, x)
    h = 1e-6
    for k in range(0, net.n_params, 7):
        e = np.zeros(net.n_params)
        e[k] = h
        col = (net.forward(theta + e, x) - net.forward(theta - e, x)).ravel() / (2 * h)
        np.testing.assert_allclose(J[:, k], col, rtol=1e-6, atol=1e-8)


def test_jacobian_row_order_is_sample_major(rng):
    net, theta, x = small_problem(rng, n=3)
    J = net.jacobian(theta, x)
    c = net.n_outputs
    for s in range(3):
        np.testing.assert_allclose(J[s * c : (s + 1) * c], net.jacobian(theta, x[s : s + 1]), rtol=1e-13, atol=1e-14)


def test_float32_follows_inputs(rng):
    net, theta, x = small_problem(rng)
    t32, x32 = theta.astype(np.float32), x.astype(np.float32)
    f32 = net.forward(t32, x32)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, net.forward(theta, x), rtol=1e-4, atol=1e-5)
    f, jv = net.jvp(t32, x32, np.ones(net.n_params, np.float32))
    assert f.dtype == jv.dtype == np.float32
    assert net.vjp(t32, x32, np.ones((4, 3), np.float32)).dtype == np.float32
    assert net.jacobian(t32, x32).dtype == np.float32


def test_pickle_and_equality():
    import copy
    import pickle

    net = itlin.Mlp([3, 5, 2], "gelu", parameterization=("ntk", 1.2, 0.4))
    back = pickle.loads(pickle.dumps(net))
    assert back == net and copy.deepcopy(net) == net
    assert back.widths == [3, 5, 2] and back.activation == "gelu"
    assert back.parameterization == ("ntk", 1.2, 0.4)
    assert net != itlin.Mlp([3, 5, 2], "gelu")
    np.testing.assert_array_equal(back.init(seed=4), net.init(seed=4))
