r"""Gradient descent and its test problems: quadratics, Rosenbrock, linear regression.

Taught in: *Gradient descent* (``book/math/gradient_descent.ipynb``); the test problems
are reused in *Optimization algorithms* (``book/math/optimizers.ipynb``).

Gradient descent minimises a differentiable :math:`J(\theta)` by repeating

.. math::

    \theta_{t+1} = \theta_t - \alpha \nabla J(\theta_t)

with step size (learning rate) :math:`\alpha > 0`, passed as ``lr``. On a quadratic whose
Hessian has largest eigenvalue :math:`L` it converges for every start exactly when
:math:`0 < \alpha < 2/L`.

Every ``*_grad`` here is the gradient of a scalar objective with respect to its first
argument (no upstream gradient), as everywhere in ``dlnotes.scratch``. The linear-regression
objective :func:`mse` is :func:`dlnotes.scratch.losses.mse` of the predictions :math:`Xw`,
and :func:`mse_grad` is the chain rule through :func:`dlnotes.scratch.losses.mse_grad`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dlnotes._checks import check_choice, check_float_array, check_ndarray, check_positive_float, check_positive_int
from dlnotes.scratch import losses

__all__ = [
    "gradient_descent", "quadratic", "quadratic_grad", "lipschitz_constant", "rosenbrock",
    "rosenbrock_grad", "mse", "mse_grad", "linear_regression_closed_form", "minibatch_sgd",
]


def _check_steps(steps) -> int:
    """``steps`` as an ``int`` >= 0 (zero updates return just the start)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"`steps` must be a non-negative integer. Received: steps={steps!r}")
    return int(steps)


def _check_vector(name: str, value, size: int | None = None) -> np.ndarray:
    """``value`` as a float64 vector (of length ``size`` when given)."""
    array = check_float_array(name, value).astype(np.float64, copy=False)
    if array.ndim != 1 or (size is not None and array.shape[0] != size):
        want = f"of length {size}" if size is not None else "1-D"
        raise ValueError(f"`{name}` must be a vector {want}. Received: {name} with shape {array.shape}")
    return array


def _check_design(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = check_ndarray("X", check_float_array("X", X).astype(np.float64, copy=False), ndim=2)
    return X, _check_vector("y", y, X.shape[0])


def _check_square_symmetric(A) -> np.ndarray:
    A = check_float_array("A", A).astype(np.float64, copy=False)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.allclose(A, A.T):
        raise ValueError(f"`A` must be a symmetric square matrix. Received: A with shape {A.shape}")
    return A


# --- the algorithm ---------------------------------------------------------------------------------

def gradient_descent(grad_fn: Callable[[np.ndarray], np.ndarray], theta0, lr: float, steps: int) -> np.ndarray:
    r"""Run :math:`\theta_{t+1} = \theta_t - \alpha \nabla J(\theta_t)` and return the whole trajectory.

    Args:
        grad_fn: :math:`\theta \mapsto \nabla J(\theta)`, a vector of the shape of :math:`\theta`.
        theta0: starting point, shape ``(d,)``.
        lr: step size :math:`\alpha > 0`.
        steps: number of updates, >= 0.

    Returns:
        ``(steps + 1, d)`` array: row ``t`` is :math:`\theta_t` (row 0 is ``theta0``).
        Same as ``torch.optim.SGD(lr=lr)`` with full-batch gradients.
    """
    if not callable(grad_fn):
        raise TypeError(f"`grad_fn` must be callable. Received: grad_fn of type {type(grad_fn).__name__}")
    theta = _check_vector("theta0", theta0).copy()
    lr = check_positive_float("lr", lr)
    steps = _check_steps(steps)
    path = [theta.copy()]
    for _ in range(steps):
        theta = theta - lr * np.asarray(grad_fn(theta), dtype=float)
        path.append(theta)
    return np.array(path)


# --- a quadratic bowl ------------------------------------------------------------------------------

def quadratic(theta, A, b) -> float:
    r""":math:`J(\theta) = \tfrac12 \theta^\top A \theta - b^\top \theta` for symmetric ``A`` ``(d, d)``, ``b`` ``(d,)``.

    When ``A`` is positive definite the minimiser is :math:`\theta^* = A^{-1} b`.
    """
    A = _check_square_symmetric(A)
    theta, b = _check_vector("theta", theta, A.shape[0]), _check_vector("b", b, A.shape[0])
    return float(0.5 * theta @ A @ theta - b @ theta)


def quadratic_grad(theta, A, b) -> np.ndarray:
    r""":math:`\nabla J(\theta) = A\theta - b`, shape ``(d,)``; the Hessian is ``A`` everywhere."""
    A = _check_square_symmetric(A)
    theta, b = _check_vector("theta", theta, A.shape[0]), _check_vector("b", b, A.shape[0])
    return A @ theta - b


def lipschitz_constant(A) -> float:
    r"""Largest eigenvalue :math:`L = \lambda_{\max}(A)` of a symmetric Hessian ``A`` ``(d, d)``.

    :math:`L` bounds how fast the gradient can change, :math:`\|\nabla J(x) - \nabla J(y)\| \le L\|x - y\|`;
    gradient descent on the quadratic converges iff :math:`0 < \alpha < 2/L` (for positive definite ``A``).
    For the mean squared error of linear regression pass the Hessian :math:`\tfrac{2}{n} X^\top X`.
    """
    A = _check_square_symmetric(A)
    return float(np.linalg.eigvalsh(A)[-1])


# --- Rosenbrock's banana valley --------------------------------------------------------------------

def rosenbrock(theta, a: float = 1.0, b: float = 100.0) -> float:
    r"""Rosenbrock function :math:`f(x, y) = (a - x)^2 + b (y - x^2)^2`, minimum 0 at :math:`(a, a^2)`.

    Args:
        theta: ``(2,)`` point :math:`(x, y)`.
        a, b: shape constants. Defaults 1 and 100.
    """
    x, y = _check_vector("theta", theta, 2)
    return float((a - x) ** 2 + b * (y - x**2) ** 2)


def rosenbrock_grad(theta, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    r"""Gradient of :func:`rosenbrock`, shape ``(2,)``.

    .. math::

        \partial_x f = -2(a - x) - 4 b x (y - x^2), \qquad \partial_y f = 2 b (y - x^2)
    """
    x, y = _check_vector("theta", theta, 2)
    return np.array([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)])


# --- linear regression -----------------------------------------------------------------------------

def mse(w, X, y) -> float:
    r"""The linear-regression objective :math:`J(w) = \frac1n \|Xw - y\|^2`, a function of the weights.

    This is :func:`dlnotes.scratch.losses.mse` of the predictions :math:`\hat y = Xw`,
    written as a function of ``w`` so that gradient descent can minimise it.

    Args:
        w: weights ``(d,)``; append a column of ones to ``X`` for an intercept.
        X: design matrix ``(n, d)``.
        y: targets ``(n,)``.

    Returns:
        The mean squared error, a Python ``float``.
    """
    X, y = _check_design(X, y)
    w = _check_vector("w", w, X.shape[1])
    return float(losses.mse(X @ w, y))


def mse_grad(w, X, y) -> np.ndarray:
    r"""Gradient of :func:`mse` in the weights, :math:`\nabla J(w) = \frac2n X^\top (Xw - y)`, shape ``(d,)``.

    The chain rule through :math:`\hat y = Xw`: :math:`\nabla_w J = X^\top \, \partial J / \partial \hat y`
    with :math:`\partial J / \partial \hat y` from :func:`dlnotes.scratch.losses.mse_grad`.
    The Hessian is the constant :math:`\frac2n X^\top X`.
    """
    X, y = _check_design(X, y)
    w = _check_vector("w", w, X.shape[1])
    return X.T @ losses.mse_grad(X @ w, y)


def linear_regression_closed_form(X, y, method: str = "lstsq") -> np.ndarray:
    r"""The least-squares weights :math:`w^* = \arg\min_w \|Xw - y\|^2`, shape ``(d,)``.

    Args:
        X: ``(n, d)``; y: ``(n,)``.
        method: ``"lstsq"`` (SVD-based ``np.linalg.lstsq``, the numerically safe choice) or
            ``"normal"``: solve the normal equations :math:`X^\top X w = X^\top y`, which squares
            the condition number. Default ``"lstsq"``.
    """
    X, y = _check_design(X, y)
    if check_choice("method", method, ("lstsq", "normal")) == "lstsq":
        return np.linalg.lstsq(X, y, rcond=None)[0]
    return np.linalg.solve(X.T @ X, X.T @ y)


def minibatch_sgd(X, y, w0, lr: float, epochs: int, batch_size: int, seed: int = 0) -> dict:
    r"""Mini-batch SGD on :func:`mse`: each epoch shuffles the examples and steps once per batch.

    .. math::

        w \leftarrow w - \alpha \frac{2}{|B|} X_B^\top (X_B w - y_B) \quad \text{for each batch } B

    ``batch_size = n`` is (full-)batch gradient descent, ``batch_size = 1`` is stochastic
    gradient descent. The last batch of an epoch may be smaller (like a ``DataLoader`` with
    ``drop_last=False``).

    Args:
        X: ``(n, d)``; y: ``(n,)``; w0: starting weights ``(d,)``.
        lr: :math:`\alpha > 0`. epochs: passes over the data, >= 1.
        batch_size: examples per step, between 1 and n. seed: for the shuffles.

    Returns:
        ``{"w": final weights (d,), "losses": full-data loss before the first and after every
        step (steps + 1,), "examples": examples touched up to each entry of losses (steps + 1,)}``.
    """
    X, y = _check_design(X, y)
    w = _check_vector("w0", w0, X.shape[1]).copy()
    lr = check_positive_float("lr", lr)
    epochs = check_positive_int("epochs", epochs)
    n = len(y)
    batch_size = check_positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"`batch_size` must be at most the number of examples {n}. Received: batch_size={batch_size}")
    rng = np.random.default_rng(seed)
    losses, examples = [mse(w, X, y)], [0]
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            w = w - lr * mse_grad(w, X[batch], y[batch])
            losses.append(mse(w, X, y))
            examples.append(examples[-1] + len(batch))
    return {"w": w, "losses": np.array(losses), "examples": np.array(examples)}
