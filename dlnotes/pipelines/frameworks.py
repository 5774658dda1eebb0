r"""One small classifier written twice, in PyTorch and in Keras, and the map between their weights.

Taught in: *Frameworks: TensorFlow, PyTorch, Keras* (``book/foundations/frameworks.ipynb``),
where the two versions are shown side by side, trained on the same MNIST digits and checked
to compute the same function once their weights agree.

The model is a multilayer perceptron: flatten the image to a vector
:math:`x \in \mathbb{R}^{d}`, one ReLU hidden layer of width :math:`h`, and :math:`k` logits,

.. math::

    a = \operatorname{relu}(x W_1 + b_1), \qquad z = a W_2 + b_2, \qquad
    \#\text{params} = (d + 1)\,h + (h + 1)\,k .

Keras stores a ``Dense`` kernel as ``(fan_in, fan_out)`` and computes :math:`x W`; PyTorch
stores a ``Linear`` weight as ``(fan_out, fan_in)`` and computes :math:`x W^\top`. The one
place that knows this is :func:`keras_dense_to_torch_linear`.

torch and keras are imported inside the functions that need them, so importing this module
is cheap. Keras must use the torch backend (``KERAS_BACKEND=torch``) for :func:`train_keras`
and for comparing gradients.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from dlnotes._checks import check_positive_float, check_positive_int

__all__ = [
    "mlp_param_count",
    "build_torch_model",
    "build_keras_model",
    "count_params",
    "keras_dense_to_torch_linear",
    "copy_keras_weights_to_torch",
    "train_torch",
    "train_keras",
    "accuracy",
]


# ----------------------------------------------------------------------------- input checks
def _check_shape(input_shape) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) == 0 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in input_shape
    ):
        raise ValueError(
            f"`input_shape` must be a non-empty tuple of positive integers. Received: input_shape={input_shape!r}"
        )
    return tuple(int(s) for s in input_shape)


def _check_data(x, y) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"`x` must be a floating-point NumPy array. Received: x of type {got}")
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        got = y.dtype if isinstance(y, np.ndarray) else type(y).__name__
        raise TypeError(f"`y` must be an integer NumPy array of class labels. Received: y of type {got}")
    if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
        raise ValueError(
            f"`y` must be 1-D with one label per example of `x`. Received: x.shape={x.shape}, y.shape={y.shape}"
        )
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


def _framework(model, name: str = "model") -> str:
    """``"keras"`` or ``"torch"``. Keras is tested first: on the torch backend a Keras model
    is also a ``torch.nn.Module``."""
    keras, torch = sys.modules.get("keras"), sys.modules.get("torch")
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    raise TypeError(
        f"`{name}` must be a keras.Model or a torch.nn.Module. Received: {name} of type {type(model).__name__}"
    )


_EXPECTED = {"keras": "a keras.Model", "torch": "a torch.nn.Module (not a Keras model)"}


def _require(model, framework: str, name: str = "model") -> None:
    if _framework(model, name) != framework:
        raise TypeError(f"`{name}` must be {_EXPECTED[framework]}. Received: {name} of type {type(model).__name__}")


def _device_of(model):
    """The device of a torch module's first parameter."""
    for parameter in model.parameters():
        return parameter.device
    raise ValueError(f"`model` must have parameters. Received: a {type(model).__name__} without parameters")


# ----------------------------------------------------------------------------- the two models
def mlp_param_count(input_shape=(28, 28), n_hidden: int = 64, n_classes: int = 10) -> int:
    r"""The number of parameters of the model, from the formula :math:`(d + 1)h + (h + 1)k`.

    Args:
        input_shape: shape of one example, e.g. ``(28, 28)``; :math:`d` is its product.
        n_hidden: :math:`h`, the hidden width (default 64).
        n_classes: :math:`k`, the number of logits (default 10).

    Returns:
        An int: 50,890 for the defaults.
    """
    d = math.prod(_check_shape(input_shape))
    h = check_positive_int("n_hidden", n_hidden)
    k = check_positive_int("n_classes", n_classes)
    return (d + 1) * h + (h + 1) * k


def build_torch_model(input_shape=(28, 28), n_hidden: int = 64, n_classes: int = 10):
    r"""The classifier as a ``torch.nn.Sequential``: Flatten, Linear, ReLU, Linear (logits).

    Weights use PyTorch's default initialisation (uniform in :math:`\pm 1/\sqrt{\text{fan-in}}`
    for weights and biases), drawn from torch's global generator: seed it first.

    Args:
        input_shape: shape of one example, e.g. ``(28, 28)``.
        n_hidden: hidden width (default 64).
        n_classes: number of output logits (default 10).

    Returns:
        A module mapping ``(n, *input_shape)`` float32 to logits ``(n, n_classes)``.
    """
    import torch

    d = math.prod(_check_shape(input_shape))
    n_hidden = check_positive_int("n_hidden", n_hidden)
    n_classes = check_positive_int("n_classes", n_classes)
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(d, n_hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(n_hidden, n_classes),
    )


def build_keras_model(input_shape=(28, 28), n_hidden: int = 64, n_classes: int = 10):
    """The same classifier as a ``keras.Sequential``: Flatten, Dense(relu), Dense (logits).

    Weights use Keras's defaults (Glorot-uniform kernels, zero biases), drawn from Keras's
    seed generator: seed it first (``dlnotes.seed_everything``).

    Args:
        input_shape: shape of one example, e.g. ``(28, 28)``.
        n_hidden: hidden width (default 64).
        n_classes: number of output logits (default 10).

    Returns:
        A built model mapping ``(n, *input_shape)`` float32 to logits ``(n, n_classes)``.
    """
    import keras

    input_shape = _check_shape(input_shape)
    n_hidden = check_positive_int("n_hidden", n_hidden)
    n_classes = check_positive_int("n_classes", n_classes)
    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(n_hidden, activation="relu"),
        keras.layers.Dense(n_classes),
    ])


def count_params(model) -> int:
    """Number of parameters of a Keras model (``model.count_params()``) or a torch module
    (the sum of ``p.numel()`` over ``model.parameters()``).

    Raises:
        TypeError: ``model`` is neither.
    """
    if _framework(model) == "keras":
        return int(model.count_params())
    return int(sum(p.numel() for p in model.parameters()))


# ----------------------------------------------------------------------------- weight mapping
def keras_dense_to_torch_linear(kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Map a Keras ``Dense`` layer's weights to a torch ``Linear`` layer's: transpose the kernel.

    Keras computes :math:`x K + b` with ``K`` of shape ``(fan_in, fan_out)``; torch computes
    :math:`x W^\top + b` with ``W`` of shape ``(fan_out, fan_in)``, so :math:`W = K^\top`.

    Args:
        kernel: ``(fan_in, fan_out)``.
        bias: ``(fan_out,)``.

    Returns:
        ``(weight, bias)`` of shapes ``(fan_out, fan_in)`` and ``(fan_out,)``.
    """
    kernel, bias = np.asarray(kernel), np.asarray(bias)
    if kernel.ndim != 2:
        raise ValueError(f"`kernel` must be 2-D (fan_in, fan_out). Received: kernel.shape={kernel.shape}")
    if bias.shape != (kernel.shape[1],):
        raise ValueError(
            f"`bias` must have shape (fan_out,) = ({kernel.shape[1]},). Received: bias.shape={bias.shape}"
        )
    return np.ascontiguousarray(kernel.T), bias


def copy_keras_weights_to_torch(keras_model, torch_model):
    """Copy every Keras ``Dense`` layer, in order, into the matching torch ``Linear`` layer.

    Uses :func:`keras_dense_to_torch_linear` for each pair; afterwards both models compute the
    same function (to float32 rounding). The copy runs under ``torch.no_grad()`` and keeps the
    torch parameters' dtype and device.

    Args:
        keras_model: e.g. from :func:`build_keras_model`.
        torch_model: e.g. from :func:`build_torch_model`, with as many ``Linear`` layers.

    Returns:
        ``torch_model``, changed in place.

    Raises:
        TypeError: the models are not a Keras model and a (non-Keras) torch module.
        ValueError: the layer counts or shapes differ.
    """
    _require(keras_model, "keras", "keras_model")
    _require(torch_model, "torch", "torch_model")
    import keras
    import torch

    dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
    linear = [m for m in torch_model.modules() if isinstance(m, torch.nn.Linear)]
    if len(dense) != len(linear):
        raise ValueError(
            "The models must have as many Dense as Linear layers. "
            f"Received: {len(dense)} Dense and {len(linear)} Linear layers"
        )
    with torch.no_grad():
        for i, (src, dst) in enumerate(zip(dense, linear)):
            weight, bias = keras_dense_to_torch_linear(keras.ops.convert_to_numpy(src.kernel),
                                                       keras.ops.convert_to_numpy(src.bias))
            if weight.shape != tuple(dst.weight.shape):
                raise ValueError(
                    f"Layer {i}: the transposed Dense kernel must match the Linear weight {tuple(dst.weight.shape)}. "
                    f"Received: kernel.shape={tuple(src.kernel.shape)}"
                )
            dst.weight.copy_(torch.from_numpy(weight))
            dst.bias.copy_(torch.from_numpy(bias))
    return torch_model


# ----------------------------------------------------------------------------- training
def train_torch(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 3, batch_size: int = 64,
                learning_rate: float = 1e-3, seed: int = 0, device=None) -> list[float]:
    """Train with Adam on the cross-entropy of the logits: the loop Keras's ``fit`` runs for you.

    Each epoch shuffles the examples with a ``torch.Generator`` seeded with ``seed + epoch``,
    then takes one optimizer step per mini-batch. Matches :func:`train_keras` (Adam, same
    learning rate, batch size and loss).

    Args:
        model: a torch module mapping ``(n, *input_shape)`` to logits ``(n, k)``.
        x: float array ``(n, *input_shape)``; y: int array ``(n,)`` of labels in ``[0, k)``.
        epochs, batch_size, learning_rate: defaults 3, 64, ``1e-3``.
        seed: seeds the shuffling.
        device: a ``torch.device`` or name; default: the device of the model's parameters.

    Returns:
        The mean training loss of each epoch, a list of ``epochs`` floats.
    """
    _require(model, "torch")
    x, y = _check_data(x, y)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    import torch

    device = torch.device(device) if device is not None else _device_of(model)
    model.to(device).train()
    X, Y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed + epoch)).to(device)
        total = 0.0
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            loss = torch.nn.functional.cross_entropy(model(X[batch]), Y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(X))
    return losses


def train_keras(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 3, batch_size: int = 64,
                learning_rate: float = 1e-3, seed: int = 0, jit_compile=False) -> list[float]:
    """Train with Adam on the cross-entropy of the logits: ``compile`` then ``fit``.

    On the torch backend ``fit`` shuffles NumPy arrays with NumPy's global generator, which
    is seeded with ``seed`` first (``keras.utils.set_random_seed`` would also do it, but it
    imports TensorFlow when that is installed, to seed it too).

    Args:
        model: a Keras model mapping ``(n, *input_shape)`` to logits ``(n, k)``.
        x: float array ``(n, *input_shape)``; y: int array ``(n,)`` of labels in ``[0, k)``.
        epochs, batch_size, learning_rate: defaults 3, 64, ``1e-3``.
        seed: seeds the shuffling.
        jit_compile: passed to ``model.compile``; ``True``, ``False`` (default) or ``"auto"``.
            On the torch backend ``True`` wraps the training step in ``torch.compile``.

    Returns:
        The mean training loss of each epoch, a list of ``epochs`` floats.
    """
    _require(model, "keras")
    x, y = _check_data(x, y)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
    import keras

    np.random.seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return [float(v) for v in history.history["loss"]]


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    r"""Fraction of examples whose largest logit is the true class, :math:`\frac1n\sum_i [\arg\max_j z_{ij} = y_i]`.

    Works for a Keras model (``model.predict``) and a torch module (evaluation mode, no
    gradients, on the device of its parameters), like ``keras.metrics.SparseCategoricalAccuracy``.

    Args:
        model: maps ``(n, *input_shape)`` to logits ``(n, k)``.
        x: float array ``(n, *input_shape)``; y: int array ``(n,)``.
        batch_size: examples per forward pass (default 1000).

    Returns:
        A float in ``[0, 1]``.
    """
    framework = _framework(model)
    x, y = _check_data(x, y)
    batch_size = check_positive_int("batch_size", batch_size)
    if framework == "keras":
        logits = model.predict(x, batch_size=batch_size, verbose=0)
    else:
        import torch

        device = _device_of(model)
        model.eval()
        with torch.no_grad():
            logits = np.concatenate([model(torch.from_numpy(x[i:i + batch_size]).to(device)).cpu().numpy()
                                     for i in range(0, len(x), batch_size)])
    return float(np.mean(np.argmax(logits, axis=1) == y))
