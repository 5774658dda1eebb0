r"""Checking gradients against central finite differences, in float64.

Taught in: *Backpropagation* (``book/math/backprop.ipynb``). The unit tests of every
hand-written backward pass in the course can lean on it.

For a scalar function :math:`f` and a small step :math:`\varepsilon`, the central difference

.. math::

    \frac{\partial f}{\partial x_k} \approx \frac{f(x + \varepsilon e_k) - f(x - \varepsilon e_k)}{2 \varepsilon}

has error :math:`O(\varepsilon^2)` (truncation) plus about :math:`\epsilon_{\text{mach}} |f| / \varepsilon`
(rounding); in float64 with :math:`\varepsilon = 10^{-6}` both are around :math:`10^{-10}`
relative, which is why the check must run in float64 (in float32 rounding alone is ~1e-2).
It plays the role of ``torch.autograd.gradcheck``, which uses the same formula.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dlnotes._checks import check_ndarray, check_real

__all__ = ["numerical_grad", "gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def _check_eps(eps) -> float:
    return check_real("eps", eps, 0.0, 1.0, low_open=True, high_open=True)


def _check_float64_array(name: str, value) -> np.ndarray:
    """``value`` itself: a float64 ndarray (it is perturbed in place, so no copy or cast)."""
    check_ndarray(name, value)
    if value.dtype != np.float64:
        raise TypeError(f"`{name}` must be float64 (finite differences in lower precision are noise). "
                        f"Received: {name}.dtype={value.dtype}")
    return value


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    r"""Central-difference gradient of a scalar function, one entry at a time.

    .. math:: g_k = \frac{f(x + \varepsilon e_k) - f(x - \varepsilon e_k)}{2\varepsilon}

    Args:
        f: maps an array shaped like ``x`` to a scalar (a float or a one-element array).
        x: float64 array, any shape. It is perturbed in place and restored.
        eps: the step :math:`\varepsilon` (default ``1e-6``).

    Returns:
        float64 array of ``x``'s shape.

    Raises:
        TypeError: ``x`` is not a float64 array.
        TypeError, ValueError: ``eps`` is not a real number in ``(0, 1)``.
        ValueError: ``f`` does not return a scalar.
    """
    x = _check_float64_array("x", x)
    eps = _check_eps(eps)
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: perturbing flat perturbs x
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + eps
        plus = _scalar(f(x))
        flat[k] = original - eps
        minus = _scalar(f(x))
        flat[k] = original
        gflat[k] = (plus - minus) / (2 * eps)
    return grad


def _scalar(value) -> float:
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise ValueError(f"`f` must return a scalar. Received: a value of shape {array.shape}")
    return float(array.reshape(()))


def gradcheck(f: Callable[..., float], inputs: Sequence[np.ndarray], analytic_grads: Sequence[np.ndarray],
              rtol: float = 1e-5, atol: float = 1e-8, eps: float = 1e-6, names: Sequence[str] | None = None,
              raise_exception: bool = True) -> bool:
    r"""Compare analytic gradients of ``f(*inputs)`` with central differences.

    Entry :math:`k` of input :math:`i` passes when
    :math:`|g^{\text{analytic}}_k - g^{\text{numerical}}_k| \le \text{atol} + \text{rtol}\,|g^{\text{numerical}}_k|`
    (the ``np.allclose`` rule, like ``torch.autograd.gradcheck``).

    Args:
        f: function of the arrays in ``inputs`` returning a scalar.
        inputs: float64 arrays (perturbed in place one entry at a time, then restored).
        analytic_grads: the gradients to check, one per input, each of its input's shape.
        rtol, atol: tolerances (defaults ``1e-5`` and ``1e-8``).
        eps: finite-difference step (default ``1e-6``).
        names: names for the inputs in messages (default ``input 0``, ``input 1``, ...).
        raise_exception: raise :class:`GradcheckError` on failure (default); else return False.

    Returns:
        True when every gradient passes.

    Raises:
        GradcheckError: a gradient differs; the message names the input, the worst index and
            "expected (numerical) ... received (analytic) ...".
        TypeError, ValueError: inconsistent arguments.
    """
    rtol, atol = check_real("rtol", rtol, 0.0), check_real("atol", atol, 0.0)
    eps = _check_eps(eps)
    inputs, analytic_grads = list(inputs), list(analytic_grads)
    names = [f"input {i}" for i in range(len(inputs))] if names is None else list(names)
    if len(analytic_grads) != len(inputs) or len(names) != len(inputs):
        raise ValueError(f"Need one analytic gradient and one name per input. Received: {len(inputs)} inputs, "
                         f"{len(analytic_grads)} analytic_grads, {len(names)} names")
    for i, (x, g, name) in enumerate(zip(inputs, analytic_grads, names)):
        _check_float64_array(f"inputs[{i}]", x)
        g = np.asarray(g, dtype=np.float64)
        if g.shape != x.shape:
            raise ValueError(f"`analytic_grads[{i}]` must have the shape of `inputs[{i}]` {x.shape}. "
                             f"Received: analytic_grads[{i}].shape={g.shape}")
        numerical = numerical_grad(lambda xi: f(*inputs[:i], xi, *inputs[i + 1:]), x, eps)
        excess = np.abs(g - numerical) - (atol + rtol * np.abs(numerical))
        if (excess > 0).any() or not np.isfinite(g).all():
            worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(g), excess, np.inf)), x.shape)
            message = (f"Gradient of {name} differs at index {tuple(int(k) for k in worst)}: "
                       f"expected (numerical) {numerical[worst]:.10g}, received (analytic) {g[worst]:.10g}; "
                       f"{int((excess > 0).sum())} of {x.size} entries outside rtol={rtol}, atol={atol}")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
