"""dlnotes.scratch.losses against PyTorch (float64, values and gradients) and Keras (float32)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dlnotes.scratch import activations, losses as L
from tests.helpers import assert_close, assert_matches_torch

REDUCTIONS = ["mean", "sum", "none"]


def regression_data(shape=(8, 3), seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.standard_normal(shape)
    y_pred = y_true + rng.standard_normal(shape) * 2.0
    y_pred.flat[0] = y_true.flat[0]  # an exact hit: the kink of |d|
    return y_pred, y_true


def binary_data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(n) * 3
    y = (rng.random(n) < 0.5).astype(np.float64)
    y[:2] = [0.3, 0.8]  # soft labels are allowed
    return logits, y


def classification_data(n=10, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, classes)) * 3, rng.integers(0, classes, size=n)


def vjp(grad_fn, *, rows=False):
    """grad_ours for assert_matches_torch: chain rule with the upstream gradient; 0 for the target."""
    def grads(first, second, upstream, **kwargs):
        g = grad_fn(first, second, **kwargs)
        up = upstream[:, None] if rows and np.ndim(upstream) else upstream
        return [up * g] + ([np.zeros_like(second)] if np.issubdtype(second.dtype, np.floating) else [])
    return grads


# (ours, ours_grad, torch function, data, extra keyword arguments); targets are detached on the torch side.
CASES = {
    "mse": (L.mse, L.mse_grad, F.mse_loss, regression_data, {}),
    "mae": (L.mae, L.mae_grad, F.l1_loss, regression_data, {}),
    "huber": (L.huber, L.huber_grad, F.huber_loss, regression_data, {}),
    "huber_delta_0.5": (L.huber, L.huber_grad, F.huber_loss, regression_data, {"delta": 0.5}),
    "bce": (L.binary_cross_entropy, L.binary_cross_entropy_grad, F.binary_cross_entropy,
            lambda: (activations.sigmoid(binary_data()[0]), binary_data()[1]), {}),
    "bce_with_logits": (L.binary_cross_entropy_with_logits, L.binary_cross_entropy_with_logits_grad,
                        F.binary_cross_entropy_with_logits, binary_data, {}),
    "cross_entropy": (L.cross_entropy, L.cross_entropy_grad, F.cross_entropy, classification_data, {}),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CASES)
def test_loss_matches_torch_values_and_gradients(name, reduction):
    ours, ours_grad, torch_fn, data, kwargs = CASES[name]
    kwargs = dict(kwargs, reduction=reduction)
    grads = vjp(ours_grad, rows=name == "cross_entropy")
    assert_matches_torch(lambda a, b: ours(a, b, **kwargs),
                         lambda a, b: torch_fn(a, b.detach() if b.is_floating_point() else b, **kwargs),
                         list(data()), grad_ours=lambda a, b, up: grads(a, b, up, **kwargs))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_clamps_logs_and_gradient_at_0_and_1_like_torch(reduction):
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 1 - 1e-17, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_matches_torch(lambda a, b: L.binary_cross_entropy(a, b, reduction),
                             lambda a, b: F.binary_cross_entropy(a, b.detach(), reduction=reduction), [p, y],
                             grad_ours=lambda a, b, up: vjp(L.binary_cross_entropy_grad)(a, b, up, reduction=reduction))
    assert L.binary_cross_entropy(p[:1], y[:1]) == 100.0


def test_float32_keeps_dtype():
    y_pred, y_true = (a.astype(np.float32) for a in regression_data())
    for f in (L.mse, L.mse_grad, L.mae, L.mae_grad, L.huber, L.huber_grad):
        assert f(y_pred, y_true).dtype == np.float32, f.__name__
    logits, target = classification_data()
    assert L.cross_entropy_grad(logits.astype(np.float32), target).dtype == np.float32


# --- Keras: where its conventions coincide with torch's ---------------------------------

def keras_loss(name, **kwargs):
    import keras  # a core dependency: never skip
    return getattr(keras.losses, name)(**kwargs)


# Keras reductions: "sum_over_batch_size" is our "mean", "sum" and None ("none") agree when every
# example has one output column (Keras first averages over the last axis).
KERAS_REDUCTIONS = {"mean": "sum_over_batch_size", "sum": "sum", "none": None}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ours, keras_name, kwargs", [
    (L.mse, "MeanSquaredError", {}),
    (L.mae, "MeanAbsoluteError", {}),
    (L.huber, "Huber", {"delta": 0.7}),
    (L.binary_cross_entropy_with_logits, "BinaryCrossentropy", {"from_logits": True}),
    # On probabilities Keras clips p to [1e-7, 1 - 1e-7]: compare with p well inside that range.
    (lambda p, y, reduction: L.binary_cross_entropy(activations.sigmoid(p), y, reduction=reduction),
     "BinaryCrossentropy", {"from_logits": False}),
], ids=["mse", "mae", "huber", "bce_logits", "bce_probs"])
def test_matches_keras_losses_float32(ours, keras_name, kwargs, reduction):
    logits, y = (a.astype(np.float32)[:, None] for a in binary_data())  # (n, 1): one output per example
    loss = keras_loss(keras_name, reduction=KERAS_REDUCTIONS[reduction], **kwargs)
    theirs_input = activations.sigmoid(logits) if kwargs.get("from_logits") is False else logits
    theirs = loss(torch.from_numpy(y), torch.from_numpy(theirs_input))
    ours_kwargs = {"delta": kwargs["delta"]} if "delta" in kwargs else {}
    received = ours(logits, y, reduction=reduction, **ours_kwargs)
    received = received[:, 0] if reduction == "none" else received
    assert_close(keras_name, received, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_keras_sparse_categorical_from_logits(reduction):
    logits, target = classification_data()
    loss = keras_loss("SparseCategoricalCrossentropy", from_logits=True, reduction=KERAS_REDUCTIONS[reduction])
    logits32 = torch.tensor(logits.astype(np.float32), requires_grad=True)
    theirs = loss(torch.from_numpy(target), logits32)
    theirs.sum().backward()
    received = L.cross_entropy(logits.astype(np.float32), target, reduction)
    assert_close("loss", received, theirs, rtol=1e-5, atol=1e-6)
    grad = L.cross_entropy_grad(logits.astype(np.float32), target, reduction)
    assert_close("gradient", grad, logits32.grad, rtol=1e-5, atol=1e-6)


# --- properties ---------------------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
pairs = st.integers(1, 20).flatmap(lambda n: st.tuples(hnp.arrays(np.float64, n, elements=finite),
                                                        hnp.arrays(np.float64, n, elements=finite)))
deltas = st.floats(1e-3, 1e2)


@given(pairs, deltas)
def test_regression_losses_are_non_negative_and_zero_at_the_target(pair, delta):
    y_pred, y_true = pair
    for f, kwargs in ((L.mse, {}), (L.mae, {}), (L.huber, {"delta": delta})):
        assert np.all(f(y_pred, y_true, reduction="none", **kwargs) >= 0), f.__name__
        assert f(y_true, y_true, **kwargs) == 0, f.__name__


@given(pairs, deltas)
def test_huber_lies_between_its_linear_and_quadratic_bounds(pair, delta):
    # Elementwise, with d = y_pred - y_true:
    #   max(0, delta*|d| - delta**2/2) <= huber_delta(d) <= min(d**2 / 2, delta*|d|),
    # with equality to d**2/2 for |d| <= delta and to delta*|d| - delta**2/2 beyond.
    y_pred, y_true = pair
    h = L.huber(y_pred, y_true, delta=delta, reduction="none")
    abs_d = np.abs(y_pred - y_true)
    tol = 1e-9 * (1 + abs_d**2)
    assert np.all(h <= 0.5 * L.mse(y_pred, y_true, reduction="none") + tol)
    assert np.all(h <= delta * L.mae(y_pred, y_true, reduction="none") + tol)
    assert np.all(h >= np.maximum(0, delta * abs_d - delta**2 / 2) - tol)
    # and so, for the means: huber <= mse / 2 and huber <= delta * mae
    assert L.huber(y_pred, y_true, delta=delta) <= 0.5 * L.mse(y_pred, y_true) + tol.max()
    assert L.huber(y_pred, y_true, delta=delta) <= delta * L.mae(y_pred, y_true) + tol.max()


labels = st.integers(1, 20).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=finite), hnp.arrays(np.float64, n, elements=st.floats(0, 1))))


@given(labels)
def test_binary_cross_entropies_are_non_negative_and_agree(pair):
    logits, y = pair
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        from_logits = L.binary_cross_entropy_with_logits(logits, y, reduction="none")
        from_probs = L.binary_cross_entropy(activations.sigmoid(logits), y, reduction="none")
    assert np.all(from_logits >= 0) and np.all(from_probs >= 0)
    moderate = np.abs(logits) < 30  # where sigmoid(z) and 1 - sigmoid(z) are not rounded to 0 or 1
    np.testing.assert_allclose(from_probs[moderate], from_logits[moderate], rtol=1e-6, atol=1e-9)


@given(st.integers(1, 6), st.integers(2, 6), st.data())
def test_cross_entropy_is_non_negative_and_stable(n, classes, data):
    logits = data.draw(hnp.arrays(np.float64, (n, classes), elements=finite))
    target = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, classes - 1)))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = L.cross_entropy(logits, target, reduction="none")
        grad = L.cross_entropy_grad(logits, target, reduction="none")
    assert np.all(loss >= 0) and np.all(np.isfinite(loss))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-12)  # softmax - one-hot sums to 0
    np.testing.assert_allclose(loss, np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))
                               + logits.max(1) - logits[np.arange(n), target], rtol=1e-9, atol=1e-9)


def test_stable_for_logits_up_to_1e3():
    logits = np.array([[1e3, -1e3, 0.0], [-1e3, -1e3, 1e3], [1e3, 1e3, 1e3]])
    target = np.array([1, 2, 0])
    with np.errstate(over="raise", divide="raise", invalid="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        ce = L.cross_entropy(logits, target, reduction="none")
        bce = L.binary_cross_entropy_with_logits(logits[0], np.array([0.0, 1.0, 1.0]), reduction="none")
        grads = [L.cross_entropy_grad(logits, target), L.binary_cross_entropy_with_logits_grad(logits[0], np.ones(3))]
    np.testing.assert_allclose(ce, [2000.0, 0.0, np.log(3)])
    np.testing.assert_allclose(bce, [1000.0, 1000.0, np.log(2)])
    assert all(np.all(np.isfinite(g)) for g in grads)


# --- bad input ----------------------------------------------------------------------

PAIRWISE = [getattr(L, name) for name in L.__all__ if not name.startswith("cross_entropy")]


@pytest.mark.parametrize("f", [getattr(L, name) for name in L.__all__], ids=lambda f: f.__name__)
def test_every_function_rejects_an_unknown_reduction(f):
    args = classification_data() if f.__name__.startswith("cross_entropy") else (np.full(3, 0.5), np.ones(3))
    with pytest.raises(ValueError, match=r"Received: reduction='average'"):
        f(*args, reduction="average")


@pytest.mark.parametrize("f", PAIRWISE, ids=lambda f: f.__name__)
def test_pairwise_losses_reject_shape_mismatch_and_non_numeric_input(f):
    first = f.__code__.co_varnames[0]
    second = f.__code__.co_varnames[1]
    with pytest.raises(ValueError, match=rf"Received: {second}.shape=\(2, 3\)"):
        f(np.full(6, 0.5), np.ones((2, 3)))
    with pytest.raises(TypeError, match=rf"Received: {first} with dtype <U3"):
        f(np.array(["0.5", "0.1"]), np.ones(2))
    with pytest.raises(ValueError, match=rf"`{first}` must not be empty"):
        f(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("f", [L.huber, L.huber_grad])
def test_huber_rejects_non_positive_or_non_finite_delta(f):
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match=rf"`delta` must be in \(0.0, inf\). Received: delta={bad!r}"):
            f(np.zeros(2), np.ones(2), delta=bad)
    for bad in ("1", float("inf"), float("nan"), True):
        with pytest.raises(TypeError, match=rf"`delta` must be a finite real number. Received: delta={bad!r}"):
            f(np.zeros(2), np.ones(2), delta=bad)


@pytest.mark.parametrize("f", [L.binary_cross_entropy, L.binary_cross_entropy_grad])
def test_bce_rejects_probabilities_outside_unit_interval(f):
    with pytest.raises(ValueError, match=r"`p` must lie in \[0, 1\]. Received: p with values in \[-0.1, 0.5\]"):
        f(np.array([-0.1, 0.5]), np.ones(2))
    with pytest.raises(ValueError, match=r"`p` must lie in \[0, 1\].*nan: True"):
        f(np.array([np.nan, 0.5]), np.ones(2))
    with pytest.raises(ValueError, match=r"`y` must lie in \[0, 1\]. Received: y with values in \[0.0, 2.0\]"):
        f(np.array([0.1, 0.5]), np.array([0.0, 2.0]))


@pytest.mark.parametrize("f", [L.binary_cross_entropy_with_logits, L.binary_cross_entropy_with_logits_grad])
def test_bce_with_logits_rejects_targets_outside_unit_interval(f):
    with pytest.raises(ValueError, match=r"`y` must lie in \[0, 1\]. Received: y with values in \[-1.0, 1.0\]"):
        f(np.array([3.0, -2.0]), np.array([-1.0, 1.0]))


@pytest.mark.parametrize("f", [L.cross_entropy, L.cross_entropy_grad])
def test_cross_entropy_rejects_bad_logits_and_targets(f):
    logits, target = classification_data(n=3, classes=4)
    with pytest.raises(ValueError, match=r"Received: logits.shape=\(4,\)"):
        f(logits[0], target[:1])
    with pytest.raises(TypeError, match=r"Received: target with dtype float64"):
        f(logits, target.astype(np.float64))
    with pytest.raises(ValueError, match=r"Received: target.shape=\(2,\)"):
        f(logits, target[:2])
    with pytest.raises(ValueError, match=r"Received: target with values in \[0, 4\]"):
        f(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"Received: target with values in \[-1, 2\]"):
        f(logits, np.array([0, -1, 2]))
    with pytest.raises(TypeError, match=r"Received: logits with dtype bool"):
        f(logits > 0, target)
