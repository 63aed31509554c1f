"""PyTorch CPU tensors as inputs (skipped where PyTorch is not installed)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

import itlin  # noqa: E402


def test_torch_tensors_are_read_through_dlpack():
    net = itlin.Mlp([4, 6, 2], "tanh")
    theta = net.init(seed=0)
    x = np.random.default_rng(0).standard_normal((3, 4))
    tt, xt = torch.from_numpy(theta.copy()), torch.from_numpy(x.copy())
    assert itlin._itlin._reads_in_place(xt)
    np.testing.assert_array_equal(net.forward(tt, xt), net.forward(theta, x))
    g = net.vjp(tt, xt, torch.ones(3, 2, dtype=torch.float64))
    np.testing.assert_allclose(g, net.vjp(theta, x, np.ones((3, 2))), rtol=1e-15)
    with pytest.raises(ValueError, match="x has dtype float32 but theta has dtype float64"):
        net.forward(tt, xt.float())
