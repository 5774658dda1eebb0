r"""Activation functions and their derivatives, in NumPy, numerically stable.

Taught in: *Activation functions* (``book/foundations/activations.ipynb``). The autograd
engine of the *Backpropagation* chapter calls these functions for its forward and
backward passes.

Two kinds of derivative are provided:

- elementwise activations :math:`f` have ``f_grad(x)`` returning :math:`f'(x)`
  elementwise, with the shape of ``x``; the chain rule is then ``upstream * f_grad(x)``;
- :func:`softmax` and :func:`log_softmax` mix the entries along ``axis``, so their
  Jacobian is not diagonal. ``softmax_backward(upstream, x)`` returns the
  vector-Jacobian product, the gradient of :math:`\sum \text{upstream} \odot f(x)`
  with respect to ``x`` (upstream first, as every ``f_backward`` in the package; see the
  gradient convention in the ``dlnotes`` docstring).

Every function accepts any real array (lists and scalars too); integer input is
converted to float64, float input keeps its dtype. Inputs as large as
:math:`|x| = 10^3` give finite results without overflow: exponentials are only ever
taken of non-positive numbers. (Tiny values may *underflow* to 0, which is the correct
rounded answer and which NumPy does not warn about by default.)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from dlnotes._checks import check_choice, check_float_array, check_real

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
    "leaky_relu", "leaky_relu_grad", "elu", "elu_grad", "gelu", "gelu_grad",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
]

_GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


# --- input checks ---------------------------------------------------------------------

def _check_axis(x: np.ndarray, axis) -> int:
    if x.ndim == 0:
        raise ValueError(f"`x` must have at least one dimension. Received: x.shape={x.shape}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"`axis` must be an integer in [{-x.ndim}, {x.ndim}) for x.shape={x.shape}. "
                         f"Received: axis={axis!r}")
    return int(axis)


def _check_upstream(upstream, x: np.ndarray) -> np.ndarray:
    upstream = check_float_array("upstream", upstream)
    if upstream.shape != x.shape:
        raise ValueError(f"`upstream` must have the shape of `x` {x.shape}. Received: upstream.shape={upstream.shape}")
    return upstream


# --- sigmoid and tanh -----------------------------------------------------------------

def sigmoid(x):
    r"""Logistic sigmoid :math:`\sigma(x) = \frac{1}{1 + e^{-x}}`, computed without overflow.

    With :math:`z = e^{-|x|} \in (0, 1]`, :math:`\sigma(x) = \frac{1}{1+z}` for
    :math:`x \ge 0` and :math:`\frac{z}{1+z}` for :math:`x < 0`, so ``exp`` never sees a
    large positive number.

    Args:
        x: array of any shape.

    Returns:
        Array of the shape of ``x``, values in :math:`[0, 1]`. Matches ``torch.sigmoid``
        and ``keras.ops.sigmoid``.
    """
    x = check_float_array("x", x)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_grad(x):
    r"""Derivative :math:`\sigma'(x) = \sigma(x)\,(1 - \sigma(x)) = \sigma(x)\,\sigma(-x)`.

    The second form avoids the cancellation in :math:`1 - \sigma(x)` for large :math:`x`.
    Shape of ``x``; at most :math:`1/4`, reached at :math:`x = 0`.
    """
    x = check_float_array("x", x)
    return sigmoid(x) * sigmoid(-x)


def tanh(x):
    r"""Hyperbolic tangent :math:`\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}} = 2\sigma(2x) - 1`.

    Shape of ``x``, values in :math:`[-1, 1]`. Matches ``torch.tanh`` and ``keras.ops.tanh``.
    """
    x = check_float_array("x", x)
    return np.tanh(x)


def tanh_grad(x):
    r"""Derivative :math:`\tanh'(x) = 1 - \tanh^2(x)`; shape of ``x``, at most 1 (at :math:`x = 0`)."""
    x = check_float_array("x", x)
    return 1 - np.tanh(x) ** 2


# --- the ReLU family ------------------------------------------------------------------

def relu(x):
    r"""Rectified linear unit :math:`\operatorname{relu}(x) = \max(x, 0)`.

    Shape of ``x``. Matches ``torch.nn.functional.relu`` and ``keras.ops.relu``.
    """
    x = check_float_array("x", x)
    return np.maximum(x, 0)


def relu_grad(x):
    r"""Derivative :math:`\operatorname{relu}'(x) = [x > 0]`: 1 for :math:`x > 0`, else 0.

    At :math:`x = 0`, where relu has no derivative, we return 0, as PyTorch does.
    """
    x = check_float_array("x", x)
    return (x > 0).astype(x.dtype)


def leaky_relu(x, negative_slope=0.01):
    r"""Leaky ReLU :math:`x` for :math:`x > 0`, :math:`a x` otherwise, with :math:`a` = ``negative_slope``.

    Args:
        x: array of any shape.
        negative_slope: the slope :math:`a` for negative inputs; default 0.01 as in
            ``torch.nn.functional.leaky_relu`` and ``torch.nn.LeakyReLU``.
            Keras differs, and its two forms differ from each other: ``keras.ops.leaky_relu``
            defaults to 0.2, the layer ``keras.layers.LeakyReLU`` to 0.3.

    Returns:
        Array of the shape of ``x``.
    """
    x = check_float_array("x", x)
    negative_slope = check_real("negative_slope", negative_slope)
    return np.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(x, negative_slope=0.01):
    r"""Derivative: 1 for :math:`x > 0`, ``negative_slope`` otherwise (including :math:`x = 0`, as in PyTorch)."""
    x = check_float_array("x", x)
    negative_slope = check_real("negative_slope", negative_slope)
    return np.where(x > 0, 1, negative_slope).astype(x.dtype)


def elu(x, alpha=1.0):
    r"""Exponential linear unit :math:`x` for :math:`x > 0`, :math:`\alpha(e^{x} - 1)` otherwise.

    ``np.expm1`` computes :math:`e^x - 1` accurately near 0, and it only sees
    :math:`\min(x, 0)`, so large positive inputs cannot overflow.

    Args:
        x: array of any shape.
        alpha: the negative saturation value is :math:`-\alpha`; default 1.0 as in
            ``torch.nn.functional.elu`` and ``keras.ops.elu``.

    Returns:
        Array of the shape of ``x``.
    """
    x = check_float_array("x", x)
    alpha = check_real("alpha", alpha)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_grad(x, alpha=1.0):
    r"""Derivative: 1 for :math:`x > 0`, :math:`\alpha e^{x}` otherwise (:math:`\alpha` at 0, as in PyTorch)."""
    x = check_float_array("x", x)
    alpha = check_real("alpha", alpha)
    return np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))).astype(x.dtype)


def gelu(x, approximate="none"):
    r"""Gaussian error linear unit :math:`x\,\Phi(x)`, :math:`\Phi` the standard normal CDF.

    .. math::

        \text{exact: } \tfrac{x}{2}\Big(1 + \operatorname{erf}\big(\tfrac{x}{\sqrt 2}\big)\Big),
        \qquad
        \text{tanh: } \tfrac{x}{2}\Big(1 + \tanh\big(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\big)\Big).

    Args:
        x: array of any shape.
        approximate: ``"none"`` (default, exact) or ``"tanh"``, as in
            ``torch.nn.functional.gelu``. ``keras.ops.gelu`` defaults to the tanh form
            (``approximate=True``).

    Returns:
        Array of the shape of ``x``.
    """
    x = check_float_array("x", x)
    if check_choice("approximate", approximate, _GELU_APPROXIMATIONS) == "tanh":
        return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)))
    return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))


def gelu_grad(x, approximate="none"):
    r"""Derivative of :func:`gelu`, elementwise, shape of ``x``.

    .. math::

        \text{exact: } \Phi(x) + x\,\varphi(x), \quad \varphi(x) = \tfrac{1}{\sqrt{2\pi}} e^{-x^2/2};
        \qquad
        \text{tanh: } \tfrac12(1 + t) + \tfrac{x}{2}(1 - t^2)\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2),

    where :math:`t = \tanh\big(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\big)`.

    Unlike the derivatives of the ReLU family, this one changes sign: it is zero at
    :math:`x \approx -0.7518` (where GELU has its minimum, :math:`\approx -0.1700`), negative
    below (least, :math:`\approx -0.1289`, at :math:`x = -\sqrt 2` for the exact form) and
    tends to 0 as :math:`x \to -\infty`.
    """
    x = check_float_array("x", x)
    if check_choice("approximate", approximate, _GELU_APPROXIMATIONS) == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x**2)
    cdf = 0.5 * (1 + special.erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


# --- softmax and log-softmax ----------------------------------------------------------

def softmax(x, axis=-1):
    r"""Softmax along ``axis``: :math:`\operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}`.

    Subtracting :math:`m = \max_j x_j` does not change the result (it cancels between
    numerator and denominator) but keeps every exponent :math:`\le 0`: no overflow.

    Args:
        x: array with at least one dimension.
        axis: the axis that sums to 1; default -1.

    Returns:
        Array of the shape of ``x``, non-negative, summing to 1 along ``axis``. Matches
        ``torch.nn.functional.softmax(x, dim=axis)`` and ``keras.ops.softmax``.
    """
    x = check_float_array("x", x)
    axis = _check_axis(x, axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _upstream_and_softmax(upstream, x, axis) -> tuple[np.ndarray, np.ndarray]:
    r"""The checked upstream gradient and :math:`s = \operatorname{softmax}(x)`: what both VJPs need."""
    x = check_float_array("x", x)
    upstream = _check_upstream(upstream, x)
    return upstream, softmax(x, axis=_check_axis(x, axis))


def softmax_backward(upstream, x, axis=-1):
    r"""Vector-Jacobian product of :func:`softmax`: the gradient of :math:`\sum_i g_i s_i` with respect to ``x``.

    With :math:`s = \operatorname{softmax}(x)` and upstream gradient :math:`g = \partial L/\partial s`,
    the Jacobian :math:`\partial s_i / \partial x_j = s_i(\delta_{ij} - s_j)` gives

    .. math::

        \frac{\partial L}{\partial x_j} = \sum_i g_i \frac{\partial s_i}{\partial x_j}
        = s_j \Big(g_j - \sum_i g_i s_i\Big),

    so the full Jacobian (size :math:`n^2` per row) is never formed.

    Args:
        upstream: :math:`g`, the gradient of the loss with respect to the softmax output;
            the shape of ``x``.
        x: the softmax input, an array with at least one dimension.
        axis: the softmax axis; default -1.

    Returns:
        :math:`\partial L / \partial x`, an array of the shape of ``x``. Matches
        ``torch.autograd.grad(F.softmax(x, dim=axis), x, upstream)``.
    """
    upstream, s = _upstream_and_softmax(upstream, x, axis)
    return s * (upstream - np.sum(upstream * s, axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    r"""Log of the softmax along ``axis``, by the log-sum-exp trick.

    .. math::

        \log \operatorname{softmax}(x)_i = x_i - m - \log \sum_j e^{x_j - m}, \qquad m = \max_j x_j .

    Computing ``np.log(softmax(x))`` instead would give ``-inf`` wherever a probability
    underflows to 0; this form stays finite.

    Args:
        x: array with at least one dimension.
        axis: default -1.

    Returns:
        Array of the shape of ``x``, values :math:`\le 0`. Matches
        ``torch.nn.functional.log_softmax(x, dim=axis)`` and ``keras.ops.log_softmax``.
    """
    x = check_float_array("x", x)
    axis = _check_axis(x, axis)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def log_softmax_backward(upstream, x, axis=-1):
    r"""Vector-Jacobian product of :func:`log_softmax`: the gradient of :math:`\sum_i g_i \log s_i`.

    Since :math:`\partial \log s_i / \partial x_j = \delta_{ij} - s_j`,

    .. math::

        \frac{\partial L}{\partial x_j} = \sum_i g_i (\delta_{ij} - s_j) = g_j - s_j \sum_i g_i .

    Args:
        upstream: :math:`g = \partial L / \partial \log s`, shaped like ``x``.
        x: the input of :func:`log_softmax` (at least 1-D); ``axis`` as there (default -1).

    Returns:
        :math:`\partial L / \partial x`, shaped like ``x``; what torch autograd gives
        for ``F.log_softmax(x, dim=axis)`` with ``upstream`` as the output gradient.
    """
    upstream, s = _upstream_and_softmax(upstream, x, axis)
    return upstream - s * np.sum(upstream, axis=axis, keepdims=True)
