r"""The course's first image classifier: one small CNN in Keras 3 and in plain PyTorch.

Taught in: *Image classification with Keras* (``book/projects/image_classifier.ipynb``);
benchmarked across frameworks in *Choosing a framework*
(``book/faq/choosing_a_framework.ipynb``, via :mod:`dlnotes.pipelines.framework_bench`).

The model is the seed outline's section 5.1 network for 28x28 grey-scale digits:

.. math::

    x \in \mathbb{R}^{28 \times 28 \times 1}
    \xrightarrow{\text{Conv2D } 32 @ 3\times 3,\ \mathrm{ReLU}} \mathbb{R}^{26 \times 26 \times 32}
    \xrightarrow{\text{MaxPool } 2\times 2} \mathbb{R}^{13 \times 13 \times 32}
    \xrightarrow{\text{Flatten}} \mathbb{R}^{5408}
    \xrightarrow{\text{Dense } 128,\ \mathrm{ReLU}} \mathbb{R}^{128}
    \xrightarrow{\text{Dense } 10,\ \mathrm{softmax}} \Delta^{9},

trained with Adam on the sparse categorical cross-entropy. Keras keeps images
channels-last ``(n, 28, 28, 1)``; PyTorch wants channels-first ``(n, 1, 28, 28)``. The
two also flatten in a different order, which :func:`copy_keras_weights` accounts for.

The functions follow the pipeline API of :mod:`dlnotes.pipelines.common`: ``build_*`` ->
model, ``train_*(model, x, y, *, epochs, batch_size, learning_rate, seed, validation_data)``
-> ``History``, ``evaluate_*(model, x, y, *, batch_size)`` -> ``{"loss", "accuracy"}``.

torch and keras are imported inside the functions that need them, so a TensorFlow or
JAX process can build the Keras model without importing torch.
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_positive_int
from dlnotes.pipelines import common
from dlnotes.pipelines.common import History

__all__ = [
    "SEED_LISTING",
    "IMAGE_SHAPE",
    "N_CLASSES",
    "layer_param_counts",
    "prepare_images",
    "load_data",
    "build_keras_model",
    "train_keras",
    "evaluate_keras",
    "build_torch_model",
    "copy_keras_weights",
    "torch_images",
    "train_torch",
    "predict_torch",
    "evaluate_torch",
    "confusion_matrix",
]

IMAGE_SHAPE = (28, 28, 1)
N_CLASSES = 10

# The seed outline's listing (section 5.1), code unchanged; its Chinese comments translated.
SEED_LISTING = """\
# Import the TensorFlow library
import tensorflow as tf

# Define the model
model = tf.keras.models.Sequential([
  tf.keras.layers.Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)),
  tf.keras.layers.MaxPooling2D((2, 2)),
  tf.keras.layers.Flatten(),
  tf.keras.layers.Dense(128, activation='relu'),
  tf.keras.layers.Dense(10, activation='softmax')
])

# Compile the model
model.compile(optimizer='adam',
              loss='sparse_categorical_crossentropy',
              metrics=['accuracy'])

# Train the model
model.fit(x_train, y_train, epochs=5)

# Evaluate the model
model.evaluate(x_test, y_test)
"""


def _check_images(x, name: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        got = f"shape={x.shape}, dtype={x.dtype}" if isinstance(x, np.ndarray) else f"type {type(x).__name__}"
        raise ValueError(f"`{name}` must be a float32 array of shape (n, 28, 28, 1) (see prepare_images). Received: {name} {got}")
    if len(x) == 0:
        raise ValueError(f"`{name}` must hold at least one image. Received: {name}.shape=(0, 28, 28, 1)")
    return x


def _check_xy(x, y, names=("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    """Images as :func:`prepare_images` makes them, and one class index in ``[0, 10)`` per image."""
    return common.check_classification_data(_check_images(x, names[0]), y, n_classes=N_CLASSES, names=names)


def layer_param_counts(image_size: int = 28, channels: int = 1, filters: int = 32, kernel_size: int = 3,
                       pool_size: int = 2, hidden: int = 128, n_classes: int = N_CLASSES) -> dict[str, int]:
    r"""Trainable parameters of each layer of the seed model, by the layer arithmetic.

    .. math::

        P_\text{conv} = (k^2 c + 1) f, \quad
        s = \lfloor (S - k + 1) / p \rfloor, \quad
        P_\text{hidden} = (s^2 f + 1) h, \quad
        P_\text{out} = (h + 1) K .

    With the defaults (the seed model): 320 + 692,352 + 1,290 = 693,962, what Keras's
    ``model.count_params()`` reports. Pooling and flattening have no parameters.

    Returns:
        ``{"conv": P_conv, "hidden": P_hidden, "output": P_out}``.

    Raises:
        ValueError: a size is not a positive integer, or the image is too small for the
            kernel and pooling window.
    """
    sizes = dict(image_size=image_size, channels=channels, filters=filters, kernel_size=kernel_size,
                 pool_size=pool_size, hidden=hidden, n_classes=n_classes)
    S, c, f, k, p, h, K = (check_positive_int(name, value) for name, value in sizes.items())
    side = (S - k + 1) // p
    if side < 1:
        raise ValueError(f"`image_size` is too small for kernel {k} and pooling {p}. Received: image_size={S}")
    return {"conv": (k * k * c + 1) * f, "hidden": (side * side * f + 1) * h, "output": (h + 1) * K}


def prepare_images(images) -> np.ndarray:
    """Add the channel axis Keras's ``Conv2D`` expects: ``(n, 28, 28)`` -> ``(n, 28, 28, 1)`` float32.

    Args:
        images: grey-scale digits of shape ``(n, 28, 28)`` or ``(n, 28, 28, 1)``, either
            floats in ``[0, 1]`` (what :func:`dlnotes.data.load_mnist` returns) or uint8
            in ``[0, 255]`` (divided by 255).

    Returns:
        A new float32 array of shape ``(n, 28, 28, 1)`` with values in ``[0, 1]``.

    Raises:
        TypeError: ``images`` is not a NumPy array of numbers.
        ValueError: wrong shape, or float values outside ``[0, 1]``.
    """
    if not isinstance(images, np.ndarray) or not (np.issubdtype(images.dtype, np.floating) or images.dtype == np.uint8):
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"`images` must be a float or uint8 NumPy array. Received: images of {got}")
    if images.ndim not in (3, 4) or images.shape[1:3] != (28, 28) or (images.ndim == 4 and images.shape[3] != 1):
        raise ValueError(f"`images` must have shape (n, 28, 28) or (n, 28, 28, 1). Received: images.shape={images.shape}")
    if images.dtype == np.uint8:
        return (images.astype(np.float32) / np.float32(255.0)).reshape(-1, *IMAGE_SHAPE)
    if images.size and not (np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0):
        raise ValueError(f"`images` must be scaled to [0, 1]. Received: values in [{images.min()}, {images.max()}]")
    return images.astype(np.float32).reshape(-1, *IMAGE_SHAPE)


def load_data(full: bool = False, *, n_train: int = 4000, seed: int = 0):
    """MNIST ready for the classifier: ``(x_train, y_train), (x_test, y_test)``.

    :func:`dlnotes.data.load_mnist` (offline 4,000/1,000 split by default, the official
    60,000/10,000 with ``full=True``) followed by :func:`prepare_images`.

    Returns:
        Images float32 of shape ``(n, 28, 28, 1)`` in ``[0, 1]``; labels int64 of shape ``(n,)``.

    Raises:
        TypeError, ValueError: as :func:`dlnotes.data.load_mnist`.
    """
    from dlnotes import data

    (x_train, y_train), (x_test, y_test) = data.load_mnist(full, n_train=n_train, seed=seed)
    return (prepare_images(x_train), y_train), (prepare_images(x_test), y_test)


def build_keras_model():
    """The seed's model in Keras 3.

    The only change from the seed listing: the input shape is given by a ``keras.Input``
    layer, since Keras 3 warns when a layer gets ``input_shape=``. :func:`train_keras` compiles
    it as the seed does (Adam, sparse categorical cross-entropy, accuracy).

    Returns:
        A ``keras.Sequential``: inputs ``(n, 28, 28, 1)``, softmax outputs ``(n, 10)``,
        693,962 parameters.
    """
    import keras

    return keras.Sequential([
        keras.Input(shape=IMAGE_SHAPE),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def train_keras(model, x, y, *, epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0,
                validation_data=None, on_epoch_end=None, jit_compile=False) -> History:
    """Compile ``model`` as the seed does and fit it: ``model.compile`` + ``model.fit``.

    See :func:`dlnotes.pipelines.common.fit_keras_classifier` (Adam with ``learning_rate``,
    sparse categorical cross-entropy on the softmax outputs, accuracy).

    Args:
        model: from :func:`build_keras_model`.
        x: float32 ``(n, 28, 28, 1)``; y: int ``(n,)`` class indices.
        epochs, batch_size, learning_rate: the seed's 5 epochs, Keras's default batch of 32, Adam's 1e-3.
        seed: seeds the shuffling.
        validation_data: ``(x_val, y_val)``, evaluated after each epoch, or ``None``.
        on_epoch_end: optional ``f(epoch, logs)`` (the benchmark times epochs with it).
        jit_compile: passed to ``model.compile``: ``False`` (default, eager), ``True`` (XLA on
            TensorFlow and JAX, ``torch.compile`` on PyTorch) or ``"auto"``.

    Returns:
        A :data:`~dlnotes.pipelines.common.History`: ``loss``, ``accuracy`` (and ``val_*``) per epoch.

    Raises:
        ValueError, TypeError: bad arrays or sizes, naming the argument.
    """
    return common.train_keras_classifier(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                         seed=seed, from_logits=False, validation_data=validation_data,
                                         on_epoch_end=on_epoch_end, jit_compile=jit_compile, check_data=_check_xy)


def evaluate_keras(model, x, y, *, batch_size: int = 256) -> dict[str, float]:
    """Test loss and accuracy of the Keras model, ``{"loss", "accuracy"}``, as ``model.evaluate`` reports them."""
    return common.evaluate_keras_classifier(model, x, y, batch_size=batch_size, from_logits=False, check_data=_check_xy)


def build_torch_model():
    """The same network in plain PyTorch: ``torch.nn.Sequential``, Keras's initialisers.

    Takes channels-first ``(n, 1, 28, 28)`` images and returns *logits* ``(n, 10)``: the
    softmax is left to the loss (``cross_entropy``) and to :func:`predict_torch`, the
    numerically safer PyTorch habit. Kernels are Glorot-uniform and biases zero, like
    Keras's ``Conv2D``/``Dense`` defaults (PyTorch's own default is Kaiming-uniform).

    Returns:
        ``torch.nn.Sequential`` with 693,962 parameters, float32, on the CPU.
    """
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(13 * 13 * 32, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )
    with torch.no_grad():
        for layer in (model[0], model[4], model[6]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def copy_keras_weights(keras_model, torch_model) -> None:
    r"""Copy a :func:`build_keras_model`'s weights into a :func:`build_torch_model`, in place.

    Keras and PyTorch store the same numbers in different layouts:

    - conv kernel: Keras ``(3, 3, 1, 32)`` (height, width, in, out); torch ``(32, 1, 3, 3)``;
    - dense kernel: Keras ``(fan_in, fan_out)``; torch ``nn.Linear.weight`` ``(fan_out, fan_in)``
      (:func:`dlnotes.pipelines.common.keras_dense_to_torch_linear`);
    - flatten: Keras flattens ``(13, 13, 32)`` channels-last, torch flattens ``(32, 13, 13)``,
      so the first dense kernel's rows are permuted from ``(h, w, c)`` to ``(c, h, w)`` order.

    Raises:
        ValueError: the models do not have the seed architecture.
    """
    import torch

    weights = keras_model.get_weights()
    shapes = [tuple(w.shape) for w in weights]
    expected = [(3, 3, 1, 32), (32,), (5408, 128), (128,), (128, 10), (10,)]
    if shapes != expected:
        raise ValueError(f"`keras_model` must be the seed model (weight shapes {expected}). Received: shapes={shapes}")
    if not isinstance(torch_model, torch.nn.Sequential) or [tuple(p.shape) for p in torch_model.parameters()] != [
            (32, 1, 3, 3), (32,), (128, 5408), (128,), (10, 128), (10,)]:
        raise ValueError(f"`torch_model` must come from build_torch_model(). Received: torch_model={torch_model!r}")
    conv_k, conv_b, dense_k, dense_b, out_k, out_b = weights
    dense_k = dense_k.reshape(13, 13, 32, 128).transpose(2, 0, 1, 3).reshape(5408, 128)  # (h, w, c) -> (c, h, w) rows
    pairs = [(conv_k.transpose(3, 2, 0, 1), conv_b),  # (kh, kw, in, out) -> (out, in, kh, kw)
             common.keras_dense_to_torch_linear(dense_k, dense_b),
             common.keras_dense_to_torch_linear(out_k, out_b)]
    with torch.no_grad():
        for layer, (kernel, bias) in zip((torch_model[0], torch_model[4], torch_model[6]), pairs):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            layer.bias.copy_(torch.from_numpy(bias))


def torch_images(x, device=None):
    """Keras-layout images ``(n, 28, 28, 1)`` -> a channels-first tensor ``(n, 1, 28, 28)``.

    Args:
        x: float32 NumPy array of shape ``(n, 28, 28, 1)`` (from :func:`prepare_images`).
        device: a ``torch.device`` or name; ``None`` keeps it on the CPU.

    Raises:
        ValueError: ``x`` is not a non-empty float32 array of shape ``(n, 28, 28, 1)``.
    """
    import torch

    return torch.from_numpy(_check_images(x)).permute(0, 3, 1, 2).contiguous().to(device)


def train_torch(model, x, y, *, epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0,
                validation_data=None, on_epoch_end=None) -> History:
    """Train the PyTorch twin the way ``model.fit`` trains the Keras model: the explicit loop.

    The loop is :func:`dlnotes.pipelines.common.fit_torch_classifier`: each epoch shuffles the
    data and takes Adam steps (``learning_rate``, betas (0.9, 0.999), Keras's epsilon
    :data:`~dlnotes.pipelines.common.ADAM_EPSILON`) on the mean cross-entropy of each
    mini-batch. Runs on the device of the model's parameters.

    Args:
        model: from :func:`build_torch_model`.
        x, y, epochs, batch_size, learning_rate, seed, validation_data, on_epoch_end: as :func:`train_keras`.

    Returns:
        A :data:`~dlnotes.pipelines.common.History`, like ``History.history``.

    Raises:
        ValueError, TypeError: bad arrays or sizes, naming the argument.
    """
    return common.train_torch_classifier(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                         seed=seed, validation_data=validation_data, on_epoch_end=on_epoch_end,
                                         check_data=_check_xy, to_inputs=torch_images)


def predict_torch(model, x, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``softmax(model(x))``, like Keras's ``model.predict``.

    Args:
        x: float32 ``(n, 28, 28, 1)``.

    Returns:
        float32 array of shape ``(n, 10)``; rows sum to 1.

    Raises:
        ValueError: bad ``x`` or ``batch_size``.
    """
    import torch

    batch_size = check_positive_int("batch_size", batch_size)
    images = torch_images(x, next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        probs = [torch.softmax(model(chunk), dim=1) for chunk in images.split(batch_size)]
    return torch.cat(probs).cpu().numpy()


def evaluate_torch(model, x, y, *, batch_size: int = 256) -> dict[str, float]:
    """Test loss and accuracy of the PyTorch model, ``{"loss", "accuracy"}``, like Keras's ``model.evaluate``.

    Raises:
        ValueError, TypeError: bad arrays or ``batch_size``.
    """
    return common.evaluate_torch_classifier(model, x, y, batch_size=batch_size, check_data=_check_xy,
                                            to_inputs=torch_images)


def confusion_matrix(y_true, y_pred, n_classes: int = N_CLASSES) -> np.ndarray:
    """Counts ``C[i, j]`` of examples of class ``i`` predicted as class ``j``.

    Matches ``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=range(n_classes))``.

    Args:
        y_true, y_pred: integer arrays of shape ``(n,)`` with values in ``[0, n_classes)``.

    Returns:
        int64 array of shape ``(n_classes, n_classes)``; row sums are the class counts.

    Raises:
        TypeError, ValueError: not integer arrays of the same 1-D shape, or labels out of range.
    """
    n_classes = check_positive_int("n_classes", n_classes)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
            got = labels.dtype if isinstance(labels, np.ndarray) else type(labels).__name__
            raise TypeError(f"`{name}` must be an integer NumPy array. Received: {name} of {got}")
        if labels.ndim != 1 or labels.shape != np.shape(y_true):
            raise ValueError(f"`{name}` must be 1-D and as long as `y_true`. Received: {name}.shape={labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"`{name}` must be in [0, {n_classes}). Received: {name} in [{labels.min()}, {labels.max()}]")
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts
