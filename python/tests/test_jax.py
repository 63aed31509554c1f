"""Against JAX in float64 (skipped where JAX is not installed): jax.jvp, jax.vjp,
jax.jacrev, J Jᵀ and a dense solve of the Gauss-Newton system; JAX arrays as inputs."""

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

import itlin  # noqa: E402

WIDTHS = [6, 9, 7, 3]


def jax_mlp(widths, act):
    def f(theta, x):
        a, off = x, 0
        for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
            w = theta[off : off + fi * fo].reshape(fo, fi)
            off += fi * fo
            b = theta[off : off + fo]
            off += fo
            z = a @ w.T + b
            a = z if l == len(widths) - 2 else act(z)
        return a

    return f


ACTS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "softplus": jax.nn.softplus,
}


@pytest.fixture(params=["tanh", "gelu"])
def case(request):
    act = request.param
    rng = np.random.default_rng(5)
    net = itlin.Mlp(WIDTHS, activation=act)
    theta = net.init(seed=1) + 0.05 * rng.standard_normal(net.n_params)
    x = rng.standard_normal((5, WIDTHS[0]))
    return net, theta, x, jax_mlp(WIDTHS, ACTS[act])


def test_forward_jvp_vjp_jacrev(case):
    net, theta, x, f = case
    v = np.random.default_rng(0).standard_normal(net.n_params)
    u = np.random.default_rng(1).standard_normal((5, 3))
    fj, jvj = jax.jvp(lambda t: f(t, x), (jnp.asarray(theta),), (jnp.asarray(v),))
    fi, jvi = net.jvp(theta, x, v)
    np.testing.assert_allclose(fi, fj, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(jvi, jvj, rtol=1e-11, atol=1e-12)
    _, pull = jax.vjp(lambda t: f(t, x), jnp.asarray(theta))
    np.testing.assert_allclose(net.vjp(theta, x, u), pull(jnp.asarray(u))[0], rtol=1e-11, atol=1e-12)
    Jj = np.asarray(jax.jacrev(lambda t: f(t, x))(jnp.asarray(theta))).reshape(15, net.n_params)
    J = net.jacobian(theta, x)
    np.testing.assert_allclose(J, Jj, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(itlin.ntk(net, theta, x, method="structured"), Jj @ Jj.T, rtol=1e-10, atol=1e-12)


def test_gauss_newton_step_against_a_dense_jax_solve(case):
    net, theta, x, f = case
    y = np.random.default_rng(2).standard_normal((5, 3))
    lam = 1e-3
    Jj = jax.jacrev(lambda t: f(t, x))(jnp.asarray(theta)).reshape(15, -1)
    r = (f(jnp.asarray(theta), x) - y).reshape(-1)
    want = jnp.linalg.solve(Jj.T @ Jj + 5 * lam * jnp.eye(net.n_params), -Jj.T @ r)
    for form in ["primal", "dual", "cg", "spectral"]:
        got = itlin.gauss_newton_step(net, theta, x, y, damping=lam, form=form)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_jax_arrays_are_accepted_in_place(case):
    net, theta, x, _ = case
    tj, xj = jnp.asarray(theta), jnp.asarray(x)
    assert itlin._itlin._reads_in_place(xj)
    np.testing.assert_array_equal(net.forward(tj, xj), net.forward(theta, x))
    t32 = jnp.asarray(theta, dtype=jnp.float32)
    assert net.forward(t32, jnp.asarray(x, dtype=jnp.float32)).dtype == np.float32
