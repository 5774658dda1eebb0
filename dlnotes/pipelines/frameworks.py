r"""One small classifier written twice, in PyTorch and in Keras, and the map between their weights.

Taught in: *Frameworks: TensorFlow, PyTorch, Keras* (``book/projects/frameworks.ipynb``),
where the two versions are shown side by side, trained on the same MNIST digits and checked
to compute the same function once their weights agree.

The model is a multilayer perceptron: flatten the image to a vector
:math:`x \in \mathbb{R}^{d}`, one ReLU hidden layer of width :math:`h`, and :math:`k` logits,

.. math::

    a = \operatorname{relu}(x W_1 + b_1), \qquad z = a W_2 + b_2, \qquad
    \#\text{params} = (d + 1)\,h + (h + 1)\,k .

Keras stores a ``Dense`` kernel as ``(fan_in, fan_out)`` and computes :math:`x W`; PyTorch
stores a ``Linear`` weight as ``(fan_out, fan_in)`` and computes :math:`x W^\top`. The one
place that knows this is :func:`dlnotes.pipelines.common.keras_dense_to_torch_linear`
(re-exported here).

The functions follow the pipeline API of :mod:`dlnotes.pipelines.common`: ``build_*`` ->
model, ``train_*`` -> ``History``, ``evaluate_*`` -> ``{"loss", "accuracy"}``.

torch and keras are imported inside the functions that need them, so importing this module
is cheap. Keras must use the torch backend (``KERAS_BACKEND=torch``) for :func:`train_keras`
and for comparing gradients with torch.
"""

from __future__ import annotations

import math

import numpy as np

from dlnotes._checks import check_positive_int
from dlnotes.pipelines import common
from dlnotes.pipelines.common import History, keras_dense_to_torch_linear

__all__ = [
    "mlp_param_count",
    "build_torch_model",
    "build_keras_model",
    "count_params",
    "keras_dense_to_torch_linear",
    "copy_keras_weights_to_torch",
    "train_torch",
    "train_keras",
    "evaluate_torch",
    "evaluate_keras",
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
    if common.framework_of(model) == "keras":
        return int(model.count_params())
    return int(sum(p.numel() for p in model.parameters()))


# ----------------------------------------------------------------------------- weight mapping
def copy_keras_weights_to_torch(keras_model, torch_model):
    """Copy every Keras ``Dense`` layer, in order, into the matching torch ``Linear`` layer.

    Uses :func:`~dlnotes.pipelines.common.keras_dense_to_torch_linear` for each pair; afterwards both models compute the
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
    common.require_framework(keras_model, "keras", "keras_model")
    common.require_framework(torch_model, "torch", "torch_model")
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


# ----------------------------------------------------------------------------- training and evaluation
def train_torch(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 3, batch_size: int = 64,
                learning_rate: float = 1e-3, seed: int = 0, validation_data=None, on_epoch_end=None) -> History:
    """Train with Adam on the cross-entropy of the logits: the loop Keras's ``fit`` runs for you.

    The loop is :func:`dlnotes.pipelines.common.fit_torch_classifier`; it runs on the device of the
    model's parameters (move the model first: ``model.to(device)``).

    Args:
        model: a torch module mapping ``(n, *input_shape)`` to logits ``(n, k)``.
        x: float array ``(n, *input_shape)``; y: int array ``(n,)`` of labels in ``[0, k)``.
        epochs, batch_size, learning_rate: defaults 3, 64, ``1e-3``.
        seed: seeds the shuffling.
        validation_data: ``(x_val, y_val)``, evaluated after each epoch, or ``None``.
        on_epoch_end: optional ``f(epoch, logs)``, like a Keras callback.

    Returns:
        A :data:`~dlnotes.pipelines.common.History`: ``loss``, ``accuracy`` (and ``val_*``) per epoch.
    """
    return common.train_torch_classifier(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                         seed=seed, validation_data=validation_data, on_epoch_end=on_epoch_end)


def train_keras(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 3, batch_size: int = 64,
                learning_rate: float = 1e-3, seed: int = 0, validation_data=None, on_epoch_end=None,
                jit_compile=False) -> History:
    """Train with Adam on the cross-entropy of the logits: ``compile`` then ``fit``.

    See :func:`dlnotes.pipelines.common.fit_keras_classifier`.

    Args:
        model: a Keras model mapping ``(n, *input_shape)`` to logits ``(n, k)``.
        x, y, epochs, batch_size, learning_rate, seed, validation_data, on_epoch_end: as :func:`train_torch`.
        jit_compile: passed to ``model.compile``; ``True``, ``False`` (default) or ``"auto"``.
            On the torch backend ``True`` wraps the training step in ``torch.compile``.

    Returns:
        A :data:`~dlnotes.pipelines.common.History`, Keras's ``History.history``.
    """
    return common.train_keras_classifier(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                         seed=seed, from_logits=True, validation_data=validation_data,
                                         on_epoch_end=on_epoch_end, jit_compile=jit_compile)


def evaluate_torch(model, x: np.ndarray, y: np.ndarray, *, batch_size: int = 1000) -> dict[str, float]:
    r"""Mean cross-entropy and accuracy of a torch classifier on ``(x, y)``.

    ``{"loss": ..., "accuracy": ...}``, where accuracy is the fraction of examples whose
    largest logit is the true class, :math:`\frac1n\sum_i [\arg\max_j z_{ij} = y_i]`; the model
    runs in evaluation mode, without gradients, in chunks of ``batch_size``.
    """
    return common.evaluate_torch_classifier(model, x, y, batch_size=batch_size)


def evaluate_keras(model, x: np.ndarray, y: np.ndarray, *, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and accuracy of a Keras classifier (logits) on ``(x, y)``, from ``model.predict``."""
    return common.evaluate_keras_classifier(model, x, y, batch_size=batch_size, from_logits=True)
