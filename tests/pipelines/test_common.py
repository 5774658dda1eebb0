"""dlnotes.pipelines.common: the one pipeline API (argument checks, Adam, metrics, History, loops)."""

import os
import random

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dlnotes.pipelines import common, frameworks, image_classifier
from tests.helpers import assert_close

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int64")
    return (3.0 * np.eye(3, 6)[y] + 0.3 * rng.standard_normal((n, 6))).astype("float32"), y


def small_torch_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


# ----------------------------------------------------------------------------- Adam
def test_one_adam_epsilon_on_both_sides():
    assert common.ADAM_EPSILON == 1e-7 == keras.optimizers.Adam().epsilon  # Keras's default
    params = [torch.nn.Parameter(torch.zeros(2))]
    torch_opt = common.torch_adam(params, 0.01)
    assert torch_opt.defaults["eps"] == common.ADAM_EPSILON and torch_opt.defaults["lr"] == 0.01
    assert torch_opt.defaults["betas"] == (0.9, 0.999)
    keras_opt = common.keras_adam(0.01)
    assert keras_opt.epsilon == common.ADAM_EPSILON and float(keras_opt.learning_rate) == pytest.approx(0.01)
    assert (keras_opt.beta_1, keras_opt.beta_2) == (0.9, 0.999)


def test_every_pipeline_trains_with_the_common_adam(monkeypatch):
    """The torch loops build their optimizer with torch_adam, the Keras ones with keras_adam."""
    made = []
    monkeypatch.setattr(common, "torch_adam", lambda p, lr: made.append("torch") or torch.optim.Adam(p, lr=lr, eps=1e-7))
    monkeypatch.setattr(common, "keras_adam", lambda lr: made.append("keras") or keras.optimizers.Adam(lr, epsilon=1e-7))
    x, y = blobs(16)
    frameworks.train_torch(frameworks.build_torch_model((6,), 4, 3), x, y, epochs=1)
    frameworks.train_keras(frameworks.build_keras_model((6,), 4, 3), x, y, epochs=1)
    images, labels = np.zeros((4, 28, 28, 1), "float32"), np.arange(4)
    image_classifier.train_torch(image_classifier.build_torch_model(), images, labels, epochs=1)
    image_classifier.train_keras(image_classifier.build_keras_model(), images, labels, epochs=1)
    assert made == ["torch", "keras", "torch", "keras"]


# ----------------------------------------------------------------------------- metrics
@given(arrays(np.float64, (7, 4), elements=st.floats(-20, 20)), st.lists(st.integers(0, 3), min_size=7, max_size=7))
def test_classification_metrics_from_logits_match_torch(logits, labels):
    y = np.array(labels)
    ours = common.classification_metrics(logits, y, from_logits=True)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item()
    assert ours["loss"] == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert ours["accuracy"] == np.mean(logits.argmax(1) == y)


def test_classification_metrics_from_probabilities_match_keras():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=50).astype("float32")
    probs[0] = [1, 0, 0, 0, 0]  # a zero probability for the true class below: Keras clips it
    y = rng.integers(0, 5, 50)
    y[0] = 3
    expected = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, probs)).mean()
    ours = common.classification_metrics(probs, y, from_logits=False)
    assert ours["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert ours["accuracy"] == pytest.approx(float(keras.metrics.SparseCategoricalAccuracy()(y, probs)), abs=1e-7)


def test_classification_metrics_reject_bad_input():
    with pytest.raises(ValueError, match=r"outputs.shape=\(3,\)"):
        common.classification_metrics(np.zeros(3), np.zeros(3, int), from_logits=True)
    with pytest.raises(ValueError, match=r"y.max\(\)=3"):
        common.classification_metrics(np.zeros((2, 3)), np.array([0, 3]), from_logits=True)


# ----------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=0), ValueError, "epochs=0"),
    (dict(epochs=2.0), ValueError, "epochs=2.0"),
    (dict(batch_size=True), ValueError, "batch_size=True"),
    (dict(learning_rate=-0.1), ValueError, "learning_rate=-0.1"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate=nan"),
    (dict(seed=-1), ValueError, "seed=-1"),
    (dict(seed="0"), TypeError, "seed='0'"),
])
def test_check_training_args_names_the_argument(kwargs, error, match):
    args = dict(epochs=1, batch_size=1, learning_rate=1e-3, seed=0) | kwargs
    with pytest.raises(error, match=match):
        common.check_training_args(**args)


def test_check_training_args_returns_clean_types():
    assert common.check_training_args(epochs=np.int64(2), batch_size=3, learning_rate=1, seed=np.int32(4)) == (2, 3, 1.0, 4)


def test_check_classification_data_converts_and_rejects():
    x, y = common.check_classification_data(np.zeros((2, 3), "float64"), np.array([0, 1], "int32"))
    assert (x.dtype, y.dtype) == (np.float32, np.int64)
    with pytest.raises(TypeError, match="x of type list"):
        common.check_classification_data([[0.0]], np.zeros(1, int))
    with pytest.raises(TypeError, match="y of dtype float64"):
        common.check_classification_data(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"x.shape=\(0, 3\)"):
        common.check_classification_data(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"y.min\(\)=-1"):
        common.check_classification_data(np.zeros((2, 3)), np.array([-1, 0]), n_classes=2)


def test_check_validation_data_names_the_argument():
    assert common.check_validation_data(None) is None
    x_val, y_val = common.check_validation_data((np.zeros((2, 3)), np.array([0, 1])))
    assert x_val.dtype == np.float32 and y_val.tolist() == [0, 1]
    with pytest.raises(TypeError, match="validation_data of type tuple"):
        common.check_validation_data((np.zeros((2, 3)),))
    with pytest.raises(TypeError, match=r"validation_data\[1\] of dtype float64"):
        common.check_validation_data((np.zeros((2, 3)), np.zeros(2)))


def test_framework_of_and_require_framework():
    keras_model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert isinstance(keras_model, torch.nn.Module)  # on the torch backend, and still "keras"
    assert common.framework_of(keras_model) == "keras"
    assert common.framework_of(torch.nn.Linear(2, 1)) == "torch"
    with pytest.raises(TypeError, match="net of type int"):
        common.framework_of(3, "net")
    with pytest.raises(TypeError, match=r"must be a torch.nn.Module \(not a Keras model\)"):
        common.require_framework(keras_model, "torch")
    with pytest.raises(ValueError, match="without parameters"):
        common.device_of(torch.nn.ReLU())


# ----------------------------------------------------------------------------- weights
def test_one_weight_transpose():
    assert frameworks.keras_dense_to_torch_linear is common.keras_dense_to_torch_linear
    kernel, bias = np.arange(6.0).reshape(2, 3), np.ones(3)
    weight, bias_t = common.keras_dense_to_torch_linear(kernel, bias)
    x = np.array([[1.0, -2.0]])
    assert_close("Dense vs Linear", torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(weight),
                                                               torch.from_numpy(bias_t)), x @ kernel + bias,
                 rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------- History
def test_history_helpers():
    history = common.new_history(validation=True)
    assert list(history) == list(common.HISTORY_KEYS)
    common.append_epoch(history, {"loss": 1, "accuracy": 0.5, "val_loss": 2, "val_accuracy": 0.25})
    assert history == {"loss": [1.0], "accuracy": [0.5], "val_loss": [2.0], "val_accuracy": [0.25]}
    assert common.new_history(validation=False, keys=("loss",)) == {"loss": []}
    with pytest.raises(ValueError, match=r"Received: keys \['loss'\]"):
        common.append_epoch(history, {"loss": 1.0})


# ----------------------------------------------------------------------------- the loops
def test_torch_loop_is_reproducible_and_reports_each_epoch():
    x, y = blobs()
    runs, seen = [], []
    for _ in range(2):
        runs.append(common.train_torch_classifier(small_torch_model(), x, y, epochs=3, batch_size=16, learning_rate=1e-2,
                                                  seed=7, validation_data=blobs(30, 1),
                                                  on_epoch_end=lambda epoch, logs: seen.append(epoch)))
    assert runs[0] == runs[1] and seen == [0, 1, 2, 0, 1, 2]
    assert runs[0]["loss"][-1] < runs[0]["loss"][0] and runs[0]["val_accuracy"][-1] >= 0.9
    other = common.train_torch_classifier(small_torch_model(), x, y, epochs=3, batch_size=16, learning_rate=1e-2, seed=8)
    assert other["loss"] != runs[0]["loss"]  # the seed changes the shuffling


def test_torch_loop_epoch_loss_is_the_mean_over_batches():
    """One epoch, one batch: the reported loss is the loss before the step, as Keras reports it."""
    x, y = blobs(32)
    model = small_torch_model()
    before = common.evaluate_torch_classifier(model, x, y, batch_size=32)
    history = common.train_torch_classifier(model, x, y, epochs=1, batch_size=32, learning_rate=1e-2, seed=0)
    assert history["loss"][0] == pytest.approx(before["loss"], rel=1e-6)
    assert history["accuracy"][0] == before["accuracy"]


def test_keras_loop_calls_on_epoch_end():
    x, y = blobs(40)
    random.seed(0)
    model = frameworks.build_keras_model((6,), 4, 3)
    seen = []
    history = common.train_keras_classifier(model, x, y, epochs=2, batch_size=8, learning_rate=1e-2, seed=0,
                                            from_logits=True, on_epoch_end=lambda epoch, logs: seen.append(epoch))
    assert seen == [0, 1] and list(history) == ["loss", "accuracy"]


def test_loops_reject_the_other_framework():
    x, y = blobs(8)
    keras_model = frameworks.build_keras_model((6,), 4, 3)
    with pytest.raises(TypeError, match="model of type Sequential"):
        common.train_torch_classifier(keras_model, x, y, epochs=1, batch_size=4, learning_rate=0.1, seed=0)
    with pytest.raises(TypeError, match="model of type Sequential"):
        common.train_keras_classifier(small_torch_model(), x, y, epochs=1, batch_size=4, learning_rate=0.1, seed=0,
                                      from_logits=True)
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        common.train_keras_classifier(keras_model, x, y, epochs=1, batch_size=4, learning_rate=0.1, seed=0,
                                      from_logits=True, jit_compile="yes")
