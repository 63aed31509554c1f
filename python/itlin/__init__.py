"""itlin: iterative linearisation, the empirical NTK and damped Gauss-Newton for neural
networks, from NumPy, JAX and PyTorch.

Conventions (the same as the Rust crate):

* A model ``f(x; θ) ∈ R^C`` has a flat parameter vector θ of shape ``(P,)``; a batch ``x``
  has shape ``(N, d)``; outputs have shape ``(N, C)``.
* Rows are sample-major: output ``c`` of sample ``n`` is row ``n·C + c`` of the Jacobian
  ``J = ∂vec(f)/∂θ`` (shape ``(N·C, P)``) and of the NTK ``Θ = J Jᵀ``.
* Losses are means over samples: MSE ``L = (1/2N) Σ_n ‖f_n − y_n‖²``, softmax cross-entropy
  ``L = (1/N) Σ_n CE(softmax(f_n), y_n)``.
* Arrays are float32 or float64 (θ decides, the others must agree); C-contiguous NumPy
  arrays are read in place, others copied once; objects with ``__dlpack__`` (JAX, PyTorch
  CPU arrays) are read through ``numpy.from_dlpack`` without a copy. Results are new NumPy
  arrays. The GIL is released during every computation.
* Shape, dtype, NaN and configuration problems raise ValueError naming the argument (and
  both shapes); plans over the memory budget raise MemoryError; device problems
  RuntimeError.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _itlin
from ._itlin import (
    LeastSquaresReport,
    Mlp,
    Model,
    Network,
    gauss_newton_step,
    gradient_descent_closed_form,
    kernel_distance,
    least_squares,
    ntk,
    ntk_vector_product,
)

__version__ = _itlin.__version__

__all__ = [
    "LeastSquaresReport",
    "Mlp",
    "Model",
    "Network",
    "TrainRun",
    "gauss_newton_step",
    "gradient_descent_closed_form",
    "kernel_distance",
    "least_squares",
    "ntk",
    "ntk_vector_product",
    "train",
]


class TrainRun(list):
    """The evaluations of a training run, one dict per evaluation (a ``list``), with the run's
    outcome as attributes.

    Each record has ``step``, ``epoch``, ``relinearisations``, ``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc`` (of the linearised model ``f_lin``), ``net_test_loss``,
    ``net_test_acc`` (of the network itself), ``dist_init`` (‖θ − θ₀‖), ``dist_lin``
    (‖θ − θ̃‖), ``lin_error``, ``kernel_distance``, ``kernel_distance_lin``,
    ``kernel_distance_features``, ``lr``, ``damping``, ``seconds`` and ``timings``
    (``None`` where not measured).

    Attributes:
        theta: the final θ (ndarray of shape (P,)).
        termination: "Completed", "Stopped" (the callback returned False) or "Diverged".
        steps: inner steps taken.
        relinearisations: feature updates θ̃ ← θ made.
        seconds: wall time of the training.
        divergence: where and why the run diverged (a dict), or None.
        summary: the whole summary dict (also written to ``out/summary.json``).
    """

    theta: Any
    termination: str
    steps: int
    relinearisations: int
    seconds: float
    divergence: Optional[Dict[str, Any]]
    summary: Dict[str, Any]

    def __init__(self, records: List[Dict[str, Any]], summary: Dict[str, Any], theta: Any):
        super().__init__(records)
        self.summary = summary
        self.theta = theta
        self.termination = summary["termination"]
        self.steps = summary["steps"]
        self.relinearisations = summary["relinearisations"]
        self.seconds = summary["seconds"]
        self.divergence = summary.get("divergence")

    def __repr__(self) -> str:
        return (
            f"TrainRun({len(self)} evaluations, termination={self.termination!r}, "
            f"steps={self.steps}, seconds={self.seconds:.2f})"
        )


def train(
    data: Union[str, "os.PathLike[str]", Sequence[Any]] = "mnist",
    k: Union[int, str, None] = 20,
    inner: str = "sgd",
    epochs: float = 1.0,
    out: Optional[Union[str, "os.PathLike[str]"]] = None,
    callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
    *,
    model: Optional[Model] = None,
    theta0: Any = None,
    arch: Optional[Sequence[int]] = None,
    activation: str = "relu",
    loss: str = "ce",
    lr: float = 0.1,
    momentum: float = 0.9,
    nesterov: bool = False,
    damping: float = 1e-3,
    adaptive: bool = False,
    gn_batch: int = 256,
    batch: int = 128,
    steps: Optional[int] = None,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    eval_every: Optional[int] = None,
    probe: int = 32,
    kernel_distance: bool = True,
    seed: int = 0,
    n_train: Optional[int] = None,
    dtype: str = "float32",
    force: bool = False,
) -> TrainRun:
    """Trains a network by iterative linearisation, as ``itlin train`` does, and returns its
    evaluations (a :class:`TrainRun`, a list of dicts).

    The trained model is the linearisation at θ̃,
    ``f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)``, optimised by the ``inner`` optimiser;
    every ``k`` inner steps θ̃ ← θ (a feature update). ``k=1`` is ordinary (S)GD,
    ``k=None`` (or "inf") never re-linearises (the finite-width NTK / lazy regime).

    Args:
        data: "mnist" (the 10,000 embedded MNIST digits: 8,000 train, 2,000 test, pixels in
            [0, 1]), a directory (four IDX files or x_train.npy, y_train.npy, x_test.npy,
            y_test.npy), or arrays ``(x, y)`` / ``(x, y, x_test, y_test)`` with ``x`` of
            shape (N, d) and ``y`` integer labels (N,) or real targets (N, C).
        k: the re-linearisation period K (a positive int, or None / "inf").
        inner: "sgd" (momentum ``momentum``, Nesterov with ``nesterov``), "adam", "gn"
            (one damped Gauss-Newton step ``(JᵀHJ + NλI) δ = −Jᵀg`` per inner step on
            ``gn_batch`` rows, λ = ``damping``, LM adaptation with ``adaptive``) or
            "spectral" (K gradient-descent steps of size ``lr`` in closed form; MSE).
        epochs: passes over the training set (ignored when ``steps`` is given); there is
            one evaluation per epoch unless ``eval_every`` is given.
        out: a directory to write ``metrics.jsonl`` (one evaluation per line),
            ``summary.json``, ``theta.npy`` and ``checkpoint.bin`` into (created; refused
            when not empty unless ``force=True``).
        callback: called with each evaluation's dict during training; returning ``False``
            stops the run after it (termination "Stopped"); an exception it raises stops
            the run and propagates.
        model: the network (an :class:`Mlp` or a :class:`Network`); by default ``Mlp(arch, activation)``
            with ``arch = [d, 256, C]``.
        theta0: the starting θ; by default ``model.init(seed)``.
        loss: "ce" (softmax cross-entropy on labels) or "mse".
        lr, weight_decay, schedule ("constant", "cosine", …), batch, seed: as the
            ``itlin train`` flags of the same names.
        probe: rows for the linearisation error and the kernel distances (0 disables).
        n_train: the first ``n_train`` rows of the training set only.
        dtype: "float32" or "float64".

    The GIL is released while training (the callback takes it back); Ctrl-C stops the run
    at the next evaluation and raises KeyboardInterrupt.
    """
    records, summary, theta = _itlin._train(
        os.fspath(data) if isinstance(data, (str, os.PathLike)) else data,
        k,
        inner,
        float(epochs),
        None if out is None else os.fspath(out),
        callback,
        None if arch is None else [int(w) for w in arch],
        activation,
        loss,
        float(lr),
        float(momentum),
        bool(nesterov),
        float(damping),
        bool(adaptive),
        int(gn_batch),
        int(batch),
        None if steps is None else int(steps),
        float(weight_decay),
        schedule,
        None if eval_every is None else int(eval_every),
        int(probe),
        bool(kernel_distance),
        int(seed),
        None if n_train is None else int(n_train),
        dtype,
        model,
        theta0,
        bool(force),
    )
    return TrainRun(records, summary, theta)
