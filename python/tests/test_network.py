"""Network (a spec string of layers): the Mlp equivalence of the θ layout, finite
differences, J against jvp/vjp, K = J Jᵀ, image-shaped inputs, bad specs."""

import pickle

import numpy as np
import pytest

import itlin

SPEC = "conv(3,3,pad=1),tanh,maxpool(2),conv(2,2,stride=2),gelu,flatten,dense(4)"


@pytest.fixture
def conv():
    rng = np.random.default_rng(7)
    net = itlin.Network(SPEC, input_shape=(2, 8, 8))
    theta = net.init(seed=1) + 0.05 * rng.standard_normal(net.n_params)
    x = rng.standard_normal((3, 2, 8, 8))
    return net, theta, x


def test_attributes():
    net = itlin.Network("conv(8,3,pad=1),relu,avgpool(2),dense(10)", input_shape=(1, 28, 28))
    assert net.n_params == 8 * 9 + 8 + 10 * 8 * 14 * 14 + 10
    assert (net.n_inputs, net.n_outputs) == (784, 10)
    assert net.input_shape == (1, 28, 28) and net.output_shape == (10, 1, 1)
    assert net.spec == "conv(8,3,pad=1),relu,avgpool(2),dense(10)"
    assert isinstance(net, itlin.Model)
    assert pickle.loads(pickle.dumps(net)) == net
    assert itlin.Network("dense(3)", input_shape=5).input_shape == (5, 1, 1)


def test_dense_network_is_the_mlp(rng):
    net = itlin.Network("dense(16),relu,dense(10)", input_shape=(784,))
    mlp = itlin.Mlp([784, 16, 10], activation="relu")
    assert net.n_params == mlp.n_params
    theta = mlp.init(seed=3)
    np.testing.assert_array_equal(net.init(seed=3), theta)
    x = rng.random((5, 784))
    np.testing.assert_allclose(net.forward(theta, x), mlp.forward(theta, x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net.jacobian(theta, x), mlp.jacobian(theta, x), rtol=1e-11, atol=1e-12)


def test_image_and_flat_inputs_agree(conv):
    net, theta, x = conv
    np.testing.assert_array_equal(net.forward(theta, x), net.forward(theta, x.reshape(3, -1)))
    with pytest.raises(ValueError, match=r"x has shape \(3, 8, 8, 2\), expected \(N, 2, 8, 8\)"):
        net.forward(theta, x.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"x has shape \(3, 100\), expected \(N, 128\) or \(N, 2, 8, 8\)"):
        net.forward(theta, np.zeros((3, 100)))


def test_jvp_vjp_jacobian_ntk(conv):
    net, theta, x = conv
    rng = np.random.default_rng(0)
    v = rng.standard_normal(net.n_params)
    u = rng.standard_normal((3, 4))
    h = 1e-6
    f, jv = net.jvp(theta, x, v)
    fd = (net.forward(theta + h * v, x) - net.forward(theta - h * v, x)) / (2 * h)
    np.testing.assert_allclose(jv, fd, rtol=1e-6, atol=1e-7)
    g = net.vjp(theta, x, u)
    assert np.isclose(np.sum(u * jv), g @ v, rtol=1e-11)
    J = net.jacobian(theta, x)
    np.testing.assert_allclose(J @ v, jv.ravel(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(J.T @ u.ravel(), g, rtol=1e-11, atol=1e-12)
    for method in ["explicit", "structured", "auto"]:
        np.testing.assert_allclose(itlin.ntk(net, theta, x, method=method), J @ J.T, rtol=1e-10, atol=1e-11)


def test_gauss_newton_step_on_a_network(conv):
    net, theta, x = conv
    y = np.random.default_rng(1).standard_normal((3, 4))
    J, r = net.jacobian(theta, x), (net.forward(theta, x) - y).ravel()
    want = np.linalg.solve(J.T @ J + 3 * 1e-2 * np.eye(net.n_params), -J.T @ r)
    for form in ["auto", "dual", "cg"]:
        np.testing.assert_allclose(itlin.gauss_newton_step(net, theta, x, y, damping=1e-2, form=form), want, rtol=1e-7, atol=1e-10)


def test_train_a_network():
    net = itlin.Network("conv(2,3,stride=2),relu,dense(10)", input_shape=(1, 28, 28))
    run = itlin.train(data="mnist", model=net, steps=8, eval_every=8, n_train=256, probe=8)
    assert run.steps == 8 and run.theta.shape == (net.n_params,)


def test_bad_specs():
    with pytest.raises(ValueError, match="unknown"):
        itlin.Network("dense(10),swish", input_shape=(4,))
    with pytest.raises(ValueError, match="input_shape"):
        itlin.Network("dense(10)", input_shape="big")
    with pytest.raises(ValueError):
        itlin.Network("conv(2,9)", input_shape=(1, 4, 4))
