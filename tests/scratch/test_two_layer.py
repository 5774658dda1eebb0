"""dlnotes.scratch.two_layer: the hand-written network against torch autograd and Keras."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch

from dlnotes.scratch import two_layer
from tests.helpers import assert_close, assert_matches_torch


@pytest.fixture
def problem():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((16, 3))
    Y = rng.standard_normal((16, 2))
    return two_layer.init_params(3, 5, 2, seed=2), X, Y


def torch_net(X, W1, b1, W2, b2):
    return torch.tanh(X @ W1 + b1) @ W2 + b2


def test_forward_and_gradients_match_torch(problem):
    params, X, Y = problem

    def ours(X, W1, b1, W2, b2):
        return two_layer.forward(dict(W1=W1, b1=b1, W2=W2, b2=b2), X)[0]

    def grads(X, W1, b1, W2, b2, upstream):
        # sum(upstream * Y_hat) is the MSE loss for the target Y_hat - upstream * size / 2.
        p = dict(W1=W1, b1=b1, W2=W2, b2=b2)
        Y_hat, cache = two_layer.forward(p, X)
        g = two_layer.backward(p, cache, Y_hat, Y_hat - upstream * Y_hat.size / 2)
        dX = ((upstream @ W2.T) * (1 - cache["A"] ** 2)) @ W1.T
        return [dX, g["W1"], g["b1"], g["W2"], g["b2"]]

    assert_matches_torch(ours, torch_net, [X, params["W1"], params["b1"], params["W2"], params["b2"]],
                         grad_ours=grads)


def test_mse_loss_and_backward_match_torch_autograd(problem):
    params, X, Y = problem
    Y_hat, cache = two_layer.forward(params, X)
    ours = two_layer.backward(params, cache, Y_hat, Y)
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    loss = torch.nn.functional.mse_loss(torch_net(torch.tensor(X), **theirs), torch.tensor(Y))
    loss.backward()
    assert two_layer.mse_loss(Y_hat, Y) == pytest.approx(loss.item(), rel=1e-12)
    for name in two_layer.PARAM_NAMES:
        assert_close(name, ours[name], theirs[name].grad, rtol=1e-10, atol=1e-12)


def test_matches_keras_dense_layers(problem):
    import keras  # a core dependency: never skip
    params, X, Y = problem
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)])
    model.set_weights([params[k].astype("float32") for k in two_layer.PARAM_NAMES])
    out = model(X.astype("float32"))
    loss = keras.losses.MeanSquaredError()(Y.astype("float32"), out)
    loss.backward()
    Y_hat, cache = two_layer.forward(params, X)
    grads = two_layer.backward(params, cache, Y_hat, Y)
    assert_close("Y_hat", out, Y_hat.astype("float32"), rtol=1e-5, atol=1e-6)
    for variable, name in zip(model.trainable_variables, two_layer.PARAM_NAMES):
        assert_close(name, variable.value.grad, grads[name].astype("float32"), rtol=1e-4, atol=1e-6)


def test_init_params_shapes_and_glorot_bound():
    p = two_layer.init_params(4, 6, 3, seed=0)
    assert {k: v.shape for k, v in p.items()} == {"W1": (4, 6), "b1": (6,), "W2": (6, 3), "b2": (3,)}
    assert np.abs(p["W1"]).max() <= np.sqrt(6 / 10)
    assert not p["b1"].any()


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_in=0, n_hidden=2, n_out=1), "n_in=0"),
    (dict(n_in=2, n_hidden=2.5, n_out=1), "n_hidden=2.5"),
    (dict(n_in=2, n_hidden=2, n_out=True), "n_out=True"),
])
def test_init_params_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_layer.init_params(**kwargs)


def test_forward_rejects_bad_input(problem):
    params, X, Y = problem
    with pytest.raises(TypeError, match="`X` must be a NumPy array"):
        two_layer.forward(params, X.tolist())
    with pytest.raises(ValueError, match=r"X.shape=\(16, 4\)"):
        two_layer.forward(params, np.ones((16, 4)))
    with pytest.raises(ValueError, match="params keys"):
        two_layer.forward({"W1": params["W1"]}, X)


def test_loss_and_backward_reject_bad_targets(problem):
    params, X, Y = problem
    Y_hat, cache = two_layer.forward(params, X)
    with pytest.raises(ValueError, match=r"Y.shape=\(15, 2\)"):
        two_layer.mse_loss(Y_hat, Y[:15])
    with pytest.raises(ValueError, match=r"Y.shape=\(16, 3\)"):
        two_layer.backward(params, cache, Y_hat, np.ones((16, 3)))


def test_loss_and_output_gradient_are_the_losses_module(problem):
    """One MSE in the package: two_layer reuses dlnotes.scratch.losses for L and dL/dY_hat."""
    from dlnotes.scratch import losses
    params, X, Y = problem
    Y_hat, cache = two_layer.forward(params, X)
    assert two_layer.mse_loss(Y_hat, Y) == float(losses.mse(Y_hat, Y))
    grads = two_layer.backward(params, cache, Y_hat, Y)
    assert_close("db2", grads["b2"], losses.mse_grad(Y_hat, Y).sum(axis=0), rtol=1e-14, atol=0)
    with pytest.raises(TypeError, match="`Y_hat` must be a NumPy array. Received: Y_hat of type list"):
        two_layer.mse_loss(Y_hat.tolist(), Y)
