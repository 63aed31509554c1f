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


def _cli_binary():
    """The crate's own `itlin` binary (built by `cargo build --release`; CI builds it before
    the Python suite runs), or None."""
    import os
    import pathlib

    env = os.environ.get("ITLIN_BIN")
    if env:
        return pathlib.Path(env)
    root = pathlib.Path(__file__).resolve().parents[2]
    for sub in ("target/release/itlin", "target/debug/itlin"):
        if (root / sub).is_file():
            return root / sub
    return None


def test_train_matches_the_rust_cli_bit_for_bit(tmp_path):
    """`itlin.train` from Python and `itlin train` from the crate's CLI, same settings: the
    same θ byte for byte and the same metrics (times aside). The binding adds no numerics."""
    import subprocess

    exe = _cli_binary()
    if exe is None:
        pytest.skip("the crate's itlin binary is not built (cargo build --release)")
    cli_out, py_out = tmp_path / "cli", tmp_path / "py"
    subprocess.run(
        [str(exe), "train", "--epochs", "0.5", "--out", str(cli_out), "--quiet"],
        check=True,
        capture_output=True,
    )
    run = itlin.train(data="mnist", k=20, inner="sgd", epochs=0.5, out=py_out)  # 32 steps, one re-linearisation
    assert (cli_out / "theta.npy").read_bytes() == (py_out / "theta.npy").read_bytes()

    def strip(line):
        rec = json.loads(line)
        return {k: v for k, v in rec.items() if k not in ("seconds", "timings")}

    cli = [strip(l) for l in (cli_out / "metrics.jsonl").read_text().splitlines()]
    py = [strip(l) for l in (py_out / "metrics.jsonl").read_text().splitlines()]
    assert cli == py and len(py) == len(run) >= 1
