"""train: the iterative-linearisation trainer on the embedded MNIST digits and on arrays."""

import json

import numpy as np
import pytest

import itlin


def test_mnist_one_epoch_returns_records():
    seen = []
    run = itlin.train(data="mnist", k=20, inner="sgd", epochs=1, n_train=2000, callback=seen.append)
    assert isinstance(run, list) and len(run) >= 1
    assert seen == list(run)
    last = run[-1]
    assert last["step"] == run.steps == 16  # ⌈2000 / 128⌉ steps for one epoch
    assert run.termination == "Completed" and run.divergence is None
    assert 0.0 <= last["train_acc"] <= 1.0 and 0.0 <= last["test_acc"] <= 1.0
    assert last["test_acc"] > 0.5  # chance is 0.1
    assert run.relinearisations == last["relinearisations"] == 16 // 20 or run.relinearisations >= 0
    assert run.theta.shape == (784 * 256 + 256 + 256 * 10 + 10,) and run.theta.dtype == np.float32
    assert np.all(np.isfinite(run.theta))
    assert "TrainRun(" in repr(run)


def test_arrays_regression_k_inf_and_out(tmp_path, rng=None):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    y = np.sin(x @ np.array([[1.0], [0.5], [-0.3]]))
    net = itlin.Mlp([3, 16, 1], "tanh")
    out = tmp_path / "run"
    run = itlin.train(
        data=(x, y), k=None, inner="gn", loss="mse", model=net, steps=5, eval_every=1, dtype="float64", out=out, probe=8
    )
    assert [r["step"] for r in run] == [1, 2, 3, 4, 5]
    assert run[-1]["relinearisations"] == 0  # K = ∞
    assert run[-1]["train_loss"] < run[0]["train_loss"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l) for l in lines] == list(run)
    assert json.loads((out / "summary.json").read_text())["steps"] == 5
    theta = np.load(out / "theta.npy")
    np.testing.assert_array_equal(theta, run.theta)
    with pytest.raises(ValueError, match="not empty"):
        itlin.train(data=(x, y), loss="mse", model=net, steps=1, out=out)
    itlin.train(data=(x, y), loss="mse", model=net, steps=1, out=out, force=True)


def test_labels_from_arrays_and_early_stop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 4))
    labels = (x[:, 0] > 0).astype(np.int64)
    run = itlin.train(data=(x, labels, x, labels), k=5, steps=50, eval_every=5, batch=20, callback=lambda r: r["step"] < 10)
    assert run.termination == "Stopped"
    assert [r["step"] for r in run] == [5, 10]


def test_callback_exception_propagates():
    def cb(r):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        itlin.train(data="mnist", epochs=1, n_train=500, callback=cb)


def test_bad_arguments():
    with pytest.raises(ValueError, match="inner 'lbfgs'"):
        itlin.train(inner="lbfgs")
    with pytest.raises(ValueError, match="k must be"):
        itlin.train(k=0)
    with pytest.raises(ValueError, match="epochs must be positive"):
        itlin.train(epochs=0)
    with pytest.raises(ValueError, match="not a directory"):
        itlin.train(data="/nonexistent/dir")
    with pytest.raises(ValueError, match="arch"):
        itlin.train(arch=[10, 5, 10], n_train=100)
    with pytest.raises(ValueError, match="needs class labels"):
        itlin.train(data=(np.zeros((4, 2)), np.zeros((4, 1))), loss="ce")
    with pytest.raises(ValueError, match="train x contains NaN"):
        itlin.train(data=(np.full((4, 2), np.nan), np.zeros((4, 1))), loss="mse")


def test_data_of_the_wrong_kind():
    with pytest.raises(ValueError, match="data must be 'mnist', a directory, or a tuple"):
        itlin.train(data=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="a tuple of 3 arrays"):
        itlin.train(data=(np.zeros((3, 3)), np.zeros(3), np.zeros(3)))
