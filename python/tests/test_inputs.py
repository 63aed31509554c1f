"""Bad inputs raise one clear exception (never a crash); other layouts and array types work."""

import numpy as np
import pytest
from conftest import small_problem

import itlin


class DLPackOnly:
    """An array that is only reachable through the DLPack protocol (as a JAX or PyTorch CPU
    array is)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def test_wrong_shapes_name_both_shapes(rng):
    net, theta, x = small_problem(rng)  # widths (5, 7, 6, 3), N = 4
    p = net.n_params
    cases = [
        (lambda: net.forward(theta[:-1], x), rf"theta has shape \({p - 1},\), expected \({p},\)"),
        (lambda: net.forward(theta, x[:, :4]), r"x has shape \(4, 4\), expected \(N, 5\)"),
        (lambda: net.forward(theta, x[0]), r"x has shape \(5,\), expected \(N, 5\)"),
        (lambda: net.forward(theta, x[:0]), r"x has shape \(0, 5\): no samples"),
        (lambda: net.jvp(theta, x, theta[:3]), r"v has shape \(3,\), expected \(" + str(p)),
        (lambda: net.vjp(theta, x, np.ones((3, 3))), r"u has shape \(3, 3\), expected \(N, C\) = \(4, 3\)"),
        (lambda: net.vjp(theta, x, np.ones(12)), r"u has shape \(12,\), expected \(N, C\) = \(4, 3\)"),
        (lambda: itlin.gauss_newton_step(net, theta, x, np.ones((4, 2))), r"y has shape \(4, 2\), expected \(N, C\)"),
        (lambda: itlin.ntk_vector_product(net, theta, x, np.ones(5)), r"v has shape \(5,\), expected \(N\*C,\) = \(12,\)"),
        (lambda: itlin.kernel_distance(np.eye(3), np.eye(4)), r"k2 has shape \(4, 4\), expected \(3, 3\)"),
    ]
    for call, msg in cases:
        with pytest.raises(ValueError, match=msg):
            call()


def test_dtype_mismatch_names_both_dtypes(rng):
    net, theta, x = small_problem(rng)
    with pytest.raises(ValueError, match="x has dtype float32 but theta has dtype float64"):
        net.forward(theta, x.astype(np.float32))
    with pytest.raises(ValueError, match="v has dtype float64 but theta has dtype float32"):
        net.jvp(theta.astype(np.float32), x.astype(np.float32), np.ones(net.n_params))
    with pytest.raises(ValueError, match="theta has dtype int64; expected float32 or float64"):
        net.forward(np.zeros(net.n_params, dtype=np.int64), x)
    with pytest.raises(ValueError, match="x has dtype complex128"):
        net.forward(theta, x.astype(complex))
    with pytest.raises(ValueError, match="dtype"):
        net.init(dtype="float16")


def test_nan_names_the_argument(rng):
    net, theta, x = small_problem(rng)
    y = np.zeros((4, 3))
    bad = lambda a: np.where(np.arange(a.size).reshape(a.shape) == 1, np.nan, a)  # noqa: E731
    with pytest.raises(ValueError, match="theta contains NaN"):
        net.forward(bad(theta), x)
    with pytest.raises(ValueError, match="x contains NaN"):
        net.jacobian(theta, bad(x))
    with pytest.raises(ValueError, match="v contains NaN"):
        net.jvp(theta, x, bad(np.ones(net.n_params)))
    with pytest.raises(ValueError, match="u contains NaN"):
        net.vjp(theta, x, bad(np.ones((4, 3))))
    with pytest.raises(ValueError, match="y contains NaN"):
        itlin.gauss_newton_step(net, theta, x, bad(y))
    with pytest.raises(ValueError, match="x contains NaN or infinite"):
        itlin.ntk(net, theta, np.where(x > 0, np.inf, x))


def test_bad_configuration():
    for call, msg in [
        (lambda: itlin.Mlp([3, 4], activation="swish"), "unknown activation 'swish'"),
        (lambda: itlin.Mlp([3]), "at least an input and an output width"),
        (lambda: itlin.Mlp([3, 0, 2]), "width 1 of"),
        (lambda: itlin.Mlp([3, 2], parameterization=("ntk", -1.0, 0.0)), "σ_w > 0"),
        (lambda: itlin.Mlp([3, 2], parameterization="lazy"), "parameterization"),
    ]:
        with pytest.raises(ValueError, match=msg):
            call()
    with pytest.raises(OverflowError):
        itlin.Mlp([3, -1])


def test_bad_options(rng):
    net, theta, x = small_problem(rng)
    y = np.zeros((4, 3))
    with pytest.raises(ValueError, match="method 'fast'"):
        itlin.ntk(net, theta, x, method="fast")
    with pytest.raises(ValueError, match="form 'qr'"):
        itlin.gauss_newton_step(net, theta, x, y, form="qr")
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        itlin.gauss_newton_step(net, theta, x, y, loss="l1")
    with pytest.raises(ValueError, match="damping"):
        itlin.gauss_newton_step(net, theta, x, y, damping=-1.0)
    with pytest.raises(ValueError, match="damping"):
        itlin.gauss_newton_step(net, theta, x, y, damping=float("nan"))
    with pytest.raises(TypeError):
        itlin.ntk("not a model", theta, x)


def test_memory_budget_refusal(rng, monkeypatch):
    net = itlin.Mlp([100, 100, 10], "tanh")
    theta = net.init()
    x = rng.standard_normal((64, 100))
    monkeypatch.setenv("ITLIN_MEMORY_BUDGET_MB", "1")
    with pytest.raises(MemoryError, match="Jacobian"):
        net.jacobian(theta, x)
    with pytest.raises(MemoryError, match="primal"):
        itlin.gauss_newton_step(net, theta, x, np.zeros((64, 10)), form="primal")


def test_non_contiguous_inputs_are_copied_and_give_the_same_result(rng):
    net, theta, x = small_problem(rng, n=6)
    f = net.forward(theta, x)
    xf = np.asfortranarray(x)
    assert not itlin._itlin._reads_in_place(xf)
    assert itlin._itlin._reads_in_place(x)
    np.testing.assert_array_equal(net.forward(theta, xf), f)
    wide = np.zeros((6, 10))
    wide[:, ::2] = x
    np.testing.assert_array_equal(net.forward(theta, wide[:, ::2]), f)
    tstride = np.repeat(theta, 2)[::2]
    np.testing.assert_array_equal(net.forward(tstride, x), f)
    np.testing.assert_array_equal(net.forward(theta, x.T.copy().T), f)
    # lists and integer arrays are converted
    np.testing.assert_allclose(net.forward(theta, x.tolist()), f)
    xi = rng.integers(-2, 3, size=(6, 5))
    np.testing.assert_array_equal(net.forward(theta, xi), net.forward(theta, xi.astype(np.float64)))


def test_dlpack_objects_are_read_in_place(rng):
    net, theta, x = small_problem(rng)
    assert itlin._itlin._reads_in_place(DLPackOnly(x))
    np.testing.assert_array_equal(net.forward(DLPackOnly(theta), DLPackOnly(x)), net.forward(theta, x))
    t32 = DLPackOnly(theta.astype(np.float32))
    assert net.jacobian(t32, DLPackOnly(x.astype(np.float32))).dtype == np.float32


def test_outputs_are_fresh_writable_arrays(rng):
    net, theta, x = small_problem(rng)
    f = net.forward(theta, x)
    assert f.flags.writeable and f.flags.owndata is False or f.base is not None or f.flags.owndata
    f[:] = 0.0
    assert np.any(net.forward(theta, x) != 0.0)
    g = net.vjp(theta, x, np.ones((4, 3)))
    g += 1.0


def test_sizes_beyond_memory_are_refused_before_allocating():
    with pytest.raises(ValueError, match="more parameters than memory can hold"):
        itlin.Mlp([2**40, 2**40, 2])
    huge = itlin.Mlp([2**20, 2**20, 2])  # 2^40 parameters: the architecture alone is fine
    assert huge.n_params == 2**40 + 2**20 + 2 * 2**20 + 2
    with pytest.raises(MemoryError, match="θ"):
        huge.init()
