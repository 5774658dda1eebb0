"""dlnotes.scratch.gradcheck: central differences find wrong gradients and accept right ones."""

import numpy as np
import pytest
import torch

from dlnotes.scratch import autograd, gradcheck
from tests.helpers import assert_close


def f(W, x):
    return np.sum(np.tanh(x @ W) ** 2)


def analytic(W, x):
    """d f / d W and d f / d x, by hand: with H = xW, df/dH = 2 tanh(H) (1 - tanh(H)^2)."""
    T = np.tanh(x @ W)
    dH = 2 * T * (1 - T**2)
    return [x.T @ dH, dH @ W.T]


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((3, 2)), rng.standard_normal((4, 3))]


def test_numerical_grad_matches_torch_autograd(inputs):
    W, x = inputs
    expected = torch.tensor(W, requires_grad=True)
    torch.sum(torch.tanh(torch.tensor(x) @ expected) ** 2).backward()
    assert_close("numerical dW", gradcheck.numerical_grad(lambda W_: f(W_, x), W), expected.grad,
                 rtol=1e-8, atol=1e-10)


def test_numerical_grad_restores_its_input(inputs):
    W, x = inputs
    before = W.copy()
    gradcheck.numerical_grad(lambda W_: f(W_, x), W)
    assert np.array_equal(W, before)


def test_gradcheck_accepts_correct_gradients(inputs):
    assert gradcheck.gradcheck(f, inputs, analytic(*inputs)) is True


def test_gradcheck_accepts_the_autograd_engine(inputs):
    W, x = (autograd.Tensor(a) for a in inputs)
    loss = ((x @ W).tanh() ** 2).sum()
    loss.backward()
    assert gradcheck.gradcheck(f, inputs, [W.grad, x.grad], rtol=1e-7, atol=1e-9, names=["W", "x"])


def test_gradcheck_catches_a_factor_of_two_and_names_input_and_worst_index(inputs):
    grads = analytic(*inputs)
    grads[1][2, 1] *= 2  # one wrong entry in the gradient of x
    numerical = gradcheck.numerical_grad(lambda x_: f(inputs[0], x_), inputs[1])
    expected = rf"Gradient of x differs at index \(2, 1\): expected \(numerical\) {numerical[2, 1]:.6f}.*received \(analytic\)"
    with pytest.raises(gradcheck.GradcheckError, match=expected):
        gradcheck.gradcheck(f, inputs, grads, names=["W", "x"])
    assert gradcheck.gradcheck(f, inputs, grads, raise_exception=False) is False


def test_gradcheck_catches_a_whole_gradient_off_by_two(inputs):
    grads = analytic(*inputs)
    with pytest.raises(gradcheck.GradcheckError, match="Gradient of input 0 differs"):
        gradcheck.gradcheck(f, inputs, [2 * grads[0], grads[1]])


def test_gradcheck_rejects_nan_gradients(inputs):
    grads = analytic(*inputs)
    grads[0][1, 1] = np.nan
    with pytest.raises(gradcheck.GradcheckError, match=r"index \(1, 1\).*received \(analytic\) nan"):
        gradcheck.gradcheck(f, inputs, grads)


def test_bad_arguments(inputs):
    W, x = inputs
    g = analytic(W, x)
    with pytest.raises(TypeError, match=r"x.dtype=float32"):
        gradcheck.numerical_grad(np.sum, W.astype(np.float32))
    with pytest.raises(TypeError, match="`x` must be a NumPy array. Received: x of type list"):
        gradcheck.numerical_grad(np.sum, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"`eps` must be in \(0.0, 1.0\). Received: eps=0"):
        gradcheck.numerical_grad(np.sum, W, eps=0)
    with pytest.raises(ValueError, match=r"Received: eps=1.5"):
        gradcheck.gradcheck(f, inputs, g, eps=1.5)
    with pytest.raises(TypeError, match=r"Received: eps=True"):
        gradcheck.numerical_grad(np.sum, W, eps=True)
    with pytest.raises(ValueError, match=r"Received: rtol=-1e-05"):
        gradcheck.gradcheck(f, inputs, g, rtol=-1e-5)
    with pytest.raises(TypeError, match=r"Received: atol='0'"):
        gradcheck.gradcheck(f, inputs, g, atol="0")
    with pytest.raises(ValueError, match=r"of shape \(3, 2\)"):
        gradcheck.numerical_grad(lambda a: a, W)
    with pytest.raises(ValueError, match="2 inputs, 1 analytic_grads"):
        gradcheck.gradcheck(f, inputs, g[:1])
    with pytest.raises(ValueError, match=r"analytic_grads\[1\].shape=\(3, 4\)"):
        gradcheck.gradcheck(f, inputs, [g[0], g[1].T])
    with pytest.raises(TypeError, match=r"inputs\[0\]` must be a NumPy array"):
        gradcheck.gradcheck(f, [W.tolist(), x], g)
