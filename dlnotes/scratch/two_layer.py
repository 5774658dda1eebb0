r"""A two-layer network written by hand in NumPy: forward pass, loss and gradients.

Taught in: *Why deep-learning frameworks* (``book/foundations/why_frameworks.ipynb``),
where the same computation is then done by PyTorch autograd and by Keras.

The network maps inputs :math:`X \in \mathbb{R}^{n \times d}` to outputs
:math:`\hat Y \in \mathbb{R}^{n \times k}` through one tanh hidden layer of width :math:`h`:

.. math::

    H = X W_1 + b_1, \quad A = \tanh(H), \quad \hat Y = A W_2 + b_2, \quad
    L = \frac{1}{nk} \sum_{i,j} (\hat Y_{ij} - Y_{ij})^2 .

Weights are stored as ``(fan_in, fan_out)`` like Keras ``Dense`` kernels; a
``torch.nn.Linear`` stores the transpose. The loss and its gradient
:math:`\partial L / \partial \hat Y` are :func:`dlnotes.scratch.losses.mse` and
:func:`dlnotes.scratch.losses.mse_grad`; this module adds the hidden layer's chain rule.
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_ndarray, check_positive_int
from dlnotes.scratch import losses

__all__ = ["init_params", "forward", "mse_loss", "backward"]

PARAM_NAMES = ("W1", "b1", "W2", "b2")


def _check_matrix(name: str, value, columns: int | None = None) -> np.ndarray:
    value = check_ndarray(name, value, ndim=2)
    if columns is not None and value.shape[1] != columns:
        raise ValueError(f"`{name}` must have {columns} columns. Received: {name}.shape={value.shape}")
    return value


def _check_params(params) -> dict:
    if not isinstance(params, dict) or set(params) != set(PARAM_NAMES):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"`params` must be a dict with keys {PARAM_NAMES}. Received: params keys={got}")
    return params


def init_params(n_in: int, n_hidden: int, n_out: int, seed: int = 0, dtype=np.float64) -> dict:
    """Glorot-uniform weights and zero biases, like Keras ``Dense`` defaults.

    Returns:
        ``{"W1": (n_in, n_hidden), "b1": (n_hidden,), "W2": (n_hidden, n_out), "b2": (n_out,)}``.

    Raises:
        ValueError: a size is not a positive integer.
    """
    n_in, n_hidden, n_out = (check_positive_int(k, v) for k, v in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    rng = np.random.default_rng(seed)

    def glorot(fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)

    return {"W1": glorot(n_in, n_hidden), "b1": np.zeros(n_hidden, dtype),
            "W2": glorot(n_hidden, n_out), "b2": np.zeros(n_out, dtype)}


def forward(params: dict, X: np.ndarray) -> tuple[np.ndarray, dict]:
    """Forward pass. Returns ``(Y_hat, cache)``; ``cache`` holds what backward needs.

    Args:
        params: as returned by :func:`init_params`.
        X: inputs of shape ``(n, n_in)``.

    Returns:
        ``Y_hat`` of shape ``(n, n_out)`` and ``cache = {"X", "A"}``.
    """
    params = _check_params(params)
    X = _check_matrix("X", X, params["W1"].shape[0])
    H = X @ params["W1"] + params["b1"]
    A = np.tanh(H)
    Y_hat = A @ params["W2"] + params["b2"]
    return Y_hat, {"X": X, "A": A}


def _check_targets(Y_hat, Y) -> tuple[np.ndarray, np.ndarray]:
    Y_hat = _check_matrix("Y_hat", Y_hat)
    Y = _check_matrix("Y", Y)
    if Y.shape != Y_hat.shape:
        raise ValueError(f"`Y` must have the shape of `Y_hat` {Y_hat.shape}. Received: Y.shape={Y.shape}")
    return Y_hat, Y


def mse_loss(Y_hat: np.ndarray, Y: np.ndarray) -> float:
    r"""Mean squared error :math:`\frac{1}{nk}\sum (\hat Y - Y)^2`: :func:`dlnotes.scratch.losses.mse` as a float.

    Args:
        Y_hat: predictions of shape ``(n, k)``.
        Y: targets of the same shape.

    Returns:
        The loss, like ``torch.nn.functional.mse_loss``.
    """
    Y_hat, Y = _check_targets(Y_hat, Y)
    return float(losses.mse(Y_hat, Y))


def backward(params: dict, cache: dict, Y_hat: np.ndarray, Y: np.ndarray) -> dict:
    r"""Gradients of :func:`mse_loss` with respect to every parameter, by the chain rule.

    .. math::

        \frac{\partial L}{\partial \hat Y} = \frac{2}{nk}(\hat Y - Y), \quad
        \frac{\partial L}{\partial W_2} = A^\top \frac{\partial L}{\partial \hat Y}, \quad
        \frac{\partial L}{\partial b_2} = \textstyle\sum_i \frac{\partial L}{\partial \hat Y_{i}},

        \frac{\partial L}{\partial H} = \frac{\partial L}{\partial \hat Y} W_2^\top \odot (1 - A^2), \quad
        \frac{\partial L}{\partial W_1} = X^\top \frac{\partial L}{\partial H}, \quad
        \frac{\partial L}{\partial b_1} = \textstyle\sum_i \frac{\partial L}{\partial H_{i}} .

    Returns:
        ``{"W1", "b1", "W2", "b2"}``, each with its parameter's shape.
    """
    params = _check_params(params)
    Y_hat, Y = _check_targets(Y_hat, Y)
    dY_hat = losses.mse_grad(Y_hat, Y)  # 2 (Y_hat - Y) / (n k)
    dW2 = cache["A"].T @ dY_hat
    db2 = dY_hat.sum(axis=0)
    dH = (dY_hat @ params["W2"].T) * (1.0 - cache["A"] ** 2)
    dW1 = cache["X"].T @ dH
    db1 = dH.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
