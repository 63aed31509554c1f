"""ntk, ntk_vector_product, kernel_distance, gauss_newton_step and
gradient_descent_closed_form against dense NumPy linear algebra on the Jacobian."""

import numpy as np
import pytest
from conftest import small_problem

import itlin


@pytest.mark.parametrize("method", ["explicit", "structured", "auto"])
def test_ntk_is_j_jt(rng, method):
    net, theta, x = small_problem(rng, n=5)
    J = net.jacobian(theta, x)
    K = itlin.ntk(net, theta, x, method=method)
    assert K.shape == (15, 15)
    np.testing.assert_allclose(K, J @ J.T, rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(K, K.T)


def test_ntk_ntk_parameterization(rng):
    net = itlin.Mlp([4, 9, 2], "relu", parameterization=("ntk", 1.4, 0.3))
    theta = net.init(seed=2, scheme=("ntk", 1.4, 0.3))
    x = rng.standard_normal((6, 4))
    J = net.jacobian(theta, x)
    np.testing.assert_allclose(itlin.ntk(net, theta, x, method="structured"), J @ J.T, rtol=1e-11, atol=1e-12)


def test_ntk_vector_product_and_distance(rng):
    net, theta, x = small_problem(rng, n=5)
    K = itlin.ntk(net, theta, x)
    v = rng.standard_normal(15)
    np.testing.assert_allclose(itlin.ntk_vector_product(net, theta, x, v), K @ v, rtol=1e-11, atol=1e-12)
    assert abs(itlin.kernel_distance(K, 3.0 * K)) < 1e-14
    L = K + np.eye(15)
    want = 1 - np.sum(K * L) / (np.linalg.norm(K) * np.linalg.norm(L))
    assert np.isclose(itlin.kernel_distance(K, L), want, rtol=1e-12)


def dense_gn(J, f, y, lam, loss):
    """(JᵀHJ + NλI) δ = −Jᵀg, the mean-loss Gauss-Newton system, densely."""
    n, c = f.shape
    if loss == "mse":
        H = np.eye(n * c)
        g = (f - y).ravel()
    else:
        p = np.exp(f - f.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        H = np.zeros((n * c, n * c))
        for s in range(n):
            H[s * c : (s + 1) * c, s * c : (s + 1) * c] = np.diag(p[s]) - np.outer(p[s], p[s])
        g = (p - y).ravel()
    A = J.T @ H @ J + n * lam * np.eye(J.shape[1])
    return np.linalg.solve(A, -J.T @ g)


@pytest.mark.parametrize("form", ["auto", "primal", "dual", "cg", "spectral"])
@pytest.mark.parametrize("shape", ["wide", "tall"])
def test_gauss_newton_step_solves_the_damped_system(rng, form, shape):
    # wide: P > N·C (the dual is natural); tall: P ≤ N·C (the primal is)
    widths, n = ((5, 7, 3), 4) if shape == "wide" else ((2, 3, 2), 20)
    net, theta, x = small_problem(rng, widths=widths, n=n)
    y = rng.standard_normal((n, widths[-1]))
    lam = 1e-2
    delta = itlin.gauss_newton_step(net, theta, x, y, loss="mse", damping=lam, form=form)
    want = dense_gn(net.jacobian(theta, x), net.forward(theta, x), y, lam, "mse")
    np.testing.assert_allclose(delta, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("form", ["primal", "dual", "cg"])
def test_gauss_newton_step_cross_entropy_ggn(rng, form):
    net, theta, x = small_problem(rng, widths=(5, 6, 4), n=6)
    y = np.eye(4)[rng.integers(0, 4, size=6)]
    delta, rep = itlin.gauss_newton_step(net, theta, x, y, loss="ce", damping=1e-2, form=form, report=True)
    want = dense_gn(net.jacobian(theta, x), net.forward(theta, x), y, 1e-2, "ce")
    np.testing.assert_allclose(delta, want, rtol=1e-7, atol=1e-10)
    assert rep["status"] == "solved" and rep["form"] == form


def test_gradient_descent_closed_form_equals_k_steps(rng):
    net, theta, x = small_problem(rng, widths=(3, 5, 2), n=6)
    y = rng.standard_normal((6, 2))
    J, r = net.jacobian(theta, x), (net.forward(theta, x) - y).ravel()
    lr, k, n = 0.3, 40, 6
    d = np.zeros(net.n_params)
    for _ in range(k):  # GD on the linearised mean MSE (1/2N)‖r + Jδ‖²
        d -= lr / n * (J.T @ (r + J @ d))
    np.testing.assert_allclose(itlin.gradient_descent_closed_form(net, theta, x, y, lr, k), d, rtol=1e-8, atol=1e-11)


def test_float32_step(rng):
    net, theta, x = small_problem(rng, n=5)
    y = rng.standard_normal((5, 3))
    d32 = itlin.gauss_newton_step(net, theta.astype(np.float32), x.astype(np.float32), y.astype(np.float32), damping=0.1)
    d64 = itlin.gauss_newton_step(net, theta, x, y, damping=0.1)
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("n", [3, 8, 16])
def test_ntk_output_is_a_c_contiguous_array(rng, n):
    net, theta, x = small_problem(rng, widths=(5, 7, 2), n=n)
    K = itlin.ntk(net, theta, x)
    assert K.flags.c_contiguous and K.shape == (2 * n, 2 * n)
    J = net.jacobian(theta, x)
    np.testing.assert_allclose(K, J @ J.T, rtol=1e-11, atol=1e-12)
    K[0, 0] = -1.0  # writable, and the next call is not affected
    assert itlin.ntk(net, theta, x)[0, 0] > 0
