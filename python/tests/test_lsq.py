"""least_squares on Python callables: NIST StRD problems with certified values (the data
file the Rust suite uses), Rosenbrock, and exceptions and bad outputs of the callables."""

import json
import pathlib

import numpy as np
import pytest

import itlin

NIST = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "nist-strd" / "nist_strd_lower_average.json"


def nist(name):
    for p in json.loads(NIST.read_text()):
        if p["name"] == name:
            return p
    raise KeyError(name)


@pytest.mark.parametrize("start", ["start1", "start2"])
def test_misra1a_certified_with_analytic_jacobian(start):
    p = nist("Misra1a")
    x, y = np.array(p["x"]), np.array(p["y"])

    def r(b):
        return b[0] * (1 - np.exp(-b[1] * x)) - y

    def jac(b):
        e = np.exp(-b[1] * x)
        return np.stack([1 - e, b[0] * x * e], axis=1)

    rep = itlin.least_squares(r, np.array(p[start]), jacobian=jac)
    assert rep.converged, rep.termination
    np.testing.assert_allclose(rep.x, p["certified_params"], rtol=1e-8)
    assert np.isclose(2 * rep.cost, p["certified_rss"], rtol=1e-8)
    assert rep.evaluations >= rep.iterations >= 1
    assert rep.jacobian_evaluations >= 1 and len(rep.lambda_history) == rep.iterations
    assert np.isclose(rep.residual_norm, np.sqrt(p["certified_rss"]), rtol=1e-8)


@pytest.mark.parametrize("name", ["Misra1a", "Chwirut2", "DanWood", "Misra1b"])
def test_nist_with_finite_difference_jacobian(name):
    p = nist(name)
    x, y = np.array(p["x"]), np.array(p["y"])
    expr = p["model_python"]

    def r(b):
        env = {"x": x, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "pi": np.pi}
        env.update({f"b{i + 1}": b[i] for i in range(len(b))})
        return eval(expr, {"__builtins__": {}}, env) - y

    rep = itlin.least_squares(r, np.array(p["start2"]))
    np.testing.assert_allclose(rep.x, p["certified_params"], rtol=1e-5)
    assert np.isclose(2 * rep.cost, p["certified_rss"], rtol=1e-6)


def rosen(t):
    return np.array([10 * (t[1] - t[0] ** 2), 1 - t[0]])


def rosen_jac(t):
    return np.array([[-20 * t[0], 10.0], [-1.0, 0.0]])


def test_rosenbrock_float64_float32_and_lists():
    rep = itlin.least_squares(rosen, np.array([-1.2, 1.0]), jacobian=rosen_jac)
    assert rep.converged and rep.x.dtype == np.float64
    np.testing.assert_allclose(rep.x, [1.0, 1.0], atol=1e-10)
    assert rep.initial_cost == pytest.approx(0.5 * np.sum(rosen(np.array([-1.2, 1.0])) ** 2))
    rep32 = itlin.least_squares(rosen, np.array([-1.2, 1.0], np.float32), jacobian=rosen_jac)
    assert rep32.x.dtype == np.float32
    np.testing.assert_allclose(rep32.x, [1.0, 1.0], atol=1e-3)
    rep_list = itlin.least_squares(lambda t: list(rosen(t)), [-1, 1])
    np.testing.assert_allclose(rep_list.x, [1.0, 1.0], atol=1e-6)


def test_options_are_used():
    rep = itlin.least_squares(rosen, [-1.2, 1.0], jacobian=rosen_jac, max_evaluations=3)
    assert rep.termination == "maximum number of evaluations reached"
    assert rep.evaluations <= 3


class Boom(Exception):
    pass


@pytest.mark.parametrize("where", ["residuals", "jacobian"])
@pytest.mark.parametrize("after", [0, 3])
def test_a_callable_that_raises_propagates_and_stops_the_solve(where, after):
    calls = {"residuals": 0, "jacobian": 0}

    def r(t):
        calls["residuals"] += 1
        if where == "residuals" and calls["residuals"] > after:
            raise Boom(f"residuals call {calls['residuals']}")
        return rosen(t)

    def j(t):
        calls["jacobian"] += 1
        if where == "jacobian" and calls["jacobian"] > after:
            raise Boom(f"jacobian call {calls['jacobian']}")
        return rosen_jac(t)

    with pytest.raises(Boom) as e:
        itlin.least_squares(r, [-1.2, 1.0], jacobian=j)
    # the solve stopped at the first raise: no call after it
    assert str(e.value) == f"{where} call {after + 1}"
    assert calls[where] == after + 1


def test_wrong_output_shapes_are_value_errors():
    with pytest.raises(ValueError, match=r"residuals\(theta0\) has shape \(2, 1\)"):
        itlin.least_squares(lambda t: rosen(t)[:, None], [-1.2, 1.0])
    with pytest.raises(ValueError, match=r"jacobian\(theta\) has shape \(2, 3\), expected \(m, n\) = \(2, 2\)"):
        itlin.least_squares(rosen, [-1.2, 1.0], jacobian=lambda t: np.zeros((2, 3)))
    calls = [0]

    def shrinking(t):
        calls[0] += 1
        return rosen(t) if calls[0] < 3 else rosen(t)[:1]

    with pytest.raises(ValueError, match=r"residuals\(theta\) has shape \(1,\), expected \(2,\)"):
        itlin.least_squares(shrinking, [-1.2, 1.0], jacobian=rosen_jac)


def test_bad_arguments():
    with pytest.raises(ValueError, match="theta0 contains NaN"):
        itlin.least_squares(rosen, [np.nan, 1.0])
    with pytest.raises(ValueError, match="callable"):
        itlin.least_squares(3, [1.0, 1.0])
    with pytest.raises(ValueError, match="theta0 has shape"):
        itlin.least_squares(rosen, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="ftol"):
        itlin.least_squares(rosen, [1.0, 1.0], ftol=-1.0)


def test_nan_residuals_are_data_not_errors():
    rep = itlin.least_squares(lambda t: np.array([np.nan, 1.0]), [1.0, 2.0], jacobian=rosen_jac)
    assert rep.termination == "non-finite residuals or Jacobian" and not rep.converged
