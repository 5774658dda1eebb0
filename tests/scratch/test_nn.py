"""dlnotes.scratch.nn: layers and MLPs against torch.nn with copied weights; training against torch.optim."""

import warnings

import numpy as np
import pytest
import torch

from dlnotes.scratch import nn, optim
from dlnotes.scratch.autograd import Tensor, cross_entropy
from tests.helpers import assert_close

TORCH_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


def torch_copy(model: nn.MLP) -> torch.nn.Sequential:
    """The same network in torch: Linear weights are our (in, out) kernels transposed."""
    layers = []
    for i, ours in enumerate(model.layers):
        layer = torch.nn.Linear(ours.in_features, ours.out_features, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(ours.weight.data.T))
            layer.bias.copy_(torch.tensor(ours.bias.data))
        layers.append(layer)
        if i < len(model.layers) - 1:
            layers.append(TORCH_ACTIVATIONS[model.activation]())
    return torch.nn.Sequential(*layers)


def assert_same_gradients(model, theirs, tol=1e-10):
    for i, (ours, layer) in enumerate(zip(model.layers, [m for m in theirs if isinstance(m, torch.nn.Linear)])):
        assert_close(f"layer {i} weight grad", ours.weight.grad, layer.weight.grad.T, rtol=tol, atol=1e-12)
        assert_close(f"layer {i} bias grad", ours.bias.grad, layer.bias.grad, rtol=tol, atol=1e-12)


def test_linear_matches_torch_linear_forward_and_gradients():
    rng = np.random.default_rng(0)
    layer = nn.Linear(4, 3, seed=1)
    layer.bias.data[:] = rng.standard_normal(3)  # non-zero bias so it is exercised
    x_np, upstream = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    x = Tensor(x_np)
    (layer(x) * upstream).sum().backward()
    theirs = torch.nn.Linear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(layer.weight.data.T))
        theirs.bias.copy_(torch.tensor(layer.bias.data))
    x_t = torch.tensor(x_np, requires_grad=True)
    out = theirs(x_t)
    (out * torch.tensor(upstream)).sum().backward()
    assert_close("forward", layer(x_np).data, out.detach(), rtol=1e-12, atol=1e-14)
    assert_close("weight grad", layer.weight.grad, theirs.weight.grad.T, rtol=1e-12, atol=1e-14)
    assert_close("bias grad", layer.bias.grad, theirs.bias.grad, rtol=1e-12, atol=1e-14)
    assert_close("input grad", x.grad, x_t.grad, rtol=1e-12, atol=1e-14)


def test_linear_init_is_glorot_uniform_and_seeded():
    layer = nn.Linear(30, 20, seed=0)
    limit = np.sqrt(6 / 50)
    assert layer.weight.shape == (30, 20) and layer.bias.shape == (20,)
    assert np.abs(layer.weight.data).max() <= limit and np.abs(layer.weight.data).max() > 0.9 * limit
    assert not layer.bias.data.any()
    assert np.array_equal(layer.weight.data, nn.Linear(30, 20, seed=0).weight.data)


def test_linear_without_bias_has_one_parameter():
    layer = nn.Linear(3, 2, bias=False, seed=0)
    assert layer.parameters() == [layer.weight] and layer.bias is None
    assert_close("no bias", layer(np.eye(3)).data, layer.weight.data, rtol=0, atol=0)


@pytest.mark.parametrize("activation", nn.ACTIVATIONS)
def test_mlp_matches_torch_sequential(activation):
    rng = np.random.default_rng(3)
    model = nn.MLP([4, 8, 6, 3], activation=activation, seed=0)
    x, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    loss = cross_entropy(model(x), y)
    loss.backward()
    theirs = torch_copy(model)
    expected = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
    expected.backward()
    assert_close("logits", model(x).data, theirs(torch.tensor(x)).detach(), rtol=1e-12, atol=1e-14)
    assert loss.data == pytest.approx(expected.item(), rel=1e-12)
    assert_same_gradients(model, theirs)


def test_parameters_and_zero_grad():
    model = nn.MLP([3, 5, 2], seed=0)
    params = model.parameters()
    assert [p.shape for p in params] == [(3, 5), (5,), (5, 2), (2,)]
    cross_entropy(model(np.ones((2, 3))), np.array([0, 1])).backward()
    assert all(p.grad is not None for p in params)
    model.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("loss, momentum", [("cross_entropy", 0.9), ("mse", 0.0)])
def test_fit_follows_torch_training_step_for_step(loss, momentum):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4))
    y = rng.integers(0, 3, 50) if loss == "cross_entropy" else rng.standard_normal((50, 3))
    model = nn.MLP([4, 7, 3], activation="tanh", seed=1)
    theirs = torch_copy(model)
    opt = optim.SGD([p.data for p in model.parameters()], lr=0.1, momentum=momentum)
    history = nn.fit(model, x, y, opt, loss=loss, epochs=3, batch_size=16, seed=5)

    torch_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum)
    loss_fn = torch.nn.functional.cross_entropy if loss == "cross_entropy" else torch.nn.functional.mse_loss
    order_rng, expected = np.random.default_rng(5), []
    for _ in range(3):
        order, total = order_rng.permutation(50), 0.0
        for start in range(0, 50, 16):
            batch = order[start:start + 16]
            value = loss_fn(theirs(torch.tensor(x[batch])), torch.tensor(y[batch]))
            torch_opt.zero_grad()
            value.backward()
            torch_opt.step()
            total += value.item() * len(batch)
        expected.append(total / 50)
    assert_close("epoch losses", np.array(history), np.array(expected), rtol=1e-10, atol=0)
    assert_close("final weights", model.layers[0].weight.data, theirs[0].weight.detach().T, rtol=1e-9, atol=1e-12)
    assert history[-1] < history[0]


def test_perceptron_matches_sklearn_and_converges_on_separable_data():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Perceptron

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2))
    y = np.where(x @ np.array([1.0, -2.0]) + 0.3 > 0, 1, -1)
    ours = nn.Perceptron(2)
    ours.fit(x, y, epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = Perceptron(eta0=1.0, shuffle=False, max_iter=2, tol=None).fit(x, y)
    assert_close("w", ours.w, theirs.coef_[0], rtol=1e-12, atol=0)
    assert ours.b == pytest.approx(theirs.intercept_[0])
    converged = nn.Perceptron(2)
    mistakes = converged.fit(x, y, epochs=1000)
    assert mistakes[-1] == 0 and len(mistakes) < 1000
    assert np.array_equal(converged.predict(x), y)


def test_perceptron_never_converges_on_xor():
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([-1, 1, 1, -1])
    p = nn.Perceptron(2)
    mistakes = p.fit(x, y, epochs=200)
    assert len(mistakes) == 200 and min(mistakes) > 0
    assert (p.predict(x) == y).mean() < 1


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, error, match", [
    ((0, 3), ValueError, "in_features=0"),
    ((2, 2.5), ValueError, "out_features=2.5"),
    ((True, 2), ValueError, "in_features=True"),
])
def test_linear_rejects_bad_sizes(args, error, match):
    with pytest.raises(error, match=match):
        nn.Linear(*args)


def test_bad_arguments():
    with pytest.raises(TypeError, match="seed='a'"):
        nn.Linear(2, 2, seed="a")
    with pytest.raises(ValueError, match=r"x.shape=\(5, 3\)"):
        nn.Linear(4, 2)(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"sizes=\[3\]"):
        nn.MLP([3])
    with pytest.raises(ValueError, match="sizes=4"):
        nn.MLP(4)
    with pytest.raises(ValueError, match=r"sizes\[i\]=0"):
        nn.MLP([3, 0, 2])
    with pytest.raises(ValueError, match="activation='softplus'"):
        nn.MLP([3, 2], activation="softplus")
    with pytest.raises(NotImplementedError):
        nn.Module()(np.ones(2))


def test_fit_rejects_bad_arguments():
    model = nn.MLP([3, 2], seed=0)
    x, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    opt = optim.SGD([p.data for p in model.parameters()], lr=0.1)
    with pytest.raises(ValueError, match="loss='hinge'"):
        nn.fit(model, x, y, opt, loss="hinge")
    with pytest.raises(ValueError, match="epochs=0"):
        nn.fit(model, x, y, opt, epochs=0)
    with pytest.raises(ValueError, match="batch_size=-1"):
        nn.fit(model, x, y, opt, batch_size=-1)
    with pytest.raises(ValueError, match=r"x.shape=\(4, 3\), y.shape=\(3,\)"):
        nn.fit(model, x, y[:3], opt)
    copies = optim.SGD([p.data.copy() for p in model.parameters()], lr=0.1)
    with pytest.raises(ValueError, match="must be built over"):
        nn.fit(model, x, y, copies)


def test_perceptron_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_features=0"):
        nn.Perceptron(0)
    with pytest.raises(ValueError, match="lr=-1"):
        nn.Perceptron(2, lr=-1)
    p = nn.Perceptron(2)
    with pytest.raises(ValueError, match=r"x.shape=\(3, 3\)"):
        p.predict(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"y=array\(\[0, 1, 1\]\)"):
        p.fit(np.ones((3, 2)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="epochs=0"):
        p.fit(np.ones((3, 2)), np.array([1, 1, -1]), epochs=0)
