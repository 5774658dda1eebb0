r"""The one API every chapter pipeline follows, and the pieces the pipelines share.

Taught in: *Frameworks: TensorFlow, PyTorch, Keras* (``book/projects/frameworks.ipynb``) and
used by every project chapter (``book/projects/``) and *Choosing a framework*.

The API
-------
Every pipeline module in :mod:`dlnotes.pipelines` offers, for each framework it covers
(``*`` is ``torch`` or ``keras``)::

    build_*(...) -> model
    train_*(model, x, y, *, epochs, batch_size, learning_rate, seed,
            validation_data=None) -> History
    evaluate_*(model, x, y, *, batch_size) -> dict[str, float]     # {"loss", "accuracy"}

with these conventions:

- **Argument names** are the same everywhere, and are Keras's: ``epochs``, ``batch_size``,
  ``learning_rate`` (the :math:`\alpha` of :math:`\theta_{t+1} = \theta_t - \alpha \nabla J(\theta_t)`),
  ``seed`` (a non-negative integer that seeds the shuffling of the training examples; weights
  are drawn when the model is built, so seed with :func:`dlnotes.seed_everything` first),
  ``validation_data=(x_val, y_val)``. A pipeline whose data are not ``(x, y)`` arrays (the
  text generator trains on windows of one long sequence) keeps the names for what it shares.
- **History** (:data:`History`) is ``dict[str, list[float]]``, one float per epoch, with the
  keys of Keras's ``History.history``: ``"loss"`` and ``"accuracy"`` on the training data
  (the mean over the epoch's mini-batches, as Keras reports them) and ``"val_loss"``,
  ``"val_accuracy"`` on ``validation_data`` at the end of each epoch, when given. A pipeline
  without an accuracy (a language model) has only the loss keys.
- **Metrics** from ``evaluate_*`` are ``{"loss": mean cross-entropy, "accuracy": fraction
  correct}`` as Python floats, computed by :func:`classification_metrics` for both frameworks.
- **Optimizer**: Adam with :data:`ADAM_EPSILON` on both sides (:func:`torch_adam`,
  :func:`keras_adam`). The two frameworks place :math:`\epsilon` differently (Keras adds it to
  :math:`\sqrt{v}` before the bias correction, PyTorch after it), so from the same weights and
  batches their steps agree closely but not to the last bit.
- **The loops** are written once: :func:`train_torch_classifier` / :func:`evaluate_torch_classifier`
  (the explicit PyTorch loop, :func:`fit_torch_classifier`) and :func:`train_keras_classifier` /
  :func:`evaluate_keras_classifier` (``compile`` + ``fit``, :func:`fit_keras_classifier`). A
  pipeline's ``train_*``/``evaluate_*`` passes them its data check and its input layout.
- **Errors** name the argument and echo the value (:mod:`dlnotes._checks`);
  :func:`check_training_args` checks the four shared training arguments at once.
- **Weights**: a Keras ``Dense`` kernel ``(fan_in, fan_out)`` becomes a torch ``Linear``
  weight ``(fan_out, fan_in)`` in one place, :func:`keras_dense_to_torch_linear`.

torch and keras are imported inside the functions that need them, so importing this module
(or a pipeline) is cheap and a TensorFlow or JAX process can use the Keras half alone.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from dlnotes._checks import check_positive_float, check_positive_int
from dlnotes.runtime import _check_seed

__all__ = [
    "ADAM_EPSILON",
    "History",
    "HISTORY_KEYS",
    "check_training_args",
    "check_classification_data",
    "check_validation_data",
    "framework_of",
    "require_framework",
    "device_of",
    "torch_adam",
    "keras_adam",
    "keras_dense_to_torch_linear",
    "classification_metrics",
    "new_history",
    "append_epoch",
    "fit_torch_classifier",
    "torch_outputs",
    "fit_keras_classifier",
    "train_torch_classifier",
    "evaluate_torch_classifier",
    "train_keras_classifier",
    "evaluate_keras_classifier",
]

#: Adam's :math:`\hat\epsilon` for every pipeline, Keras and PyTorch alike: Keras's default
#: (PyTorch's own default is ``1e-8``), in the update
#: :math:`\theta \leftarrow \theta - \alpha\, \hat m / (\sqrt{\hat v} + \epsilon)`.
ADAM_EPSILON = 1e-7

#: Per-epoch metrics, ``{"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}``.
History = dict[str, list[float]]

#: The keys a :data:`History` may have, in this order.
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

# Keras clips probabilities to [eps, 1 - eps] before the log of a cross-entropy.
_PROBABILITY_EPSILON = 1e-7


# ----------------------------------------------------------------------------- argument checks
def check_training_args(*, epochs, batch_size, learning_rate, seed) -> tuple[int, int, float, int]:
    """Check the four arguments every ``train_*`` shares; return them as ``int, int, float, int``.

    Raises:
        ValueError: ``epochs`` or ``batch_size`` is not a positive integer, ``learning_rate``
            is not a positive number, or ``seed`` is negative or at least ``2**32``.
        TypeError: ``seed`` is not an integer.
    """
    return (check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size),
            check_positive_float("learning_rate", learning_rate), _check_seed(seed))


def check_classification_data(x, y, *, n_classes: int | None = None, names=("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as float32 and ``y`` as int64, after checking they are examples and their labels.

    Args:
        x: a floating-point NumPy array ``(n, ...)`` with ``n >= 1``.
        y: an integer NumPy array ``(n,)`` of class indices (in ``[0, n_classes)`` when given).
        names: the argument names used in error messages.

    Raises:
        TypeError: ``x`` is not a float array or ``y`` not an integer array.
        ValueError: empty ``x``, ``y`` not 1-D with one label per example, or a label out of range.
    """
    x_name, y_name = names
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else f"type {type(x).__name__}"
        raise TypeError(f"`{x_name}` must be a floating-point NumPy array. Received: {x_name} of {got}")
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        got = f"dtype {y.dtype}" if isinstance(y, np.ndarray) else f"type {type(y).__name__}"
        raise TypeError(f"`{y_name}` must be an integer NumPy array of class indices. Received: {y_name} of {got}")
    if x.ndim < 1 or len(x) == 0 or y.shape != (len(x),):
        raise ValueError(f"`{y_name}` must be 1-D with one label per example of `{x_name}` (at least one). "
                         f"Received: {x_name}.shape={x.shape}, {y_name}.shape={y.shape}")
    if n_classes is not None and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"`{y_name}` must hold class indices in [0, {n_classes}). "
                         f"Received: {y_name}.min()={y.min()}, {y_name}.max()={y.max()}")
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


def check_validation_data(validation_data, check: Callable = check_classification_data):
    """``None``, or ``validation_data = (x_val, y_val)`` passed through ``check(x, y, names=...)``.

    Raises:
        TypeError: ``validation_data`` is not ``None`` or a pair; errors of ``check`` name
            ``validation_data[0]`` / ``validation_data[1]``.
    """
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise TypeError("`validation_data` must be None or a pair (x_val, y_val). "
                        f"Received: validation_data of type {type(validation_data).__name__}")
    return check(*validation_data, names=("validation_data[0]", "validation_data[1]"))


# ----------------------------------------------------------------------------- which framework
_EXPECTED = {"keras": "a keras.Model", "torch": "a torch.nn.Module (not a Keras model)"}


def framework_of(model, name: str = "model") -> str:
    """``"keras"`` or ``"torch"``. Keras is tested first: on the torch backend a Keras model
    is also a ``torch.nn.Module``.

    Raises:
        TypeError: ``model`` is neither (the message uses ``name``).
    """
    keras, torch = sys.modules.get("keras"), sys.modules.get("torch")
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    raise TypeError(f"`{name}` must be a keras.Model or a torch.nn.Module. Received: {name} of type {type(model).__name__}")


def require_framework(model, framework: str, name: str = "model") -> None:
    """Raise ``TypeError`` (naming ``name``) unless ``framework_of(model) == framework``."""
    if framework_of(model, name) != framework:
        raise TypeError(f"`{name}` must be {_EXPECTED[framework]}. Received: {name} of type {type(model).__name__}")


def device_of(model):
    """The device of a torch module's first parameter.

    Raises:
        ValueError: the module has no parameters.
    """
    for parameter in model.parameters():
        return parameter.device
    raise ValueError(f"`model` must have parameters. Received: a {type(model).__name__} without parameters")


# ----------------------------------------------------------------------------- optimizers, weights
def torch_adam(parameters, learning_rate: float):
    """``torch.optim.Adam(parameters, lr=learning_rate, eps=ADAM_EPSILON)`` (betas 0.9, 0.999)."""
    import torch

    return torch.optim.Adam(parameters, lr=check_positive_float("learning_rate", learning_rate), eps=ADAM_EPSILON)


def keras_adam(learning_rate: float):
    """``keras.optimizers.Adam(learning_rate, epsilon=ADAM_EPSILON)`` (betas 0.9, 0.999)."""
    import keras

    return keras.optimizers.Adam(learning_rate=check_positive_float("learning_rate", learning_rate), epsilon=ADAM_EPSILON)


def keras_dense_to_torch_linear(kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Map a Keras ``Dense`` layer's weights to a torch ``Linear`` layer's: transpose the kernel.

    Keras computes :math:`x K + b` with ``K`` of shape ``(fan_in, fan_out)``; torch computes
    :math:`x W^\top + b` with ``W`` of shape ``(fan_out, fan_in)``, so :math:`W = K^\top`.

    Args:
        kernel: ``(fan_in, fan_out)``.
        bias: ``(fan_out,)``.

    Returns:
        ``(weight, bias)`` of shapes ``(fan_out, fan_in)`` (C-contiguous) and ``(fan_out,)``.

    Raises:
        ValueError: ``kernel`` is not 2-D or ``bias`` does not have ``fan_out`` entries.
    """
    kernel, bias = np.asarray(kernel), np.asarray(bias)
    if kernel.ndim != 2:
        raise ValueError(f"`kernel` must be 2-D (fan_in, fan_out). Received: kernel.shape={kernel.shape}")
    if bias.shape != (kernel.shape[1],):
        raise ValueError(f"`bias` must have shape (fan_out,) = ({kernel.shape[1]},). Received: bias.shape={bias.shape}")
    return np.ascontiguousarray(kernel.T), bias


# ----------------------------------------------------------------------------- metrics and history
def classification_metrics(outputs, y, *, from_logits: bool) -> dict[str, float]:
    r"""Mean cross-entropy and accuracy of class scores, as Keras's ``evaluate`` reports them.

    .. math::

        \text{loss} = -\frac1n \sum_i \log p_{i, y_i}, \qquad
        \text{accuracy} = \frac1n \sum_i [\arg\max_j p_{ij} = y_i],

    with :math:`p = \operatorname{softmax}(z)` for logits, or the given probabilities
    renormalised and clipped to :math:`[10^{-7}, 1 - 10^{-7}]` as Keras does. Computed in
    float64.

    Args:
        outputs: ``(n, k)`` logits (``from_logits=True``) or probabilities.
        y: ``(n,)`` integer class indices in ``[0, k)``.

    Returns:
        ``{"loss": float, "accuracy": float}``.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise ValueError(f"`outputs` must be 2-D (n, n_classes). Received: outputs.shape={outputs.shape}")
    _, y = check_classification_data(outputs, np.asarray(y), n_classes=outputs.shape[1], names=("outputs", "y"))
    rows = np.arange(len(y))
    if from_logits:
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        log_p = shifted[rows, y] - np.log(np.exp(shifted).sum(axis=1))
    else:
        p = np.clip(outputs / outputs.sum(axis=1, keepdims=True), _PROBABILITY_EPSILON, 1 - _PROBABILITY_EPSILON)
        log_p = np.log(p[rows, y])
    return {"loss": float(-log_p.mean()), "accuracy": float(np.mean(outputs.argmax(axis=1) == y))}


def new_history(*, validation: bool, keys=("loss", "accuracy")) -> History:
    """An empty :data:`History` with ``keys`` and, if ``validation``, their ``val_`` twins."""
    return {name: [] for name in [*keys, *([f"val_{k}" for k in keys] if validation else [])]}


def append_epoch(history: History, metrics: dict[str, float]) -> History:
    """Append one epoch's ``metrics`` (a float for each key of ``history``) to ``history``.

    Raises:
        ValueError: ``metrics`` lacks a key of ``history`` or has one it does not.
    """
    if set(metrics) != set(history):
        raise ValueError(f"`metrics` must have the keys {sorted(history)}. Received: keys {sorted(metrics)}")
    for name, value in metrics.items():
        history[name].append(float(value))
    return history


# ----------------------------------------------------------------------------- the two training loops
def torch_outputs(model, inputs, batch_size: int) -> np.ndarray:
    """``model(inputs)`` in evaluation mode, without gradients, in chunks of ``batch_size``, as NumPy."""
    import torch

    batch_size = check_positive_int("batch_size", batch_size)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in inputs.split(batch_size)]).cpu().numpy()


def fit_torch_classifier(model, inputs, labels, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
                         validation=None, on_epoch_end=None) -> History:
    """Train a torch classifier that outputs logits: the loop Keras's ``fit`` runs for you.

    Each epoch draws a permutation of the examples from a ``torch.Generator`` seeded once with
    ``seed``, then for each mini-batch: forward, mean cross-entropy, zero the gradients,
    backward, an Adam step (:func:`torch_adam`). Runs on the device of ``inputs``.

    Args:
        model: a ``torch.nn.Module`` mapping ``inputs[batch]`` to logits ``(b, k)``.
        inputs: a tensor ``(n, ...)`` in the layout ``model`` expects; labels: int64 tensor ``(n,)``.
        epochs, batch_size, learning_rate, seed: checked by the caller (:func:`check_training_args`).
        validation: ``(inputs_val, labels_val)`` tensors, or ``None``.
        on_epoch_end: optional ``f(epoch, logs)``, called after each epoch like a Keras callback.

    Returns:
        A :data:`History` (``val_*`` keys only with ``validation``).
    """
    import torch

    optimizer = torch_adam(model.parameters(), learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = new_history(validation=validation is not None)
    n = len(labels)
    for epoch in range(epochs):
        model.train()
        total_loss, correct = 0.0, 0
        for batch in torch.randperm(n, generator=generator).to(inputs.device).split(batch_size):
            logits = model(inputs[batch])
            loss = torch.nn.functional.cross_entropy(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += (logits.argmax(1) == labels[batch]).sum().item()
        logs = {"loss": total_loss / n, "accuracy": correct / n}
        if validation is not None:
            val_inputs, val_labels = validation
            scores = classification_metrics(torch_outputs(model, val_inputs, 1000), val_labels.cpu().numpy(), from_logits=True)
            logs.update({f"val_{name}": value for name, value in scores.items()})
        append_epoch(history, logs)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
    return history


def fit_keras_classifier(model, x, y, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
                         from_logits: bool, validation_data=None, jit_compile=False, callbacks=()) -> History:
    """Compile ``model`` (Adam with :data:`ADAM_EPSILON`, sparse cross-entropy, accuracy), then ``fit`` it.

    ``fit`` shuffles NumPy arrays with NumPy's global generator, which is seeded with ``seed``
    first (``keras.utils.set_random_seed`` would also do it, but it imports TensorFlow when
    that is installed). Compiling again resets the optimizer's state, not the weights.

    Args:
        model: a ``keras.Model``; x, y, validation_data: checked arrays.
        from_logits: whether the model outputs logits (else probabilities).
        jit_compile: passed to ``model.compile``: ``True``, ``False`` or ``"auto"``.
        callbacks: Keras callbacks passed to ``fit``.

    Returns:
        A :data:`History`: ``History.history`` with float values.
    """
    import keras

    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"`jit_compile` must be True, False or 'auto'. Received: jit_compile={jit_compile!r}")
    model.compile(optimizer=keras_adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"], jit_compile=jit_compile)
    np.random.seed(seed)
    fitted = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                       validation_data=validation_data, callbacks=list(callbacks))
    return {name: [float(v) for v in fitted.history[name]] for name in HISTORY_KEYS if name in fitted.history}


# ----------------------------------------------------------------------------- what each pipeline calls
def _torch_tensors(x, y, device, to_inputs):
    import torch

    inputs = torch.from_numpy(x) if to_inputs is None else to_inputs(x)
    return inputs.to(device), torch.from_numpy(y).to(device)


def train_torch_classifier(model, x, y, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
                           validation_data=None, on_epoch_end=None, check_data=check_classification_data,
                           to_inputs=None) -> History:
    """``train_torch`` of every pipeline: check the arguments, move the data, run :func:`fit_torch_classifier`.

    Args:
        model: a ``torch.nn.Module`` that outputs logits; trained on the device of its parameters.
        x, y: NumPy examples and integer labels, checked by ``check_data(x, y, names=...)``.
        epochs, batch_size, learning_rate, seed: see the module docstring.
        validation_data: ``(x_val, y_val)`` or ``None``.
        on_epoch_end: optional ``f(epoch, logs)``.
        to_inputs: turns a checked ``x`` into the tensor layout ``model`` expects
            (default ``torch.from_numpy``).

    Returns:
        A :data:`History`.
    """
    require_framework(model, "torch")
    x, y = check_data(x, y)
    validation_data = check_validation_data(validation_data, check_data)
    epochs, batch_size, learning_rate, seed = check_training_args(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    device = device_of(model)
    validation = None if validation_data is None else _torch_tensors(*validation_data, device, to_inputs)
    return fit_torch_classifier(model, *_torch_tensors(x, y, device, to_inputs), epochs=epochs, batch_size=batch_size,
                                learning_rate=learning_rate, seed=seed, validation=validation, on_epoch_end=on_epoch_end)


def evaluate_torch_classifier(model, x, y, *, batch_size: int, check_data=check_classification_data,
                              to_inputs=None) -> dict[str, float]:
    """``evaluate_torch`` of every pipeline: :func:`classification_metrics` of the logits ``model(x)``."""
    require_framework(model, "torch")
    x, y = check_data(x, y)
    inputs, _ = _torch_tensors(x, y, device_of(model), to_inputs)
    return classification_metrics(torch_outputs(model, inputs, batch_size), y, from_logits=True)


def train_keras_classifier(model, x, y, *, epochs: int, batch_size: int, learning_rate: float, seed: int,
                           from_logits: bool, validation_data=None, on_epoch_end=None, jit_compile=False,
                           check_data=check_classification_data) -> History:
    """``train_keras`` of every pipeline: check the arguments, then :func:`fit_keras_classifier`.

    ``on_epoch_end(epoch, logs)`` is called after each epoch (through a ``keras.callbacks.LambdaCallback``).
    """
    require_framework(model, "keras")
    x, y = check_data(x, y)
    validation_data = check_validation_data(validation_data, check_data)
    epochs, batch_size, learning_rate, seed = check_training_args(
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    callbacks = []
    if on_epoch_end is not None:
        import keras

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end))
    return fit_keras_classifier(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                seed=seed, from_logits=from_logits, validation_data=validation_data,
                                jit_compile=jit_compile, callbacks=callbacks)


def evaluate_keras_classifier(model, x, y, *, batch_size: int, from_logits: bool,
                              check_data=check_classification_data) -> dict[str, float]:
    """``evaluate_keras`` of every pipeline: :func:`classification_metrics` of ``model.predict(x)``.

    Needs no ``compile``, so an untrained model can be evaluated too; on a compiled model it
    agrees with ``model.evaluate`` to float32 rounding.
    """
    require_framework(model, "keras")
    x, y = check_data(x, y)
    outputs = model.predict(x, batch_size=check_positive_int("batch_size", batch_size), verbose=0)
    return classification_metrics(outputs, y, from_logits=from_logits)
