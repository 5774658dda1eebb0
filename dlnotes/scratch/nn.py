r"""Neural-network building blocks on top of :mod:`dlnotes.scratch.autograd`, and the perceptron.

Taught in: *Neural networks* (``book/foundations/neural_networks.ipynb``) and
*Backpropagation* (``book/math/backprop.ipynb``, which trains an :class:`MLP` on MNIST).

A :class:`Linear` layer computes :math:`Y = X W + b` with the weight stored as
``(in_features, out_features)``, like a Keras ``Dense`` kernel; ``torch.nn.Linear`` stores
the transpose ``(out_features, in_features)`` and computes :math:`X W^\top + b`.
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_choice, check_positive_float, check_positive_int
from dlnotes.scratch.autograd import Tensor, cross_entropy, mse

__all__ = ["Module", "Linear", "MLP", "fit", "Perceptron", "ACTIVATIONS"]

ACTIVATIONS = ("relu", "tanh", "sigmoid")


def _as_rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"`seed` must be an int, None or a numpy Generator. Received: seed={seed!r}")
    return np.random.default_rng(seed)


class Module:
    """Base class: a callable holding parameters, like a (much smaller) ``torch.nn.Module``.

    Subclasses define ``forward``; :meth:`parameters` finds every tracked :class:`Tensor`
    among the attributes, including those of sub-modules and of lists of modules.
    """

    def __call__(self, x) -> Tensor:
        return self.forward(x)

    def forward(self, x) -> Tensor:
        raise NotImplementedError

    def parameters(self) -> list:
        """All trainable tensors, in attribute order, each once."""
        found, seen = [], set()
        stack = list(reversed(list(vars(self).values())))
        while stack:
            value = stack.pop()
            if isinstance(value, Tensor) and value.requires_grad and id(value) not in seen:
                seen.add(id(value))
                found.append(value)
            elif isinstance(value, Module):
                stack.extend(reversed(list(vars(value).values())))
            elif isinstance(value, (list, tuple)):
                stack.extend(reversed(value))
        return found

    def zero_grad(self) -> None:
        """Reset every parameter's gradient (to ``None``)."""
        for p in self.parameters():
            p.zero_grad()


class Linear(Module):
    r"""Fully connected layer :math:`Y = XW + b`, like ``torch.nn.Linear`` / ``keras.layers.Dense``.

    Weights are Glorot-uniform, :math:`W_{ij} \sim U(-a, a)` with :math:`a = \sqrt{6/(\text{in}+\text{out})}`,
    and biases zero (Keras ``Dense`` defaults).

    Args:
        in_features, out_features: sizes.
        bias: add :math:`b` (default True).
        seed: int, None or ``np.random.Generator`` for the initial weights.

    Attributes:
        weight: Tensor ``(in_features, out_features)`` (Keras layout; torch's ``weight`` is its transpose).
        bias: Tensor ``(out_features,)`` or None.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, seed=None):
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        rng = _as_rng(seed)
        limit = np.sqrt(6.0 / (self.in_features + self.out_features))
        self.weight = Tensor(rng.uniform(-limit, limit, (self.in_features, self.out_features)))
        self.bias = Tensor(np.zeros(self.out_features)) if bias else None

    def forward(self, x) -> Tensor:
        """``x``: ``(n, in_features)`` array or Tensor; returns ``(n, out_features)``."""
        x = x if isinstance(x, Tensor) else Tensor(x, requires_grad=False)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear expects inputs with last axis {self.in_features}. Received: x.shape={x.shape}")
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class MLP(Module):
    """Multilayer perceptron: ``Linear`` layers with an activation between them (none after the last).

    Args:
        sizes: layer widths ``[in, hidden..., out]``, at least two positive ints.
        activation: ``"relu"`` (default), ``"tanh"`` or ``"sigmoid"``.
        seed: int, None or ``np.random.Generator``; one generator initialises every layer.

    Matches ``torch.nn.Sequential(Linear, ReLU, ..., Linear)`` with the weights transposed.
    """

    def __init__(self, sizes, activation: str = "relu", seed=None):
        if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
            raise ValueError(f"`sizes` must be a list of at least two layer sizes. Received: sizes={sizes!r}")
        sizes = [check_positive_int("sizes[i]", s) for s in sizes]
        check_choice("activation", activation, ACTIVATIONS)
        rng = _as_rng(seed)
        self.sizes, self.activation = sizes, activation
        self.layers = [Linear(a, b, seed=rng) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(self, x) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = getattr(x, self.activation)()
        return x


def fit(model: Module, x: np.ndarray, y: np.ndarray, optimizer, *, loss: str = "cross_entropy",
        epochs: int = 1, batch_size: int = 32, seed=0) -> list:
    """Minibatch training: shuffle, then for each batch forward, loss, backward, optimizer step.

    The optimizer is one of :mod:`dlnotes.scratch.optim` (they update NumPy arrays in place) built
    over the parameters' arrays, in order::

        opt = optim.SGD([p.data for p in model.parameters()], lr=0.1, momentum=0.9)
        fit(model, x, y, opt, epochs=3)

    Args:
        model: a :class:`Module` mapping ``(n, features)`` to ``(n, outputs)``.
        x: inputs ``(n, features)``.
        y: integer classes ``(n,)`` for ``loss="cross_entropy"``, targets ``(n, outputs)`` for ``"mse"``.
        optimizer: a :class:`dlnotes.scratch.optim.Optimizer` over ``[p.data for p in model.parameters()]``.
        loss: ``"cross_entropy"`` (default) or ``"mse"``.
        epochs, batch_size: passes over the data and examples per step.
        seed: shuffling seed (int, None or Generator).

    Returns:
        The mean training loss of each epoch (a list of ``epochs`` floats).
    """
    losses = {"cross_entropy": cross_entropy, "mse": mse}
    check_choice("loss", loss, losses)
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if x.ndim != 2 or len(y) != len(x):
        raise ValueError(f"`x` must be 2-D with one row per target. Received: x.shape={x.shape}, y.shape={y.shape}")
    params = model.parameters()
    arrays = getattr(optimizer, "params", None)
    if not isinstance(arrays, list) or len(arrays) != len(params) or any(a is not p.data for a, p in zip(arrays, params)):
        raise ValueError("`optimizer` must be built over [p.data for p in model.parameters()], in that order. "
                         f"Received: optimizer={optimizer!r}")
    rng, history = _as_rng(seed), []
    for _ in range(epochs):
        order, total = rng.permutation(len(x)), 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            value = losses[loss](model(x[batch]), y[batch])
            model.zero_grad()
            value.backward()
            optimizer.step([np.zeros_like(p.data) if p.grad is None else p.grad for p in params])
            total += float(value.data) * len(batch)
        history.append(total / len(x))
    return history


class Perceptron:
    r"""Rosenblatt's perceptron with labels in :math:`\{-1, +1\}` and its learning rule.

    Prediction :math:`\hat y = \operatorname{sign}(w \cdot x + b)` (with :math:`\operatorname{sign}(0) = -1`).
    For each example with :math:`y (w \cdot x + b) \le 0` (a mistake, or on the boundary):

    .. math:: w \leftarrow w + \alpha\, y\, x, \qquad b \leftarrow b + \alpha\, y

    Same updates as ``sklearn.linear_model.Perceptron(eta0=lr, shuffle=False)``.

    Args:
        n_features: input size.
        lr: learning rate :math:`\alpha` (default 1).
    """

    def __init__(self, n_features: int, lr: float = 1.0):
        self.w = np.zeros(check_positive_int("n_features", n_features))
        self.b = 0.0
        self.lr = check_positive_float("lr", lr)

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.w):
            raise ValueError(f"`x` must have shape (n, {len(self.w)}). Received: x.shape={x.shape}")
        return x

    def predict(self, x) -> np.ndarray:
        """Labels in {-1, +1} for ``x`` of shape ``(n, n_features)``."""
        return np.where(self._check(x) @ self.w + self.b > 0, 1, -1)

    def fit(self, x, y, epochs: int = 100) -> list:
        """Apply the rule example by example, in order, until an epoch makes no mistake.

        Returns:
            The number of mistakes (updates) in each epoch; the last is 0 if it converged.
        """
        x, y = self._check(x), np.asarray(y)
        if y.shape != (len(x),) or not np.isin(y, (-1, 1)).all():
            raise ValueError(f"`y` must be -1/+1 labels of shape ({len(x)},). Received: y={y!r}")
        mistakes = []
        for _ in range(check_positive_int("epochs", epochs)):
            count = 0
            for xi, yi in zip(x, y):
                if yi * (xi @ self.w + self.b) <= 0:
                    self.w += self.lr * yi * xi
                    self.b += self.lr * yi
                    count += 1
            mistakes.append(count)
            if count == 0:
                break
        return mistakes
