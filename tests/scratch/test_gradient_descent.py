"""dlnotes.scratch.gradient_descent: gradients against torch autograd, solutions against closed forms.

Tolerances: gradients versus torch autograd (float64) rtol=1e-10; trajectories versus
torch.optim.SGD rtol=1e-10, atol=1e-12; converged gradient descent versus the closed-form
least-squares solution 1e-8.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dlnotes.scratch import gradient_descent as gd, losses
from tests.helpers import assert_close


def spd(d=4, cond=50.0, seed=0):
    """A random symmetric positive-definite matrix with eigenvalues from 1 to ``cond``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return Q @ np.diag(np.geomspace(1.0, cond, d)) @ Q.T


@pytest.fixture
def regression():
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.standard_normal((50, 3)), np.ones(50)])
    y = X @ np.array([1.5, -2.0, 0.5, 0.3]) + 0.1 * rng.standard_normal(50)
    return X, y


def torch_grad(f, theta):
    t = torch.tensor(theta, requires_grad=True)
    f(t).backward()
    return t.grad


def test_quadratic_and_gradient_match_torch():
    A, b, theta = spd(), np.array([1.0, -2.0, 0.5, 3.0]), np.array([0.3, -0.1, 2.0, 1.0])
    tA, tb = torch.tensor(A), torch.tensor(b)
    J = lambda t: 0.5 * t @ tA @ t - tb @ t  # noqa: E731
    assert gd.quadratic(theta, A, b) == pytest.approx(J(torch.tensor(theta)).item(), rel=1e-12)
    assert_close("quadratic_grad", gd.quadratic_grad(theta, A, b), torch_grad(J, theta), rtol=1e-10, atol=1e-12)


@given(x=st.floats(-2, 2), y=st.floats(-1, 3), a=st.floats(0.5, 2), b=st.floats(1, 200))
def test_rosenbrock_gradient_matches_torch(x, y, a, b):
    theta = np.array([x, y])
    f = lambda t: (a - t[0]) ** 2 + b * (t[1] - t[0] ** 2) ** 2  # noqa: E731
    assert gd.rosenbrock(theta, a, b) == pytest.approx(f(torch.tensor(theta)).item(), rel=1e-12, abs=1e-12)
    assert_close("rosenbrock_grad", gd.rosenbrock_grad(theta, a, b), torch_grad(f, theta), rtol=1e-10, atol=1e-9)


def test_rosenbrock_minimum():
    assert gd.rosenbrock([1.0, 1.0]) == 0.0
    np.testing.assert_array_equal(gd.rosenbrock_grad([2.0, 4.0], a=2.0), [0.0, 0.0])


def test_mse_is_the_loss_of_the_predictions(regression):
    X, y = regression
    w = np.array([0.1, 0.2, -0.3, 0.4])
    assert gd.mse(w, X, y) == losses.mse(X @ w, y)
    np.testing.assert_array_equal(gd.mse_grad(w, X, y), X.T @ losses.mse_grad(X @ w, y))


def test_mse_and_gradient_match_torch(regression):
    X, y = regression
    w = np.array([0.1, 0.2, -0.3, 0.4])
    f = lambda t: torch.nn.functional.mse_loss(torch.tensor(X) @ t, torch.tensor(y))  # noqa: E731
    assert gd.mse(w, X, y) == pytest.approx(f(torch.tensor(w)).item(), rel=1e-12)
    assert_close("mse_grad", gd.mse_grad(w, X, y), torch_grad(f, w), rtol=1e-10, atol=1e-12)


def test_gradient_descent_matches_torch_sgd():
    A, b = spd(), np.ones(4)
    path = gd.gradient_descent(lambda th: gd.quadratic_grad(th, A, b), np.zeros(4), lr=0.03, steps=30)
    assert path.shape == (31, 4)
    t = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([t], lr=0.03)
    tA, tb = torch.tensor(A), torch.tensor(b)
    for step in range(1, 31):
        opt.zero_grad()
        (0.5 * t @ tA @ t - tb @ t).backward()
        opt.step()
        assert_close(f"theta_{step}", path[step], t, rtol=1e-10, atol=1e-12)


def test_gradient_descent_zero_steps_returns_start():
    np.testing.assert_array_equal(gd.gradient_descent(lambda th: th, [1.0, 2.0], 0.1, 0), [[1.0, 2.0]])


def test_lipschitz_constant_is_largest_eigenvalue():
    assert gd.lipschitz_constant(np.diag([1.0, 7.0, 3.0])) == pytest.approx(7.0, rel=1e-14)
    assert gd.lipschitz_constant(spd(cond=50.0)) == pytest.approx(50.0, rel=1e-10)


@pytest.mark.parametrize("factor, converges", [(0.98, True), (1.02, False)])
def test_step_size_bound_two_over_L(factor, converges):
    A, b = spd(cond=20.0, seed=1), np.ones(4)
    lr = factor * 2.0 / gd.lipschitz_constant(A)
    path = gd.gradient_descent(lambda th: gd.quadratic_grad(th, A, b), np.zeros(4), lr=lr, steps=1500)
    error = np.linalg.norm(path[-1] - np.linalg.solve(A, b))
    assert (error < 1e-6) == converges, error


@pytest.mark.parametrize("method", ["lstsq", "normal"])
def test_closed_form_matches_torch_lstsq(regression, method):
    X, y = regression
    expected = torch.linalg.lstsq(torch.tensor(X), torch.tensor(y)[:, None]).solution[:, 0]
    assert_close(method, gd.linear_regression_closed_form(X, y, method), expected, rtol=1e-10, atol=1e-12)


def test_gradient_descent_reaches_the_closed_form(regression):
    X, y = regression
    L = gd.lipschitz_constant(2.0 / len(y) * X.T @ X)
    path = gd.gradient_descent(lambda w: gd.mse_grad(w, X, y), np.zeros(4), lr=1.0 / L, steps=2000)
    np.testing.assert_allclose(path[-1], gd.linear_regression_closed_form(X, y), rtol=1e-8, atol=1e-8)


def test_minibatch_sgd_full_batch_is_gradient_descent(regression):
    X, y = regression
    out = gd.minibatch_sgd(X, y, np.zeros(4), lr=0.1, epochs=20, batch_size=len(y))
    path = gd.gradient_descent(lambda w: gd.mse_grad(w, X, y), np.zeros(4), lr=0.1, steps=20)
    np.testing.assert_allclose(out["w"], path[-1], rtol=1e-12)
    np.testing.assert_allclose(out["losses"], [gd.mse(w, X, y) for w in path], rtol=1e-12)


def test_minibatch_sgd_counts_steps_and_examples(regression):
    X, y = regression  # 50 examples: batches of 16 give 4 steps per epoch (16, 16, 16, 2)
    out = gd.minibatch_sgd(X, y, np.zeros(4), lr=0.05, epochs=3, batch_size=16, seed=1)
    assert out["losses"].shape == out["examples"].shape == (13,)
    np.testing.assert_array_equal(out["examples"][:5], [0, 16, 32, 48, 50])
    assert out["examples"][-1] == 150
    assert out["losses"][-1] < 0.2 * out["losses"][0]


def test_minibatch_sgd_matches_torch_dataloader_style_loop(regression):
    X, y = regression
    out = gd.minibatch_sgd(X, y, np.zeros(4), lr=0.05, epochs=2, batch_size=8, seed=5)
    rng = np.random.default_rng(5)  # the same shuffles, replayed with torch doing the updates
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.05)
    tX, ty = torch.tensor(X), torch.tensor(y)
    for _ in range(2):
        order = rng.permutation(len(y))
        for start in range(0, len(y), 8):
            idx = torch.tensor(order[start:start + 8])
            opt.zero_grad()
            torch.nn.functional.mse_loss(tX[idx] @ w, ty[idx]).backward()
            opt.step()
    assert_close("w", out["w"], w, rtol=1e-10, atol=1e-12)


# --- bad input ---------------------------------------------------------------------------------------

def test_bad_inputs_rejected(regression):
    X, y = regression
    A = spd()
    grad = lambda th: th  # noqa: E731
    with pytest.raises(ValueError, match=r"`lr` must be a positive number. Received: lr=-0.1"):
        gd.gradient_descent(grad, [0.0], lr=-0.1, steps=3)
    with pytest.raises(ValueError, match=r"`steps` must be a non-negative integer. Received: steps=-1"):
        gd.gradient_descent(grad, [0.0], lr=0.1, steps=-1)
    with pytest.raises(ValueError, match=r"Received: steps=True"):
        gd.gradient_descent(grad, [0.0], lr=0.1, steps=True)
    with pytest.raises(TypeError, match=r"`theta0` must be a real-valued array"):
        gd.gradient_descent(grad, ["a"], lr=0.1, steps=1)
    with pytest.raises(TypeError, match=r"Received: grad_fn of type str"):
        gd.gradient_descent("grad", [0.0], lr=0.1, steps=1)
    with pytest.raises(ValueError, match=r"`theta0` must be a vector 1-D. Received: theta0 with shape \(2, 2\)"):
        gd.gradient_descent(grad, np.zeros((2, 2)), lr=0.1, steps=1)
    with pytest.raises(ValueError, match=r"`A` must be a symmetric square matrix. Received: A with shape \(2, 3\)"):
        gd.lipschitz_constant(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"`A` must be a symmetric"):
        gd.quadratic(np.zeros(2), np.array([[1.0, 2.0], [0.0, 1.0]]), np.zeros(2))
    with pytest.raises(ValueError, match=r"`b` must be a vector of length 4. Received: b with shape \(3,\)"):
        gd.quadratic_grad(np.zeros(4), A, np.zeros(3))
    with pytest.raises(ValueError, match=r"`theta` must be a vector of length 2. Received: theta with shape \(3,\)"):
        gd.rosenbrock(np.zeros(3))
    with pytest.raises(ValueError, match=r"`theta` must be a vector of length 2"):
        gd.rosenbrock_grad([1.0])
    with pytest.raises(ValueError, match=r"`X` must be 2-D\. Received: X.shape=\(50,\)"):
        gd.mse(np.zeros(4), y, y)
    with pytest.raises(ValueError, match=r"`y` must be a vector of length 50. Received: y with shape \(49,\)"):
        gd.mse_grad(np.zeros(4), X, y[:-1])
    with pytest.raises(ValueError, match=r"`w` must be a vector of length 4"):
        gd.mse(np.zeros(3), X, y)
    with pytest.raises(TypeError, match=r"`X` must be a real-valued array .* Received: X with dtype <U1"):
        gd.mse_grad(np.zeros(1), np.array([["a"]]), y[:1])
    with pytest.raises(ValueError, match=r"Received: method='qr'"):
        gd.linear_regression_closed_form(X, y, method="qr")
    with pytest.raises(ValueError, match=r"at most the number of examples 50. Received: batch_size=51"):
        gd.minibatch_sgd(X, y, np.zeros(4), lr=0.1, epochs=1, batch_size=51)
    with pytest.raises(ValueError, match=r"Received: batch_size=0"):
        gd.minibatch_sgd(X, y, np.zeros(4), lr=0.1, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match=r"Received: epochs=0"):
        gd.minibatch_sgd(X, y, np.zeros(4), lr=0.1, epochs=0, batch_size=5)
    with pytest.raises(ValueError, match=r"Received: lr=0"):
        gd.minibatch_sgd(X, y, np.zeros(4), lr=0, epochs=1, batch_size=5)
