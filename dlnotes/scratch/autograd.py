r"""A small reverse-mode automatic-differentiation engine over NumPy arrays.

Taught in: *Backpropagation* (``book/math/backprop.ipynb``); used by :mod:`dlnotes.scratch.nn`,
and through it by the *Neural networks* chapter (``book/foundations/neural_networks.ipynb``).
Background: Rumelhart, Hinton & Williams (1986) for backpropagation; Baydin et al. (2018),
*Automatic differentiation in machine learning: a survey*, for reverse versus forward mode.

It is micrograd in spirit, but every value is an array rather than a scalar. A
:class:`Tensor` holds ``data`` (a float64 ``ndarray``), ``grad`` (same shape, or ``None``),
its parents and a closure ``_backward`` that turns the gradient of the output into
gradients of the parents. For an op :math:`y = f(x_1, \dots, x_k)` inside a scalar loss
:math:`L`, the closure computes the **vector-Jacobian product**

.. math::

    \bar x_i = \frac{\partial L}{\partial x_i}
             = \sum_j \bar y_j \, \frac{\partial y_j}{\partial x_i}, \qquad
    \bar y = \frac{\partial L}{\partial y},

without ever forming the Jacobian. :meth:`Tensor.backward` visits the graph in reverse
topological order (an iterative sort, so deep graphs do not hit Python's recursion limit)
and *adds* every contribution into ``grad``: a value used twice receives two terms.

Broadcasting: when ``x`` of shape ``(3, 1)`` is added to ``y`` of shape ``(4,)`` the
result has shape ``(3, 4)``; each entry of ``x`` was copied 4 times, so its gradient is
the *sum* of the 4 upstream entries (:func:`unbroadcast`).

Unlike ``torch.Tensor`` (where ``requires_grad=False`` by default), a :class:`Tensor`
tracks gradients unless created with ``requires_grad=False`` (use that for data).
The activations and losses call :mod:`dlnotes.scratch.activations` and :mod:`dlnotes.scratch.losses`
for their values and derivatives, so the formulas live in one place.
"""

from __future__ import annotations

import numbers

import numpy as np

from dlnotes.scratch import activations, losses

__all__ = ["Tensor", "unbroadcast", "relu", "tanh", "sigmoid", "softmax", "log_softmax",
           "mse", "cross_entropy"]


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    r"""Sum ``grad`` down to ``shape``: the VJP of NumPy broadcasting.

    Broadcasting copies an operand along new leading axes and along axes of length 1;
    the adjoint of copying is summing, so the upstream gradient is summed over those axes.

    Args:
        grad: gradient of the broadcast result, shape ``(..., *shape')``.
        shape: the operand's shape before broadcasting.

    Returns:
        An array of shape ``shape``.
    """
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"`grad` has fewer axes than `shape`. Received: grad.shape={grad.shape}, shape={shape}")
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _as_array(data, name: str = "data") -> np.ndarray:
    if isinstance(data, Tensor):
        return data.data
    if isinstance(data, (bool, np.bool_)) or (isinstance(data, np.ndarray) and data.dtype == bool):
        raise TypeError(f"`{name}` must be numeric, not boolean. Received: {name}={data!r}")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number or an array of numbers. Received: {name}={data!r}") from None
    return array


def _check_axis(axis, ndim: int) -> tuple:
    """The axes ``axis`` names, normalised to non-negative ints (all axes for ``None``)."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"`axis` must be None or integers in [-{ndim}, {ndim}). Received: axis={axis!r}")
    return tuple(int(a) % ndim for a in axes)


class Tensor:
    """An array that remembers how it was computed, so gradients can flow back through it.

    Args:
        data: a number, nested list or array; stored as a float64 ``ndarray``.
        requires_grad: whether :meth:`backward` should compute ``grad`` for it (default True).

    Attributes:
        data: the values (float64 ``ndarray``).
        grad: ``dL/d(data)`` after :meth:`backward`, same shape as ``data``; ``None`` before.
    """

    __array_ufunc__ = None  # make ndarray + Tensor call Tensor.__radd__ (not an array of objects)

    def __init__(self, data, requires_grad: bool = True, _parents: tuple = (), _op: str = ""):
        if not isinstance(requires_grad, bool):
            raise TypeError(f"`requires_grad` must be True or False. Received: requires_grad={requires_grad!r}")
        self.data = _as_array(data)
        self.grad = None
        self.requires_grad = requires_grad
        self._parents = _parents
        self._op = _op
        self._backward = None

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def __repr__(self) -> str:
        op = f", op={self._op!r}" if self._op else ""
        return f"Tensor({np.array2string(self.data, precision=4)}{op})"

    def _accumulate(self, grad: np.ndarray) -> None:
        if self.requires_grad:  # (np.asarray: NumPy turns 0-d results into scalars)
            grad = unbroadcast(np.asarray(grad, dtype=np.float64), self.shape)
            self.grad = np.array(grad) if self.grad is None else np.asarray(self.grad + grad)

    def _child(self, data, parents, op, backward) -> Tensor:
        """The output of an op: tracked only if some parent is tracked."""
        tracked = tuple(p for p in parents if p.requires_grad)
        out = Tensor(data, requires_grad=bool(tracked), _parents=tracked, _op=op)
        if tracked:
            out._backward = lambda: backward(np.asarray(out.grad))
        return out

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad = None``, like torch's ``set_to_none=True``)."""
        self.grad = None

    def backward(self) -> None:
        """Compute ``d self / d t`` for every tracked tensor ``t`` this scalar depends on.

        Gradients of leaves *accumulate* across calls (call :meth:`zero_grad` between steps);
        gradients of intermediate tensors are recomputed from scratch on every call.

        Raises:
            ValueError: ``self`` is not a scalar (one element) or does not require grad.
        """
        if self.data.size != 1:
            raise ValueError("backward() needs a scalar output (one element): reduce it first, "
                             f"e.g. with .sum() or .mean(). Received: shape={self.shape}")
        if not self.requires_grad:
            raise ValueError("backward() on a tensor that does not require grad. Received: requires_grad=False")
        order = topological_order(self)
        for node in order:
            if node._parents:
                node.grad = None
        self.grad = np.ones_like(self.data) if self.grad is None else self.grad + 1.0
        for node in reversed(order):
            if node._backward is not None and node.grad is not None:
                node._backward()

    # -- arithmetic ----------------------------------------------------------------------
    @staticmethod
    def _lift(other) -> Tensor:
        return other if isinstance(other, Tensor) else Tensor(_as_array(other, "other"), requires_grad=False)

    def _check_broadcast(self, other: Tensor, op: str) -> tuple:
        try:
            return np.broadcast_shapes(self.shape, other.shape)
        except ValueError:
            raise ValueError(f"Cannot {op} tensors of shapes {self.shape} and {other.shape}: "
                             "they do not broadcast.") from None

    def __add__(self, other) -> Tensor:
        r"""``a + b``. VJP: :math:`\bar a = \bar y`, :math:`\bar b = \bar y` (then unbroadcast)."""
        other = self._lift(other)
        self._check_broadcast(other, "add")

        def backward(g):
            self._accumulate(g)
            other._accumulate(g)
        return self._child(self.data + other.data, (self, other), "+", backward)

    def __neg__(self) -> Tensor:
        r"""``-a``. VJP: :math:`\bar a = -\bar y`."""
        return self._child(-self.data, (self,), "neg", lambda g: self._accumulate(-g))

    def __sub__(self, other) -> Tensor:
        r"""``a - b = a + (-b)``. VJP: :math:`\bar a = \bar y`, :math:`\bar b = -\bar y`."""
        return self + (-self._lift(other))

    def __mul__(self, other) -> Tensor:
        r"""``a * b`` elementwise. VJP: :math:`\bar a = \bar y \odot b`, :math:`\bar b = \bar y \odot a`."""
        other = self._lift(other)
        self._check_broadcast(other, "multiply")

        def backward(g):
            self._accumulate(g * other.data)
            other._accumulate(g * self.data)
        return self._child(self.data * other.data, (self, other), "*", backward)

    def __truediv__(self, other) -> Tensor:
        r"""``a / b``. VJP: :math:`\bar a = \bar y / b`, :math:`\bar b = -\bar y \odot a / b^2`."""
        other = self._lift(other)
        self._check_broadcast(other, "divide")

        def backward(g):
            self._accumulate(g / other.data)
            other._accumulate(-g * self.data / other.data**2)
        return self._child(self.data / other.data, (self, other), "/", backward)

    def __pow__(self, exponent) -> Tensor:
        r"""``a ** p`` for a constant real ``p``. VJP: :math:`\bar a = \bar y \odot p\, a^{p-1}`."""
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(f"The exponent must be a real number (not a Tensor). Received: exponent={exponent!r}")
        p = float(exponent)
        return self._child(self.data**p, (self,), f"**{exponent}",
                           lambda g: self._accumulate(g * p * self.data ** (p - 1)))

    def __matmul__(self, other) -> Tensor:
        r"""Matrix product ``a @ b`` (like ``np.matmul``; 1-D and batched operands work).

        VJP for 2-D operands: :math:`\bar A = \bar Y B^\top`, :math:`\bar B = A^\top \bar Y`.
        """
        other = self._lift(other)
        if self.ndim == 0 or other.ndim == 0 or self.shape[-1] != other.shape[-2 if other.ndim > 1 else 0]:
            raise ValueError(f"Cannot matmul tensors of shapes {self.shape} and {other.shape}: "
                             "the last axis of the first must equal the second-to-last axis of the second.")
        a = self.data[None, :] if self.ndim == 1 else self.data  # promote vectors to matrices
        b = other.data[:, None] if other.ndim == 1 else other.data
        full = a @ b
        shape = full.shape[:-1] if other.ndim == 1 else full.shape  # then drop the added axes
        shape = (shape[:-1] if other.ndim == 1 else shape[:-2] + shape[-1:]) if self.ndim == 1 else shape

        def backward(g):
            g = g.reshape(full.shape)
            if self.requires_grad:  # skip the product for data (e.g. a minibatch of images)
                self._accumulate(unbroadcast(g @ np.swapaxes(b, -1, -2), a.shape).reshape(self.shape))
            if other.requires_grad:
                other._accumulate(unbroadcast(np.swapaxes(a, -1, -2) @ g, b.shape).reshape(other.shape))
        return self._child(full.reshape(shape), (self, other), "@", backward)

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other) -> Tensor:
        return self._lift(other) - self

    def __rtruediv__(self, other) -> Tensor:
        return self._lift(other) / self

    def __rmatmul__(self, other) -> Tensor:
        return self._lift(other) @ self

    # -- elementwise functions -----------------------------------------------------------
    def exp(self) -> Tensor:
        r""":math:`e^a`. VJP: :math:`\bar a = \bar y \odot e^a`."""
        y = np.exp(self.data)
        return self._child(y, (self,), "exp", lambda g: self._accumulate(g * y))

    def log(self) -> Tensor:
        r"""Natural log. VJP: :math:`\bar a = \bar y / a`."""
        return self._child(np.log(self.data), (self,), "log", lambda g: self._accumulate(g / self.data))

    def relu(self) -> Tensor:
        r""":math:`\max(a, 0)`. VJP: :math:`\bar a = \bar y \odot [a > 0]` (``activations.relu_grad``)."""
        return self._child(activations.relu(self.data), (self,), "relu",
                           lambda g: self._accumulate(g * activations.relu_grad(self.data)))

    def tanh(self) -> Tensor:
        r""":math:`\tanh a`. VJP: :math:`\bar a = \bar y \odot (1 - \tanh^2 a)`."""
        return self._child(activations.tanh(self.data), (self,), "tanh",
                           lambda g: self._accumulate(g * activations.tanh_grad(self.data)))

    def sigmoid(self) -> Tensor:
        r""":math:`\sigma(a) = 1/(1+e^{-a})`. VJP: :math:`\bar a = \bar y \odot \sigma(a)(1-\sigma(a))`."""
        return self._child(activations.sigmoid(self.data), (self,), "sigmoid",
                           lambda g: self._accumulate(g * activations.sigmoid_grad(self.data)))

    def softmax(self, axis: int = -1) -> Tensor:
        r"""Softmax along ``axis``. VJP: :math:`\bar a = s \odot (\bar y - \langle \bar y, s\rangle)`."""
        return self._child(activations.softmax(self.data, axis=axis), (self,), "softmax",
                           lambda g: self._accumulate(activations.softmax_backward(g, self.data, axis=axis)))

    def log_softmax(self, axis: int = -1) -> Tensor:
        r""":math:`a - \log\sum e^{a}` along ``axis``. VJP: :math:`\bar a = \bar y - s \sum \bar y`."""
        return self._child(activations.log_softmax(self.data, axis=axis), (self,), "log_softmax",
                           lambda g: self._accumulate(activations.log_softmax_backward(g, self.data, axis=axis)))

    # -- reductions and shape ------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        r"""Sum over ``axis`` (``None``: all). VJP: :math:`\bar a = \bar y` copied back along the summed axes."""
        _check_axis(axis, self.ndim)
        y = self.data.sum(axis=axis, keepdims=keepdims)

        def backward(g):
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            self._accumulate(np.broadcast_to(g, self.shape))
        return self._child(y, (self,), "sum", backward)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        r"""Mean over ``axis``: ``sum / n``. VJP: :math:`\bar a = \bar y / n` copied back."""
        n = int(np.prod([self.shape[a] for a in _check_axis(axis, self.ndim)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / n)

    def reshape(self, *shape) -> Tensor:
        r"""Same values, new shape. VJP: :math:`\bar a` = ``reshape(ȳ, a.shape)``."""
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        try:
            y = self.data.reshape(shape)
        except (ValueError, TypeError):
            raise ValueError(f"Cannot reshape a tensor of shape {self.shape} to {shape}.") from None
        return self._child(y, (self,), "reshape", lambda g: self._accumulate(g.reshape(self.shape)))

    def transpose(self, *axes) -> Tensor:
        r"""Permute axes (reverse them by default). VJP: apply the inverse permutation to :math:`\bar y`."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(reversed(range(self.ndim))) if not axes else tuple(axes)
        if sorted(int(a) % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
            raise ValueError(f"`axes` must be a permutation of the {self.ndim} axes. Received: axes={axes}")
        inverse = tuple(np.argsort([a % self.ndim for a in axes]))
        return self._child(self.data.transpose(axes), (self,), "transpose",
                           lambda g: self._accumulate(g.transpose(inverse)))

    @property
    def T(self) -> Tensor:
        return self.transpose()


def topological_order(root: Tensor) -> list:
    """Every tracked tensor ``root`` depends on, parents before children (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if id(p) not in visited)
    return order


def _check_tensor(name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a dlnotes.scratch.autograd.Tensor. Received: {name} of type {type(value).__name__}")
    return value


def relu(x: Tensor) -> Tensor:
    """Functional form of :meth:`Tensor.relu` (like ``torch.relu``)."""
    return _check_tensor("x", x).relu()


def tanh(x: Tensor) -> Tensor:
    """Functional form of :meth:`Tensor.tanh` (like ``torch.tanh``)."""
    return _check_tensor("x", x).tanh()


def sigmoid(x: Tensor) -> Tensor:
    """Functional form of :meth:`Tensor.sigmoid` (like ``torch.sigmoid``)."""
    return _check_tensor("x", x).sigmoid()


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Functional form of :meth:`Tensor.softmax` (like ``torch.softmax(x, dim=axis)``)."""
    return _check_tensor("x", x).softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Functional form of :meth:`Tensor.log_softmax` (like ``torch.log_softmax(x, dim=axis)``)."""
    return _check_tensor("x", x).log_softmax(axis)


def mse(y_pred: Tensor, y_true) -> Tensor:
    r"""Mean squared error :math:`L = \frac1N \sum (\hat y - y)^2`, like ``torch.nn.functional.mse_loss``.

    VJP: :math:`\bar{\hat y} = \bar L \cdot \frac{2}{N} (\hat y - y)` (``losses.mse_grad``);
    ``y_true`` is a constant target (no gradient).

    Args:
        y_pred: predictions, any shape.
        y_true: targets (array or Tensor) of the same shape.
    """
    y_pred = _check_tensor("y_pred", y_pred)
    target = _as_array(y_true, "y_true")  # losses.mse checks the shapes
    return y_pred._child(losses.mse(y_pred.data, target), (y_pred,), "mse",
                         lambda g: y_pred._accumulate(g * losses.mse_grad(y_pred.data, target)))


def cross_entropy(logits: Tensor, target) -> Tensor:
    r"""Mean cross-entropy of integer class targets, like ``torch.nn.functional.cross_entropy``.

    .. math::

        L = -\frac1n \sum_i \log \operatorname{softmax}(z_i)_{t_i}, \qquad
        \bar z = \bar L \cdot \frac1n (\operatorname{softmax}(z) - \operatorname{onehot}(t)).

    Args:
        logits: Tensor of shape ``(n, classes)``.
        target: integer array of shape ``(n,)`` with values in ``[0, classes)``.
    """
    logits = _check_tensor("logits", logits)
    target = np.asarray(target)  # losses.cross_entropy checks shapes, dtype and range
    return logits._child(losses.cross_entropy(logits.data, target), (logits,), "cross_entropy",
                         lambda g: logits._accumulate(g * losses.cross_entropy_grad(logits.data, target)))
