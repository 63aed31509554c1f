"""Shared helpers: a NumPy re-implementation of the MLP from the θ layout, and small nets."""

import numpy as np
import pytest
from scipy_free import erf  # noqa: F401  (re-exported for the tests)

import itlin

ACTIVATIONS = ["identity", "relu", "tanh", "gelu", "softplus"]


def phi(name, z):
    """The activations, in NumPy."""
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "gelu":
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    raise ValueError(name)


def numpy_forward(widths, activation, theta, x, ntk=None):
    """f(X; θ) from the documented layout: per layer W (fan_out × fan_in, row-major), then b;
    with ntk=(σ_w, σ_b) the NTK parameterisation z = σ_w/√fan_in W a + σ_b b."""
    a = x
    off = 0
    for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
        w = theta[off : off + fi * fo].reshape(fo, fi)
        off += fi * fo
        b = theta[off : off + fo]
        off += fo
        sw, sb = (1.0, 1.0) if ntk is None else (ntk[0] / np.sqrt(fi), ntk[1])
        z = sw * (a @ w.T) + sb * b
        a = z if l == len(widths) - 2 else phi(activation, z)
    assert off == len(theta)
    return a


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def small_problem(rng, widths=(5, 7, 6, 3), activation="tanh", n=4, seed=3):
    net = itlin.Mlp(list(widths), activation=activation)
    theta = net.init(seed=seed)
    # move the biases off zero so that every parameter matters
    theta = theta + 0.1 * rng.standard_normal(theta.shape)
    x = rng.standard_normal((n, widths[0]))
    return net, theta, x
