"""dlnotes.pipelines.image_classifier: the seed CNN in Keras and its plain-PyTorch twin."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import types

import keras
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlnotes.pipelines import common
from dlnotes.pipelines import image_classifier as ic
from tests.helpers import assert_close

# The seed model's parameters from the layer arithmetic (n_in + 1) * n_out, layer by layer:
# Conv2D 3x3x1 -> 32; Dense 13*13*32 -> 128 (after a 26x26 conv map pooled 2x2); Dense 128 -> 10.
CONV, HIDDEN, OUTPUT = (3 * 3 * 1 + 1) * 32, (13 * 13 * 32 + 1) * 128, (128 + 1) * 10
SEED_PARAMS = CONV + HIDDEN + OUTPUT


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    return x, rng.integers(0, 10, 64)


@pytest.fixture(scope="module")
def mnist():
    return ic.load_data(n_train=4500)  # loaded once: reading the offline MNIST takes a few seconds


@pytest.fixture(scope="module")
def mnist_small(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    return x_train[:300], y_train[:300], x_test[:200], y_test[:200]


def keras_model_with_random_weights(seed=0):
    """The Keras seed model with every weight (biases too) drawn at random, so the copy is tested fully."""
    model = ic.build_keras_model()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_seed_model_has_693962_parameters_in_keras_and_torch():
    assert SEED_PARAMS == 693_962
    assert ic.build_keras_model().count_params() == SEED_PARAMS
    assert sum(p.numel() for p in ic.build_torch_model().parameters()) == SEED_PARAMS
    assert ic.layer_param_counts() == {"conv": CONV, "hidden": HIDDEN, "output": OUTPUT}


def test_keras_model_shapes(digits):
    model = ic.build_keras_model()
    assert [layer.__class__.__name__ for layer in model.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert [tuple(layer.output.shape) for layer in model.layers] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 5408), (None, 128), (None, 10)]
    assert [tuple(w.shape) for w in model.get_weights()] == [(3, 3, 1, 32), (32,), (5408, 128), (128,), (128, 10), (10,)]


def test_train_keras_compiles_as_the_seed(digits):
    x, y = digits
    model = ic.build_keras_model()
    ic.train_keras(model, x[:8], y[:8], epochs=1, learning_rate=2e-3)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.optimizer.epsilon == common.ADAM_EPSILON
    assert float(model.optimizer.learning_rate) == pytest.approx(2e-3)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy) and not model.loss.from_logits


@pytest.mark.parametrize("sizes", [
    dict(image_size=20, channels=3, filters=8, kernel_size=5, pool_size=3, hidden=16, n_classes=4),
    dict(image_size=28, channels=1, filters=16, kernel_size=3, pool_size=2, hidden=64, n_classes=10),
    dict(image_size=9, channels=2, filters=5, kernel_size=2, pool_size=4, hidden=7, n_classes=3),
])
def test_layer_param_counts_match_keras_for_other_sizes(sizes):
    s = sizes
    model = keras.Sequential([
        keras.Input((s["image_size"], s["image_size"], s["channels"])),
        keras.layers.Conv2D(s["filters"], s["kernel_size"]),
        keras.layers.MaxPooling2D(s["pool_size"]),
        keras.layers.Flatten(),
        keras.layers.Dense(s["hidden"]),
        keras.layers.Dense(s["n_classes"]),
    ])
    keras_counts = [layer.count_params() for layer in model.layers if layer.count_params()]
    assert list(ic.layer_param_counts(**sizes).values()) == keras_counts


def test_torch_twin_with_copied_keras_weights_gives_the_same_predictions(digits):
    x, _ = digits
    keras_model, torch_model = keras_model_with_random_weights(), ic.build_torch_model()
    ic.copy_keras_weights(keras_model, torch_model)
    expected = keras.ops.convert_to_numpy(keras_model(x))
    received = ic.predict_torch(torch_model, x)
    assert_close("probabilities", received, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(received.argmax(1), expected.argmax(1))


def test_copy_without_the_flatten_permutation_would_not_match(digits):
    """The (h, w, c) -> (c, h, w) row permutation in copy_keras_weights is needed: a naive copy differs."""
    x, _ = digits
    keras_model, torch_model = keras_model_with_random_weights(), ic.build_torch_model()
    ic.copy_keras_weights(keras_model, torch_model)
    with torch.no_grad():
        torch_model[4].weight.copy_(torch.from_numpy(keras_model.get_weights()[2].T.copy()))
    expected = keras.ops.convert_to_numpy(keras_model(x))
    assert np.abs(ic.predict_torch(torch_model, x) - expected).max() > 1e-3


def test_gradients_agree_after_copying_weights(digits):
    """One loss, both frameworks: the dense-kernel gradients agree once mapped back to Keras's layout."""
    x, y = digits
    keras_model, torch_model = keras_model_with_random_weights(1), ic.build_torch_model()
    ic.copy_keras_weights(keras_model, torch_model)
    loss = keras.losses.SparseCategoricalCrossentropy()(y, keras_model(x))
    loss.backward()
    keras_grad = keras_model.layers[3].kernel.value.grad.numpy()  # (5408, 128), rows in (h, w, c) order
    torch_loss = torch.nn.functional.cross_entropy(torch_model(ic.torch_images(x)), torch.from_numpy(y))
    torch_loss.backward()
    torch_grad = torch_model[4].weight.grad.numpy().T.reshape(32, 13, 13, 128).transpose(1, 2, 0, 3).reshape(5408, 128)
    assert torch_loss.item() == pytest.approx(loss.item(), rel=1e-5)
    assert_close("dense kernel gradient", torch_grad, keras_grad, rtol=1e-4, atol=1e-6)


def test_torch_model_uses_keras_initialisers():
    torch.manual_seed(0)
    model = ic.build_torch_model()
    for layer, fan_in, fan_out in [(model[0], 9, 9 * 32), (model[4], 5408, 128), (model[6], 128, 10)]:
        limit = np.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max().item() <= limit
        assert layer.weight.abs().max().item() > 0.9 * limit
        assert not layer.bias.any()


def test_torch_images_is_channels_first_with_the_same_pixels(digits):
    x, _ = digits
    images = ic.torch_images(x)
    assert tuple(images.shape) == (64, 1, 28, 28)
    np.testing.assert_array_equal(images[:, 0].numpy(), x[..., 0])


def test_prepare_images_adds_the_channel_axis_and_scales_uint8():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    scaled = ic.prepare_images(raw)
    assert scaled.shape == (5, 28, 28, 1) and scaled.dtype == np.float32
    np.testing.assert_allclose(scaled[..., 0], raw / 255.0, rtol=1e-6)
    floats = raw.astype(np.float64) / 255
    np.testing.assert_allclose(ic.prepare_images(floats)[..., 0], floats, rtol=1e-6)
    np.testing.assert_array_equal(ic.prepare_images(scaled), scaled)


def test_load_data_shapes_and_ranges(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (4500, 28, 28, 1) and x_test.shape == (500, 28, 28, 1)
    assert y_train.shape == (4500,) and y_test.shape == (500,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(y_train)) == set(range(10))


def test_train_torch_learns_and_reports_per_epoch(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    torch.manual_seed(0)
    model = ic.build_torch_model()
    seen = []
    history = ic.train_torch(model, x_train, y_train, epochs=3, on_epoch_end=lambda epoch, logs: seen.append((epoch, logs)))
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert [logs["loss"] for _, logs in seen] == history["loss"]
    assert history["loss"][2] < history["loss"][1] < history["loss"][0]
    assert ic.evaluate_torch(model, x_test, y_test)["accuracy"] > 0.5  # chance is 0.1


def test_train_torch_is_reproducible(mnist_small):
    x_train, y_train, _, _ = mnist_small
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(ic.train_torch(ic.build_torch_model(), x_train[:96], y_train[:96], epochs=1, seed=5))
    assert runs[0] == runs[1]


def test_train_keras_learns_and_reports_validation(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    model = ic.build_keras_model()
    history = ic.train_keras(model, x_train, y_train, epochs=2, validation_data=(x_test, y_test))
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 2 for v in history.values())
    final = ic.evaluate_keras(model, x_test, y_test)
    assert final["accuracy"] > 0.5  # two epochs on 300 images; chance is 0.1
    assert history["val_accuracy"][-1] == pytest.approx(final["accuracy"], abs=1e-7)
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)


def test_keras_model_and_torch_twin_train_alike(digits):
    """Copied weights, one full batch per epoch (the shuffling order cannot matter), the same Adam.

    The first epoch's loss is the loss before any step: equal to ~1e-5 (float32). Later ones
    differ by a few 1e-4 relative, not by chance: Keras adds epsilon to sqrt(v) before the bias
    correction, so at step 1 its effective epsilon is 1e-7 / sqrt(1 - 0.999) ~ 3e-6, and many of
    the 692,352 dense weights have gradients of that size (on an MLP with larger gradients the
    two agree to ~1e-5, tests/pipelines/test_frameworks.py).
    """
    x, y = digits
    keras_model, torch_model = keras_model_with_random_weights(2), ic.build_torch_model()
    keras_model.set_weights([w * 0.3 for w in keras_model.get_weights()])  # a trainable start, not saturated
    ic.copy_keras_weights(keras_model, torch_model)
    settings = dict(epochs=3, batch_size=64, learning_rate=1e-3, seed=0)
    k_hist, t_hist = ic.train_keras(keras_model, x, y, **settings), ic.train_torch(torch_model, x, y, **settings)
    assert k_hist["loss"][0] == pytest.approx(t_hist["loss"][0], rel=1e-5)
    np.testing.assert_allclose(k_hist["loss"], t_hist["loss"], rtol=2e-3)
    assert k_hist["loss"][-1] < k_hist["loss"][0] and t_hist["loss"][-1] < t_hist["loss"][0]


def test_evaluate_keras_matches_model_evaluate(digits):
    x, y = digits
    model = keras_model_with_random_weights()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    reference = model.evaluate(x, y, verbose=0, return_dict=True)
    ours = ic.evaluate_keras(model, x, y, batch_size=16)
    assert ours["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    assert ours["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-7)


@given(hnp.arrays(np.int64, st.integers(1, 60), elements=st.integers(0, 4)), st.randoms(use_true_random=False))
def test_confusion_matrix_matches_sklearn(y_true, rnd):
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y_pred = np.array([rnd.randrange(5) for _ in y_true], dtype=np.int64)
    ours = ic.confusion_matrix(y_true, y_pred, n_classes=5)
    np.testing.assert_array_equal(ours, sk_confusion_matrix(y_true, y_pred, labels=range(5)))
    assert ours.sum() == len(y_true)


def test_confusion_matrix_of_no_examples_is_zero():
    empty = np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(ic.confusion_matrix(empty, empty, 3), np.zeros((3, 3), dtype=np.int64))


def test_seed_listing_runs_unchanged_on_keras_3(monkeypatch, mnist_small):
    """The outline's tf.keras code, executed as is with ``tf.keras`` pointing at Keras 3."""
    x_train, y_train, x_test, y_test = mnist_small
    monkeypatch.setitem(__import__("sys").modules, "tensorflow", types.SimpleNamespace(keras=keras))
    namespace = dict(x_train=x_train[:32], y_train=y_train[:32], x_test=x_test[:32], y_test=y_test[:32])
    with pytest.warns(UserWarning, match="input_shape"):
        exec(compile(ic.SEED_LISTING, "seed_listing", "exec"), namespace)
    assert namespace["model"].count_params() == SEED_PARAMS
    assert [type(a).__name__ for a in namespace["model"].layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]


# ----- bad input: every public function names the argument and echoes the value -----

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(filters=0), ValueError, "filters=0"),
    (dict(kernel_size=2.5), ValueError, "kernel_size=2.5"),
    (dict(hidden=True), ValueError, "hidden=True"),
    (dict(image_size=3), ValueError, "image_size=3"),
])
def test_layer_param_counts_rejects_bad_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        ic.layer_param_counts(**kwargs)


@pytest.mark.parametrize("images, error, match", [
    ([[0.0] * 28] * 28, TypeError, "list"),
    (np.zeros((2, 28, 28), np.int64), TypeError, "int64"),
    (np.zeros((2, 32, 32)), ValueError, r"\(2, 32, 32\)"),
    (np.zeros((2, 28, 28, 3)), ValueError, r"\(2, 28, 28, 3\)"),
    (np.full((2, 28, 28), 255.0), ValueError, "255"),
    (np.full((1, 28, 28), np.nan), ValueError, "nan"),
])
def test_prepare_images_rejects_bad_input(images, error, match):
    with pytest.raises(error, match=match):
        ic.prepare_images(images)


def test_load_data_rejects_bad_arguments():
    with pytest.raises(TypeError, match="full='yes'"):
        ic.load_data(full="yes")
    with pytest.raises(ValueError, match="n_train=0"):
        ic.load_data(n_train=0)


def test_train_keras_rejects_bad_input(digits):
    x, y = digits
    model = ic.build_keras_model()
    with pytest.raises(ValueError, match="epochs=0"):
        ic.train_keras(model, x, y, epochs=0)
    with pytest.raises(ValueError, match="learning_rate=-1"):
        ic.train_keras(model, x, y, learning_rate=-1)
    with pytest.raises(ValueError, match=r"x shape=\(64, 28, 28\)"):
        ic.train_keras(model, x[..., 0], y)
    with pytest.raises(ValueError, match=r"y.shape=\(63,\)"):
        ic.train_keras(model, x, y[:-1])
    with pytest.raises(ValueError, match=r"validation_data\[0\] shape=\(64, 28, 28\)"):
        ic.train_keras(model, x, y, validation_data=(x[..., 0], y))
    with pytest.raises(TypeError, match="model of type Sequential"):
        ic.train_keras(ic.build_torch_model(), x, y)


def test_train_torch_rejects_bad_input(digits):
    x, y = digits
    model = ic.build_torch_model()
    with pytest.raises(ValueError, match="batch_size=-1"):
        ic.train_torch(model, x, y, batch_size=-1)
    with pytest.raises(ValueError, match="y.max\\(\\)=10"):
        ic.train_torch(model, x, np.where(y == 0, 10, y))
    with pytest.raises(TypeError, match="y of type list"):
        ic.train_torch(model, x, list(y))
    with pytest.raises(ValueError, match="float64"):
        ic.train_torch(model, x.astype(np.float64), y)
    with pytest.raises(ValueError, match=r"x.shape=\(0, 28, 28, 1\)"):
        ic.train_torch(model, x[:0], y[:0])
    with pytest.raises(ValueError, match=r"validation_data\[1\].max\(\)=10"):
        ic.train_torch(model, x, y, validation_data=(x, np.full_like(y, 10)))
    with pytest.raises(ValueError, match="seed=-3"):
        ic.train_torch(model, x, y, seed=-3)


def test_predict_evaluate_and_torch_images_reject_bad_input(digits):
    x, y = digits
    model = ic.build_torch_model()
    with pytest.raises(ValueError, match="batch_size=0"):
        ic.predict_torch(model, x, batch_size=0)
    with pytest.raises(ValueError, match=r"shape=\(64, 1, 28, 28\)"):
        ic.predict_torch(model, x.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"y.shape=\(64, 1\)"):
        ic.evaluate_torch(model, x, y[:, None])
    with pytest.raises(ValueError, match="batch_size=0"):
        ic.evaluate_keras(ic.build_keras_model(), x, y, batch_size=0)
    with pytest.raises(ValueError, match="type Tensor"):
        ic.torch_images(torch.zeros(2, 28, 28, 1))


def test_copy_keras_weights_rejects_other_models():
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"shapes=\[\(4, 2\), \(2,\)\]"):
        ic.copy_keras_weights(small, ic.build_torch_model())
    with pytest.raises(ValueError, match="Linear"):
        ic.copy_keras_weights(ic.build_keras_model(), torch.nn.Sequential(torch.nn.Linear(3, 2)))


@pytest.mark.parametrize("y_true, y_pred, n_classes, error, match", [
    ([0, 1], np.array([0, 1]), 10, TypeError, "y_true of list"),
    (np.array([0.0, 1.0]), np.array([0, 1]), 10, TypeError, "float64"),
    (np.array([0, 1]), np.array([0, 1, 2]), 10, ValueError, r"y_pred.shape=\(3,\)"),
    (np.array([0, 12]), np.array([0, 1]), 10, ValueError, r"y_true in \[0, 12\]"),
    (np.array([0, 1]), np.array([0, 1]), 0, ValueError, "n_classes=0"),
])
def test_confusion_matrix_rejects_bad_input(y_true, y_pred, n_classes, error, match):
    with pytest.raises(error, match=match):
        ic.confusion_matrix(y_true, y_pred, n_classes)
