"""Type stubs of the extension module ``itlin._itlin`` (re-exported by ``itlin``)."""

from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

FloatArray = npt.NDArray[np.floating[Any]]
ArrayLike = Any  # NumPy arrays, objects with __dlpack__ (JAX / PyTorch CPU), nested lists
Scheme = Union[Literal["standard"], Tuple[Literal["ntk"], float, float]]
DType = Union[Literal["float32", "float64"], type, np.dtype[Any]]

class Model:
    """A differentiable model f(x; θ) ∈ R^C with a flat parameter vector θ ∈ R^P.

    Rows are sample-major: output c of sample n is row n·C + c of J = ∂vec(f)/∂θ.
    """

    @property
    def n_params(self) -> int:
        """Number of parameters P (the length of θ)."""
    @property
    def n_inputs(self) -> int:
        """Input width d (columns of x)."""
    @property
    def n_outputs(self) -> int:
        """Number of outputs C per sample."""
    def init(self, seed: int = 0, dtype: Optional[DType] = None, scheme: Optional[Scheme] = None) -> FloatArray:
        """θ of shape (P,) drawn from the ChaCha8 stream of `seed` (as the Rust Mlp::init)."""
    def forward(self, theta: ArrayLike, x: ArrayLike) -> FloatArray:
        """f(X; θ), shape (N, C)."""
    def jvp(self, theta: ArrayLike, x: ArrayLike, v: ArrayLike) -> Tuple[FloatArray, FloatArray]:
        """(f(X; θ), J v), both (N, C), as jax.jvp."""
    def vjp(self, theta: ArrayLike, x: ArrayLike, u: ArrayLike) -> FloatArray:
        """Jᵀ vec(u) for a cotangent u of shape (N, C); shape (P,)."""
    def jacobian(self, theta: ArrayLike, x: ArrayLike) -> FloatArray:
        """J = ∂vec(f)/∂θ, shape (N·C, P), row n·C + c."""

class Mlp(Model):
    """A fully connected network widths = [d, h₁, …, C], activation on every hidden layer,
    linear read-out; θ = concat over layers of W_l (row-major fan_out × fan_in) then b_l."""

    def __init__(
        self,
        widths: List[int],
        activation: Literal["identity", "relu", "tanh", "gelu", "softplus"] = "tanh",
        parameterization: Optional[Scheme] = None,
    ) -> None: ...
    @property
    def widths(self) -> List[int]:
        """The widths [d, h₁, …, C]."""
    @property
    def activation(self) -> str:
        """The hidden activation's name."""
    @property
    def parameterization(self) -> Scheme:
        """'standard' or ('ntk', σ_w, σ_b)."""

class Network(Model):
    """A network of layers from a spec string ("conv(8,3,pad=1),relu,avgpool(2),dense(10)")
    on inputs of shape (C, H, W); x is (N, C, H, W) or (N, C·H·W)."""

    def __init__(
        self,
        spec: str,
        input_shape: Union[int, Tuple[int], Tuple[int, int, int], None] = None,
        parameterization: Optional[Scheme] = None,
    ) -> None: ...
    @property
    def spec(self) -> str:
        """The canonical spec string."""
    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """The per-sample input shape (C, H, W)."""
    @property
    def output_shape(self) -> Tuple[int, int, int]:
        """The shape (C, H, W) of the last layer's output."""

class LeastSquaresReport:
    """The outcome of least_squares."""

    x: FloatArray
    cost: float
    initial_cost: float
    termination: str
    converged: bool
    iterations: int
    accepted_steps: int
    evaluations: int
    jacobian_evaluations: int
    lambda_history: List[float]
    @property
    def residual_norm(self) -> float:
        """‖r(x)‖ = √(2 cost)."""

def ntk(
    net: Model,
    theta: ArrayLike,
    x: ArrayLike,
    method: Literal["explicit", "structured", "auto"] = "auto",
) -> FloatArray:
    """The empirical NTK Θ = J Jᵀ, full symmetric (N·C, N·C)."""

def ntk_vector_product(net: Model, theta: ArrayLike, x: ArrayLike, v: ArrayLike) -> FloatArray:
    """Θ v = J (Jᵀ v) for v of shape (N·C,), without forming Θ or J."""

def kernel_distance(k1: ArrayLike, k2: ArrayLike) -> float:
    """1 − ⟨Θ₁, Θ₂⟩_F / (‖Θ₁‖_F ‖Θ₂‖_F)."""

@overload
def gauss_newton_step(
    net: Model,
    theta: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    loss: Literal["mse", "ce"] = "mse",
    damping: float = 1e-3,
    form: Literal["auto", "primal", "dual", "cg", "spectral"] = "auto",
    report: Literal[False] = False,
) -> FloatArray: ...
@overload
def gauss_newton_step(
    net: Model,
    theta: ArrayLike,
    x: ArrayLike,
    y: ArrayLike,
    loss: Literal["mse", "ce"] = "mse",
    damping: float = 1e-3,
    form: Literal["auto", "primal", "dual", "cg", "spectral"] = "auto",
    *,
    report: Literal[True],
) -> Tuple[FloatArray, Dict[str, Any]]: ...
def gradient_descent_closed_form(
    net: Model, theta: ArrayLike, x: ArrayLike, y: ArrayLike, lr: float, k: int
) -> FloatArray:
    """δ_K of k full-batch GD steps of size lr on the linearised mean MSE, in closed form."""

def least_squares(
    residuals: Callable[[FloatArray], ArrayLike],
    theta0: ArrayLike,
    jacobian: Optional[Callable[[FloatArray], ArrayLike]] = None,
    *,
    ftol: Optional[float] = None,
    xtol: Optional[float] = None,
    gtol: Optional[float] = None,
    max_evaluations: Optional[int] = None,
    initial_lambda: Optional[float] = None,
) -> LeastSquaresReport:
    """Minimises ½‖r(θ)‖² by Levenberg-Marquardt (the defaults of LevenbergMarquardt::new())."""

def _train(*args: Any) -> Tuple[List[Dict[str, Any]], Dict[str, Any], FloatArray]: ...
def _reads_in_place(a: ArrayLike) -> bool: ...
