"""dlnotes.pipelines.frameworks: the PyTorch and Keras classifiers are the same model, weight for weight."""

import os
import random

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.pipelines import frameworks as fw
from tests.helpers import assert_close, assert_matches_torch

# torch 2.13's Tensor.__array__ has no `copy` keyword; NumPy 2 warns whenever Keras converts a tensor.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SMALL = dict(input_shape=(4, 3), n_hidden=5, n_classes=3)  # d = 12


@pytest.fixture
def pair():
    """A Keras model and a torch model of the SMALL shape, the torch one holding the Keras weights."""
    random.seed(0)  # Keras draws unseeded initialiser seeds from Python's random
    torch.manual_seed(0)
    k_model = fw.build_keras_model(**SMALL)
    t_model = fw.build_torch_model(**SMALL)
    return k_model, fw.copy_keras_weights_to_torch(k_model, t_model)


def toy_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 3)).astype("float32"), rng.integers(0, 3, n).astype("int64")


# ----------------------------------------------------------------------------- parameter counts
def test_default_models_have_the_same_parameter_count():
    expected = (784 + 1) * 64 + (64 + 1) * 10  # 50,890
    assert fw.mlp_param_count() == expected
    assert fw.count_params(fw.build_torch_model()) == expected
    assert fw.count_params(fw.build_keras_model()) == expected


def test_small_models_have_the_same_parameter_count():
    expected = (12 + 1) * 5 + (5 + 1) * 3  # 83
    assert fw.mlp_param_count(**SMALL) == expected
    assert fw.count_params(fw.build_torch_model(**SMALL)) == expected
    assert fw.count_params(fw.build_keras_model(**SMALL)) == expected


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), h=st.integers(1, 8), k=st.integers(1, 5))
def test_torch_model_matches_the_formula(shape, h, k):
    model = fw.build_torch_model(tuple(shape), h, k)
    assert fw.count_params(model) == fw.mlp_param_count(tuple(shape), h, k)
    assert model(torch.zeros(2, *shape)).shape == (2, k)


def test_count_params_treats_a_keras_model_as_keras():
    # On the torch backend a Keras model is also a torch.nn.Module; both counts agree anyway.
    model = fw.build_keras_model(**SMALL)
    assert isinstance(model, torch.nn.Module)
    assert fw.count_params(model) == sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- weight mapping
def test_dense_to_linear_mapping_matches_torch_linear():
    rng = np.random.default_rng(0)
    kernel, bias = rng.standard_normal((6, 4)), rng.standard_normal(4)
    weight, bias_t = fw.keras_dense_to_torch_linear(kernel, bias)
    assert weight.shape == (4, 6) and weight.flags.c_contiguous
    assert_matches_torch(
        lambda x: x @ kernel + bias,  # what a Keras Dense layer computes
        lambda x: torch.nn.functional.linear(x, torch.tensor(weight), torch.tensor(bias_t)),
        [rng.standard_normal((5, 6))],
    )


def test_copied_weights_give_the_same_outputs(pair):
    k_model, t_model = pair
    x, _ = toy_data()
    assert_close("logits", t_model(torch.from_numpy(x)), keras.ops.convert_to_numpy(k_model(x)),
                 rtol=1e-5, atol=1e-6)


def test_copied_weights_give_the_same_gradients(pair):
    k_model, t_model = pair
    x, y = toy_data()
    k_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, k_model(x))
    k_loss.backward()  # torch backend: Keras outputs are torch tensors
    t_loss = torch.nn.functional.cross_entropy(t_model(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    assert k_loss.item() == pytest.approx(t_loss.item(), rel=1e-5)
    dense = [layer for layer in k_model.layers if isinstance(layer, keras.layers.Dense)]
    linear = [m for m in t_model if isinstance(m, torch.nn.Linear)]
    for i, (d, lin) in enumerate(zip(dense, linear)):
        assert_close(f"kernel {i}", d.kernel.value.grad, lin.weight.grad.T, rtol=1e-4, atol=1e-6)
        assert_close(f"bias {i}", d.bias.value.grad, lin.bias.grad, rtol=1e-4, atol=1e-6)


def test_copy_keeps_torch_dtype(pair):
    k_model, _ = pair
    t64 = fw.build_torch_model(**SMALL).double()
    fw.copy_keras_weights_to_torch(k_model, t64)
    assert t64[1].weight.dtype == torch.float64
    assert_close("weight", t64[1].weight, k_model.layers[1].kernel.numpy().T.astype("float64"), rtol=0, atol=0)


# ----------------------------------------------------------------------------- training and evaluation
def separable_data(n=200, seed=0):
    """Three well-separated Gaussian blobs, shaped like (n, 4, 3) images."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int64")
    centers = 4.0 * np.eye(3, 12)
    return (centers[y] + 0.3 * rng.standard_normal((n, 12))).reshape(n, 4, 3).astype("float32"), y


def test_train_torch_lowers_the_loss_reproducibly():
    x, y = separable_data()
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        model = fw.build_torch_model(**SMALL)
        runs.append(fw.train_torch(model, x, y, epochs=8, batch_size=32, learning_rate=1e-2, seed=3))
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"loss", "accuracy"} and all(len(v) == 8 for v in runs[0].values())
    assert runs[0]["loss"][-1] < 0.5 * runs[0]["loss"][0]
    assert fw.evaluate_torch(model, x, y)["accuracy"] >= 0.95


def test_train_keras_lowers_the_loss_and_reports_validation():
    x, y = separable_data()
    x_val, y_val = separable_data(60, seed=1)
    random.seed(1)
    model = fw.build_keras_model(**SMALL)
    history = fw.train_keras(model, x, y, epochs=4, batch_size=32, learning_rate=1e-2, seed=3,
                             validation_data=(x_val, y_val))
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 4 and all(type(f) is float for f in v) for v in history.values())
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert fw.evaluate_keras(model, x, y)["accuracy"] >= 0.95
    # the last val_* entries are the metrics of the final weights on the validation data
    final = fw.evaluate_keras(model, x_val, y_val)
    assert history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)
    assert history["val_accuracy"][-1] == pytest.approx(final["accuracy"], abs=1e-7)
    assert model.jit_compile is False


def test_train_torch_validation_is_the_final_evaluation():
    x, y = separable_data()
    x_val, y_val = separable_data(60, seed=1)
    torch.manual_seed(1)
    model = fw.build_torch_model(**SMALL)
    history = fw.train_torch(model, x, y, epochs=3, batch_size=32, learning_rate=1e-2, seed=0,
                             validation_data=(x_val, y_val))
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history["val_loss"][-1] == fw.evaluate_torch(model, x_val, y_val)["loss"]


def test_keras_and_torch_take_the_same_adam_steps(pair):
    """Same weights, one full batch per epoch (so the shuffling order cannot matter), same Adam:
    the float32 losses agree to ~1e-5 over five steps (the frameworks place epsilon differently)."""
    k_model, t_model = pair
    x, y = separable_data(64)
    settings_ = dict(epochs=5, batch_size=64, learning_rate=1e-2, seed=0)
    k_hist, t_hist = fw.train_keras(k_model, x, y, **settings_), fw.train_torch(t_model, x, y, **settings_)
    np.testing.assert_allclose(k_hist["loss"], t_hist["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(k_hist["accuracy"], t_hist["accuracy"], atol=1e-7)
    assert k_hist["loss"][-1] < k_hist["loss"][0]  # the five steps did something


def test_evaluate_counts_argmax_hits_and_the_cross_entropy():
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    x = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    y = np.array([0, 1, 2, 1])
    metrics = fw.evaluate_torch(model, x, y, batch_size=3)
    assert metrics["accuracy"] == 0.75  # 3 of 4
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert metrics["loss"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_agrees_between_frameworks(pair):
    k_model, t_model = pair
    x, y = toy_data(n=64)
    k_metrics, t_metrics = fw.evaluate_keras(k_model, x, y), fw.evaluate_torch(t_model, x, y, batch_size=10)
    assert k_metrics["accuracy"] == t_metrics["accuracy"]
    assert k_metrics["loss"] == pytest.approx(t_metrics["loss"], rel=1e-5)


def test_evaluate_keras_matches_model_evaluate(pair):
    k_model, _ = pair
    x, y = toy_data(n=64)
    k_model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    reference = k_model.evaluate(x, y, verbose=0, return_dict=True)
    ours = fw.evaluate_keras(k_model, x, y)
    assert ours["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    assert ours["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-7)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(input_shape=()), r"input_shape=\(\)"),
    (dict(input_shape=(28, 0)), r"input_shape=\(28, 0\)"),
    (dict(input_shape=784), "input_shape=784"),
    (dict(n_hidden=0), "n_hidden=0"),
    (dict(n_classes=2.5), "n_classes=2.5"),
    (dict(n_hidden=True), "n_hidden=True"),
])
@pytest.mark.parametrize("fn", [fw.mlp_param_count, fw.build_torch_model, fw.build_keras_model])
def test_builders_reject_bad_sizes(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(**kwargs)


@pytest.mark.parametrize("fn", [fw.count_params, fw.train_torch, fw.train_keras, fw.evaluate_torch, fw.evaluate_keras])
def test_functions_reject_non_models(fn):
    x, y = toy_data()
    args = () if fn is fw.count_params else (x, y)
    with pytest.raises(TypeError, match="model of type str"):
        fn("a model", *args)


def test_dense_to_linear_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"kernel.shape=\(3,\)"):
        fw.keras_dense_to_torch_linear(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"bias.shape=\(3,\)"):
        fw.keras_dense_to_torch_linear(np.zeros((3, 4)), np.zeros(3))


def test_copy_rejects_swapped_or_mismatched_models(pair):
    k_model, t_model = pair
    with pytest.raises(TypeError, match="keras_model of type Sequential"):
        fw.copy_keras_weights_to_torch(t_model, t_model)
    with pytest.raises(TypeError, match="torch_model of type Sequential"):
        fw.copy_keras_weights_to_torch(k_model, k_model)
    with pytest.raises(TypeError, match="keras_model of type dict"):
        fw.copy_keras_weights_to_torch({}, t_model)
    with pytest.raises(TypeError, match="torch_model of type NoneType"):
        fw.copy_keras_weights_to_torch(k_model, None)
    with pytest.raises(ValueError, match="2 Dense and 1 Linear"):
        fw.copy_keras_weights_to_torch(k_model, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)))
    with pytest.raises(ValueError, match=r"kernel.shape=\(12, 5\)"):
        fw.copy_keras_weights_to_torch(k_model, fw.build_torch_model((4, 3), n_hidden=6, n_classes=3))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=0), ValueError, "epochs=0"),
    (dict(batch_size=-1), ValueError, "batch_size=-1"),
    (dict(learning_rate=0.0), ValueError, "learning_rate=0.0"),
    (dict(seed=-1), ValueError, "seed=-1"),
    (dict(seed=1.5), TypeError, "seed=1.5"),
    (dict(x=np.zeros((8, 4, 3), dtype="int64")), TypeError, "x of dtype int64"),
    (dict(y=np.zeros(8, dtype="float32")), TypeError, "y of dtype float32"),
    (dict(y=np.zeros(7, dtype="int64")), ValueError, r"y.shape=\(7,\)"),
    (dict(validation_data=np.zeros(3)), TypeError, "validation_data of type ndarray"),
    (dict(validation_data=(np.zeros((4, 4, 3), dtype="float32"), np.zeros(3, dtype="int64"))), ValueError,
     r"validation_data\[1\].shape=\(3,\)"),
])
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_train_rejects_bad_arguments(framework, kwargs, error, match):
    model = fw.build_torch_model(**SMALL) if framework == "torch" else fw.build_keras_model(**SMALL)
    train = fw.train_torch if framework == "torch" else fw.train_keras
    args = dict(x=np.zeros((8, 4, 3), dtype="float32"), y=np.zeros(8, dtype="int64")) | kwargs
    with pytest.raises(error, match=match):
        train(model, args.pop("x"), args.pop("y"), **args)


def test_train_torch_rejects_keras_model_and_keras_rejects_bad_jit_compile():
    x, y = toy_data()
    with pytest.raises(TypeError, match="model of type Sequential"):
        fw.train_torch(fw.build_keras_model(**SMALL), x, y)
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        fw.train_keras(fw.build_keras_model(**SMALL), x, y, jit_compile="yes")


@pytest.mark.parametrize("evaluate", [fw.evaluate_torch, fw.evaluate_keras])
def test_evaluate_rejects_bad_arguments(pair, evaluate):
    model = pair[0] if evaluate is fw.evaluate_keras else pair[1]
    x, y = toy_data()
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"y.shape=\(31,\)"):
        evaluate(model, x, y[:-1])


def test_evaluate_torch_rejects_a_module_without_parameters():
    x, y = toy_data()
    with pytest.raises(ValueError, match="without parameters"):
        fw.evaluate_torch(torch.nn.Flatten(), x, y)
