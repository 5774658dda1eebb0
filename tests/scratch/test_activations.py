"""dlnotes.scratch.activations against PyTorch (float64, values and gradients) and Keras (float32)."""

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

from dlnotes.scratch import activations as A
from tests.helpers import assert_close, assert_matches_torch


def sample(shape=(6, 7), scale=3.0, seed=0):
    """Seeded normal values plus the points where derivatives have kinks or edge cases."""
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    x.flat[:8] = [0.0, -0.0, 1e-12, -1e-12, -30.0, 40.0, 1.0, -1.0]
    return x


# (ours, ours_grad, torch function, keyword arguments for ours)
ELEMENTWISE = {
    "sigmoid": (A.sigmoid, A.sigmoid_grad, torch.sigmoid, {}),
    "tanh": (A.tanh, A.tanh_grad, torch.tanh, {}),
    "relu": (A.relu, A.relu_grad, F.relu, {}),
    "leaky_relu": (A.leaky_relu, A.leaky_relu_grad, F.leaky_relu, {}),
    "leaky_relu_0.3": (A.leaky_relu, A.leaky_relu_grad, lambda t: F.leaky_relu(t, 0.3), {"negative_slope": 0.3}),
    "elu": (A.elu, A.elu_grad, F.elu, {}),
    "elu_0.5": (A.elu, A.elu_grad, lambda t: F.elu(t, alpha=0.5), {"alpha": 0.5}),
    "gelu": (A.gelu, A.gelu_grad, F.gelu, {}),
    "gelu_tanh": (A.gelu, A.gelu_grad, lambda t: F.gelu(t, approximate="tanh"), {"approximate": "tanh"}),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_torch_values_and_gradients(name):
    f, f_grad, torch_fn, kwargs = ELEMENTWISE[name]
    assert_matches_torch(lambda x: f(x, **kwargs), torch_fn, [sample()],
                         grad_ours=lambda x, up: [up * f_grad(x, **kwargs)])


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("f, f_backward, torch_fn", [
    (A.softmax, A.softmax_backward, F.softmax),
    (A.log_softmax, A.log_softmax_backward, F.log_softmax),
])
def test_softmax_family_matches_torch_values_and_vjp(f, f_backward, torch_fn, axis):
    x = sample((4, 5, 3))
    assert_matches_torch(lambda x: f(x, axis=axis), lambda t: torch_fn(t, dim=axis), [x],
                         grad_ours=lambda x, up: [f_backward(up, x, axis=axis)])


def test_softmax_backward_takes_upstream_first():
    """The package convention: f_backward(upstream, inputs...). Swapping them changes the result."""
    x, g = sample((3, 4), seed=1), sample((3, 4), seed=2)
    s = A.softmax(x)
    jacobians = np.einsum("ni,ij->nij", s, np.eye(4)) - np.einsum("ni,nj->nij", s, s)
    np.testing.assert_allclose(A.softmax_backward(g, x), np.einsum("ni,nij->nj", g, jacobians), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A.log_softmax_backward(g, x), g - s * g.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-14)
    assert not np.allclose(A.softmax_backward(x, g), A.softmax_backward(g, x))


def test_grads_at_zero_follow_torch_conventions():
    zero = np.zeros(1)
    assert A.relu_grad(zero)[0] == 0.0
    assert A.leaky_relu_grad(zero, 0.1)[0] == 0.1
    assert A.elu_grad(zero, 2.0)[0] == 2.0


def test_float32_keeps_dtype_and_int_becomes_float64():
    x32 = sample().astype(np.float32)
    for name, (f, f_grad, _, kwargs) in ELEMENTWISE.items():
        assert f(x32, **kwargs).dtype == np.float32, name
        assert f_grad(x32, **kwargs).dtype == np.float32, name
    assert A.softmax(x32).dtype == np.float32
    assert A.log_softmax_backward(x32, x32).dtype == np.float32
    assert A.relu([-2, 3]).dtype == np.float64
    assert_close("relu of ints", A.relu([-2, 3]), np.array([0.0, 3.0]), rtol=0, atol=0)


KERAS_CASES = {
    # name: (ours, keras function name, keras keyword arguments)
    "sigmoid": (A.sigmoid, "sigmoid", {}),
    "tanh": (A.tanh, "tanh", {}),
    "relu": (A.relu, "relu", {}),
    # Keras's default slope is 0.2, torch's and ours 0.01: compare with the slope given explicitly.
    "leaky_relu": (lambda x: A.leaky_relu(x, negative_slope=0.2), "leaky_relu", {"negative_slope": 0.2}),
    "elu": (lambda x: A.elu(x, alpha=0.7), "elu", {"alpha": 0.7}),
    # keras.ops.gelu defaults to the tanh approximation.
    "gelu_exact": (lambda x: A.gelu(x, approximate="none"), "gelu", {"approximate": False}),
    "gelu_tanh": (lambda x: A.gelu(x, approximate="tanh"), "gelu", {"approximate": True}),
    "softmax": (lambda x: A.softmax(x, axis=0), "softmax", {"axis": 0}),
    "log_softmax": (A.log_softmax, "log_softmax", {}),
}


@pytest.mark.parametrize("name", KERAS_CASES)
def test_matches_keras_ops_float32(name):
    import keras  # a core dependency: never skip
    ours, keras_name, kwargs = KERAS_CASES[name]
    x = sample().astype(np.float32)
    theirs = getattr(keras.ops, keras_name)(torch.from_numpy(x), **kwargs)  # a torch tensor on this backend
    assert_close(name, ours(x), theirs, rtol=1e-5, atol=1e-6)


def test_keras_leaky_relu_defaults_differ_between_ops_and_layer():
    """The chapter states these defaults: keras.ops.leaky_relu 0.2, keras.layers.LeakyReLU 0.3, torch 0.01."""
    import keras
    x = sample().astype(np.float32)
    assert_close("keras.ops default", A.leaky_relu(x, 0.2), keras.ops.leaky_relu(torch.from_numpy(x)), rtol=1e-6, atol=1e-7)
    assert_close("keras.layers default", A.leaky_relu(x, 0.3), keras.layers.LeakyReLU()(torch.from_numpy(x)),
                 rtol=1e-6, atol=1e-7)
    assert_close("torch default", A.leaky_relu(x), F.leaky_relu(torch.from_numpy(x)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_derivative_has_a_zero_and_is_negative_below_it(approximate):
    from scipy.optimize import brentq
    root = brentq(lambda v: float(A.gelu_grad(v, approximate)), -2.0, 0.0, xtol=1e-14)
    assert root == pytest.approx(-0.7518, abs=1e-3)
    t = torch.tensor([root, root - 0.5, root + 0.5], dtype=torch.float64, requires_grad=True)
    F.gelu(t, approximate=approximate).sum().backward()
    assert abs(t.grad[0].item()) < 1e-12                     # torch's derivative vanishes there too
    assert t.grad[1].item() < 0 < t.grad[2].item()          # negative below, positive above
    assert A.gelu(root, approximate) == pytest.approx(-0.1700, abs=1e-3)  # GELU's minimum


# --- properties ---------------------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
matrices = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite)


@given(matrices, st.integers(-1, 0))
def test_softmax_is_a_distribution_along_axis(x, axis):
    s = A.softmax(x, axis=axis)
    assert np.all(s >= 0)
    np.testing.assert_allclose(s.sum(axis=axis), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(A.log_softmax(x, axis=axis)), s, rtol=1e-12, atol=1e-300)


@given(matrices, st.floats(-1e3, 1e3))
def test_softmax_ignores_a_constant_shift(x, c):
    np.testing.assert_allclose(A.softmax(x + c), A.softmax(x), rtol=1e-9, atol=1e-12)


@given(matrices)
def test_sigmoid_is_symmetric(x):
    np.testing.assert_allclose(A.sigmoid(-x), 1 - A.sigmoid(x), rtol=0, atol=1e-15)
    np.testing.assert_allclose(A.sigmoid_grad(x), A.sigmoid(x) * (1 - A.sigmoid(x)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(A.tanh(x), 2 * A.sigmoid(2 * x) - 1, rtol=0, atol=1e-14)


@given(matrices)
def test_derivatives_agree_with_central_differences(x):
    x = np.clip(x, -8, 8)
    x = x[np.abs(x) > 1e-3]  # keep away from the kinks of relu, leaky relu and elu at 0
    h = 1e-6
    for name, (f, f_grad, _, kwargs) in ELEMENTWISE.items():
        numeric = (f(x + h, **kwargs) - f(x - h, **kwargs)) / (2 * h)
        np.testing.assert_allclose(f_grad(x, **kwargs), numeric, rtol=1e-5, atol=1e-7, err_msg=name)


ALL_UNARY = [(f, kwargs) for f, _, _, kwargs in ELEMENTWISE.values()] + \
            [(g, kwargs) for _, g, _, kwargs in ELEMENTWISE.values()] + \
            [(A.softmax, {}), (A.log_softmax, {})]


@pytest.mark.parametrize("f, kwargs", ALL_UNARY, ids=lambda v: getattr(v, "__name__", str(v)))
def test_stable_for_inputs_up_to_1e3(f, kwargs):
    # Overflow, division by zero and invalid operations (nan) would raise; underflow of
    # e^{-1000} to 0 is the correctly rounded result and stays allowed (NumPy's default).
    x = np.concatenate([np.linspace(-1e3, 1e3, 41), [-1e3, 1e3, 0.0, -745.0, 710.0]]).reshape(2, -1)
    with np.errstate(over="raise", divide="raise", invalid="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = f(x, **kwargs)
    assert np.all(np.isfinite(y))


def test_stable_vjps_and_extreme_values():
    x = np.array([[-1e3, 0.0, 1e3], [1e3, 1e3, -1e3]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert np.all(np.isfinite(A.softmax_backward(np.ones_like(x), x)))
        assert np.all(np.isfinite(A.log_softmax_backward(np.ones_like(x), x)))
        np.testing.assert_allclose(A.log_softmax(x), [[-2000.0, -1000.0, 0.0], [-np.log(2), -np.log(2), -2000 - np.log(2)]])
    np.testing.assert_array_equal(A.sigmoid([-1e3, 1e3]), [0.0, 1.0])
    np.testing.assert_array_equal(A.elu([-1e3, 1e3]), [-1.0, 1e3])


# --- bad input ----------------------------------------------------------------------

PUBLIC = [getattr(A, name) for name in A.__all__]


@pytest.mark.parametrize("f", PUBLIC, ids=lambda f: f.__name__)
def test_every_function_rejects_non_numeric_x(f):
    args = (np.ones(2), ["a", "b"]) if f in (A.softmax_backward, A.log_softmax_backward) else (["a", "b"],)
    with pytest.raises(TypeError, match=r"`x` must be a real-valued array.*Received: x with dtype <U1"):
        f(*args)


@pytest.mark.parametrize("f", [A.leaky_relu, A.leaky_relu_grad])
def test_leaky_relu_rejects_bad_slope(f):
    with pytest.raises(TypeError, match=r"`negative_slope` must be a finite real number. Received: negative_slope='0.1'"):
        f(np.ones(2), negative_slope="0.1")
    with pytest.raises(TypeError, match=r"Received: negative_slope=nan"):
        f(np.ones(2), negative_slope=float("nan"))


@pytest.mark.parametrize("f", [A.elu, A.elu_grad])
def test_elu_rejects_bad_alpha(f):
    with pytest.raises(TypeError, match=r"`alpha` must be a finite real number. Received: alpha=None"):
        f(np.ones(2), alpha=None)


@pytest.mark.parametrize("f", [A.gelu, A.gelu_grad])
def test_gelu_rejects_unknown_approximation(f):
    with pytest.raises(ValueError, match=r"Received: approximate=True"):
        f(np.ones(2), approximate=True)


@pytest.mark.parametrize("f", [A.softmax, A.log_softmax])
def test_softmax_family_rejects_bad_axis_and_scalars(f):
    with pytest.raises(ValueError, match=r"Received: axis=2"):
        f(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match=r"Received: axis=1.0"):
        f(np.ones((2, 3)), axis=1.0)
    with pytest.raises(ValueError, match=r"Received: x.shape=\(\)"):
        f(np.float64(1.0))


@pytest.mark.parametrize("f", [A.softmax_backward, A.log_softmax_backward])
def test_vjps_reject_bad_upstream_and_axis(f):
    with pytest.raises(ValueError, match=r"`upstream` must have the shape of `x` \(2, 3\). Received: upstream.shape=\(3, 2\)"):
        f(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"Received: upstream with dtype object"):
        f(np.array([None, None]), np.ones(2))
    with pytest.raises(ValueError, match=r"Received: axis=-3"):
        f(np.ones((2, 3)), np.ones((2, 3)), axis=-3)
