r"""Loss functions and their gradients with respect to the prediction, in NumPy.

Taught in: *Loss functions* (``book/foundations/losses.ipynb``). The autograd engine of
the *Backpropagation* chapter calls these functions for its forward and backward passes.

Every loss is first computed per element (per example for :func:`cross_entropy`), then
*reduced* as in PyTorch:

- ``reduction="mean"`` (default): the average, a scalar;
- ``reduction="sum"``: the sum, a scalar;
- ``reduction="none"``: the per-element losses, unreduced.

Each ``<loss>_grad`` takes the same arguments as its loss and returns the gradient of the
loss with respect to the *first* argument, with that argument's shape. For
``reduction="none"`` it returns, for every element, the derivative of that element's
loss with respect to its own input (the Jacobian is diagonal, or block-diagonal for
:func:`cross_entropy`), so the chain rule is ``upstream * grad`` (``upstream[:, None] * grad``
for :func:`cross_entropy`).
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_choice, check_float_array, check_ndarray, check_real
from dlnotes.scratch import activations

__all__ = [
    "mse", "mse_grad", "mae", "mae_grad", "huber", "huber_grad",
    "binary_cross_entropy", "binary_cross_entropy_grad",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_grad",
    "cross_entropy", "cross_entropy_grad",
]

REDUCTIONS = ("mean", "sum", "none")
LOG_CLAMP = -100.0     # PyTorch clamps log(p) and log(1 - p) at -100 in binary_cross_entropy
BCE_GRAD_EPS = 1e-12   # ... and the denominator p (1 - p) of its gradient at 1e-12


# --- input checks and reductions --------------------------------------------------------

def _check_array(name: str, value) -> np.ndarray:
    array = check_float_array(name, value)
    if array.size == 0:
        raise ValueError(f"`{name}` must not be empty. Received: {name}.shape={array.shape}")
    return array


def _check_pair(pred_name: str, pred, true_name: str, true) -> tuple[np.ndarray, np.ndarray]:
    pred, true = _check_array(pred_name, pred), _check_array(true_name, true)
    if true.shape != pred.shape:
        raise ValueError(f"`{true_name}` must have the shape of `{pred_name}` {pred.shape}. "
                         f"Received: {true_name}.shape={true.shape}")
    return pred, true


def _check_unit_interval(name: str, value: np.ndarray) -> np.ndarray:
    if not np.all((value >= 0) & (value <= 1)):  # also rejects nan
        raise ValueError(f"`{name}` must lie in [0, 1]. Received: {name} with values in "
                         f"[{np.nanmin(value)}, {np.nanmax(value)}] (nan: {bool(np.isnan(value).any())})")
    return value


def _check_reduction(reduction) -> str:
    return check_choice("reduction", reduction, REDUCTIONS)


def _reduce(loss: np.ndarray, reduction: str):
    if reduction == "mean":
        return np.mean(loss)
    if reduction == "sum":
        return np.sum(loss)
    return loss


def _scale(grad: np.ndarray, reduction: str, count: int) -> np.ndarray:
    """The gradient of the reduced loss: the mean divides every term by ``count``."""
    return grad / count if reduction == "mean" else grad


# --- regression losses ---------------------------------------------------------------

def mse(y_pred, y_true, reduction="mean"):
    r"""Mean squared error :math:`\frac1N \sum_i (\hat y_i - y_i)^2`.

    Args:
        y_pred: predictions :math:`\hat y`, any shape.
        y_true: targets :math:`y`, the shape of ``y_pred``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the array of squared errors for ``"none"``. Matches
        ``torch.nn.functional.mse_loss`` and ``keras.losses.MeanSquaredError``.
    """
    y_pred, y_true = _check_pair("y_pred", y_pred, "y_true", y_true)
    return _reduce((y_pred - y_true) ** 2, _check_reduction(reduction))


def mse_grad(y_pred, y_true, reduction="mean"):
    r"""Gradient of :func:`mse` with respect to ``y_pred``: :math:`\frac{2}{N}(\hat y - y)` for the mean."""
    y_pred, y_true = _check_pair("y_pred", y_pred, "y_true", y_true)
    return _scale(2 * (y_pred - y_true), _check_reduction(reduction), y_pred.size)


def mae(y_pred, y_true, reduction="mean"):
    r"""Mean absolute error :math:`\frac1N \sum_i |\hat y_i - y_i|`.

    Same arguments as :func:`mse`. Matches ``torch.nn.functional.l1_loss`` and
    ``keras.losses.MeanAbsoluteError``.
    """
    y_pred, y_true = _check_pair("y_pred", y_pred, "y_true", y_true)
    return _reduce(np.abs(y_pred - y_true), _check_reduction(reduction))


def mae_grad(y_pred, y_true, reduction="mean"):
    r"""Gradient of :func:`mae`: :math:`\frac1N \operatorname{sign}(\hat y - y)`, taking 0 where :math:`\hat y = y` (as PyTorch)."""
    y_pred, y_true = _check_pair("y_pred", y_pred, "y_true", y_true)
    return _scale(np.sign(y_pred - y_true), _check_reduction(reduction), y_pred.size)


def _check_delta(delta) -> float:
    return check_real("delta", delta, low=0.0, low_open=True)


def huber(y_pred, y_true, delta=1.0, reduction="mean"):
    r"""Huber loss: quadratic for small errors, linear for large ones.

    With :math:`d = \hat y - y`,

    .. math::

        \ell_\delta(d) = \begin{cases} \tfrac12 d^2 & |d| \le \delta, \\
        \delta\,(|d| - \tfrac12 \delta) & |d| > \delta. \end{cases}

    Args:
        y_pred, y_true: as in :func:`mse`.
        delta: where the quadratic part meets the linear part; positive and finite, default 1.0.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the per-element losses for ``"none"``. Matches
        ``torch.nn.functional.huber_loss`` and ``keras.losses.Huber``.
    """
    y_pred, y_true = _check_pair("y_pred", y_pred, "y_true", y_true)
    delta = _check_delta(delta)
    abs_d = np.abs(y_pred - y_true)
    loss = np.where(abs_d <= delta, 0.5 * abs_d**2, delta * (abs_d - 0.5 * delta))
    return _reduce(loss, _check_reduction(reduction))


def huber_grad(y_pred, y_true, delta=1.0, reduction="mean"):
    r"""Gradient of :func:`huber`: :math:`\frac1N \operatorname{clip}(\hat y - y, -\delta, \delta)` for the mean.

    The error passes through unchanged while it is small and is capped at :math:`\pm\delta`:
    an outlier pulls no harder than any other large error.
    """
    y_pred, y_true = _check_pair("y_pred", y_pred, "y_true", y_true)
    delta = _check_delta(delta)
    return _scale(np.clip(y_pred - y_true, -delta, delta), _check_reduction(reduction), y_pred.size)


# --- binary classification ------------------------------------------------------------

def binary_cross_entropy(p, y, reduction="mean"):
    r"""Binary cross-entropy on probabilities, :math:`-\big(y \log p + (1-y)\log(1-p)\big)`.

    Each log is clamped at :math:`-100`, as PyTorch does, so :math:`p \in \{0, 1\}`
    gives a large finite loss instead of ``inf``.

    Args:
        p: predicted probabilities in :math:`[0, 1]`, any shape.
        y: targets in :math:`[0, 1]` (usually 0 or 1), the shape of ``p``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the per-element losses for ``"none"``. Matches
        ``torch.nn.functional.binary_cross_entropy``; ``keras.losses.BinaryCrossentropy``
        agrees where no :math:`p` is within :math:`10^{-7}` of 0 or 1 (Keras clips there).
    """
    p, y = _check_pair("p", p, "y", y)
    p, y = _check_unit_interval("p", p), _check_unit_interval("y", y)
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped on the next line
        log_p = np.maximum(np.log(p), LOG_CLAMP)
        log_1mp = np.maximum(np.log(1 - p), LOG_CLAMP)
    return _reduce(-(y * log_p + (1 - y) * log_1mp), _check_reduction(reduction))


def binary_cross_entropy_grad(p, y, reduction="mean"):
    r"""Gradient of :func:`binary_cross_entropy` with respect to ``p``.

    .. math::

        \frac{\partial \ell}{\partial p} = -\frac{y}{p} + \frac{1-y}{1-p} = \frac{p - y}{p\,(1 - p)},

    with the denominator clamped at :math:`10^{-12}` as in PyTorch; divided by :math:`N`
    for the mean.
    """
    p, y = _check_pair("p", p, "y", y)
    p, y = _check_unit_interval("p", p), _check_unit_interval("y", y)
    grad = (p - y) / np.maximum(p * (1 - p), BCE_GRAD_EPS)
    return _scale(grad, _check_reduction(reduction), p.size)


def binary_cross_entropy_with_logits(logits, y, reduction="mean"):
    r"""Binary cross-entropy of :math:`p = \sigma(z)` computed from the logits :math:`z`.

    Substituting :math:`\log\sigma(z) = -\log(1 + e^{-z})` and simplifying gives a form
    with no overflow and no :math:`\log 0`:

    .. math::

        \ell(z, y) = \max(z, 0) - z\,y + \log\big(1 + e^{-|z|}\big).

    Args:
        logits: real scores :math:`z`, any shape.
        y: targets in :math:`[0, 1]`, the shape of ``logits``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the per-element losses for ``"none"``. Matches
        ``torch.nn.functional.binary_cross_entropy_with_logits`` and
        ``keras.losses.BinaryCrossentropy(from_logits=True)``.
    """
    logits, y = _check_pair("logits", logits, "y", y)
    y = _check_unit_interval("y", y)
    loss = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    return _reduce(loss, _check_reduction(reduction))


def binary_cross_entropy_with_logits_grad(logits, y, reduction="mean"):
    r"""Gradient of :func:`binary_cross_entropy_with_logits`: :math:`\sigma(z) - y`, divided by :math:`N` for the mean."""
    logits, y = _check_pair("logits", logits, "y", y)
    y = _check_unit_interval("y", y)
    return _scale(activations.sigmoid(logits) - y, _check_reduction(reduction), logits.size)


# --- multi-class classification -------------------------------------------------------

def _check_classification(logits, target) -> tuple[np.ndarray, np.ndarray]:
    logits = check_ndarray("logits", _check_array("logits", logits), ndim=2)
    target = np.asarray(target)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"`target` must hold integer class indices. Received: target with dtype {target.dtype}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"`target` must have shape ({logits.shape[0]},), one class per row of `logits`. "
                         f"Received: target.shape={target.shape}")
    n_classes = logits.shape[1]
    if target.min() < 0 or target.max() >= n_classes:
        raise ValueError(f"`target` must lie in [0, {n_classes}). "
                         f"Received: target with values in [{target.min()}, {target.max()}]")
    return logits, target


def cross_entropy(logits, target, reduction="mean"):
    r"""Softmax cross-entropy from logits: :math:`\ell_i = -\log \operatorname{softmax}(z_i)_{t_i}`.

    Computed with :func:`dlnotes.scratch.activations.log_softmax` (the log-sum-exp trick), so

    .. math::

        \ell_i = \log \sum_c e^{z_{ic}} - z_{i t_i}

    stays finite for logits of any size.

    Args:
        logits: scores of shape ``(n, C)``.
        target: integer class indices of shape ``(n,)``, values in ``[0, C)``.
        reduction: ``"mean"`` (default, over the ``n`` examples), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the ``(n,)`` per-example losses for ``"none"``. Matches
        ``torch.nn.functional.cross_entropy`` and
        ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``.
    """
    logits, target = _check_classification(logits, target)
    log_probs = activations.log_softmax(logits, axis=1)
    loss = -log_probs[np.arange(len(target)), target]
    return _reduce(loss, _check_reduction(reduction))


def cross_entropy_grad(logits, target, reduction="mean"):
    r"""Gradient of :func:`cross_entropy` with respect to the logits, shape ``(n, C)``.

    .. math::

        \frac{\partial \ell_i}{\partial z_{ic}} = \operatorname{softmax}(z_i)_c - [c = t_i],

    predicted probabilities minus the one-hot target, divided by :math:`n` for the mean.
    """
    logits, target = _check_classification(logits, target)
    grad = activations.softmax(logits, axis=1)
    grad[np.arange(len(target)), target] -= 1
    return _scale(grad, _check_reduction(reduction), len(target))
