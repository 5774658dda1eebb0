"""dlnotes.scratch.autograd: every op's value and gradient against torch.autograd, in float64."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.scratch import autograd
from dlnotes.scratch.autograd import Tensor
from tests.helpers import assert_close, assert_matches_torch

GRAD_TOL = dict(rtol=1e-10, atol=1e-12, grad_rtol=1e-10, grad_atol=1e-12)


def engine(fn):
    """(ours, grad_ours) for assert_matches_torch: run ``fn`` on Tensors, backprop sum(upstream * out)."""
    def ours(*arrays):
        return fn(*[Tensor(a) for a in arrays]).data

    def grad_ours(*arrays_and_upstream):
        *arrays, upstream = arrays_and_upstream
        tensors = [Tensor(a) for a in arrays]
        (fn(*tensors) * upstream).sum().backward()
        return [np.zeros_like(t.data) if t.grad is None else t.grad for t in tensors]
    return ours, grad_ours


def arrays(*shapes, positive=False, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, s) if positive else rng.standard_normal(s) for s in shapes]


TARGET = np.random.default_rng(9).standard_normal((4, 3))
CLASSES = np.array([0, 2, 1, 2])

# (id, our function of Tensors, torch function of tensors, input shapes, positive inputs)
CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 4)], False),
    ("add-broadcast-column-row", lambda a, b: a + b, lambda a, b: a + b, [(3, 1), (4,)], False),
    ("add-broadcast-3d", lambda a, b: a + b, lambda a, b: a + b, [(2, 3, 4), (4,)], False),
    ("add-0d", lambda a, b: a + b, lambda a, b: a + b, [(), (2, 3)], False),
    ("sub-broadcast", lambda a, b: a - b, lambda a, b: a - b, [(3, 4), (1, 4)], False),
    ("neg", lambda a: -a, lambda a: -a, [(5,)], False),
    ("mul-broadcast", lambda a, b: a * b, lambda a, b: a * b, [(2, 1, 4), (3, 1)], False),
    ("div-broadcast", lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (4,)], True),
    ("scalar-left-ops", lambda a: 2.0 - a * 3.0 + 1.5 / a, lambda a: 2.0 - a * 3.0 + 1.5 / a, [(3,)], True),
    ("ndarray-left-ops", lambda a: np.arange(3.0) * a + np.ones(3) @ a.reshape(3, 1),
     lambda a: torch.arange(3.0, dtype=torch.float64) * a + torch.ones(3, dtype=torch.float64) @ a.reshape(3, 1),
     [(3,)], False),
    ("matmul", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 5)], False),
    ("matmul-matrix-vector", lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)], False),
    ("matmul-vector-matrix", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4, 3)], False),
    ("matmul-vector-vector", lambda a, b: a @ b, lambda a, b: a @ b, [(4,), (4,)], False),
    ("matmul-batched-broadcast", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4, 5)], False),
    ("matmul-batched", lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (1, 4, 2)], False),
    ("pow-2", lambda a: a**2, lambda a: a**2, [(3, 4)], False),
    ("pow-half", lambda a: a**0.5, lambda a: a**0.5, [(3, 4)], True),
    ("pow-negative", lambda a: a**-1.5, lambda a: a**-1.5, [(3, 4)], True),
    ("exp", lambda a: a.exp(), torch.exp, [(3, 4)], False),
    ("log", lambda a: a.log(), torch.log, [(3, 4)], True),
    ("sum-all", lambda a: a.sum(), torch.sum, [(3, 4)], False),
    ("sum-axis0", lambda a: a.sum(axis=0), lambda a: a.sum(dim=0), [(3, 4)], False),
    ("sum-axes-keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True),
     lambda a: a.sum(dim=(0, 2), keepdim=True), [(2, 3, 4)], False),
    ("sum-negative-axis", lambda a: a.sum(axis=-1), lambda a: a.sum(dim=-1), [(2, 3, 4)], False),
    ("mean-all", lambda a: a.mean(), torch.mean, [(3, 4)], False),
    ("mean-axis-keepdims", lambda a: a.mean(axis=1, keepdims=True), lambda a: a.mean(dim=1, keepdim=True),
     [(2, 3, 4)], False),
    ("reshape", lambda a: a.reshape(4, 6) * np.arange(24.0).reshape(4, 6),
     lambda a: a.reshape(4, 6) * torch.arange(24.0, dtype=torch.float64).reshape(4, 6), [(2, 3, 4)], False),
    ("reshape-tuple", lambda a: a.reshape((-1,)), lambda a: a.reshape(-1), [(2, 3)], False),
    ("transpose-default", lambda a: a.transpose(), lambda a: a.permute(2, 1, 0), [(2, 3, 4)], False),
    ("transpose-axes", lambda a: a.transpose(1, 0, 2), lambda a: a.permute(1, 0, 2), [(2, 3, 4)], False),
    ("T", lambda a: a.T, lambda a: a.T, [(3, 4)], False),
    ("relu", lambda a: a.relu(), torch.relu, [(4, 5)], False),
    ("tanh", lambda a: a.tanh(), torch.tanh, [(4, 5)], False),
    ("sigmoid", lambda a: a.sigmoid(), torch.sigmoid, [(4, 5)], False),
    ("softmax", lambda a: a.softmax(), lambda a: torch.softmax(a, dim=-1), [(4, 5)], False),
    ("softmax-axis0", lambda a: autograd.softmax(a, axis=0), lambda a: torch.softmax(a, dim=0), [(4, 5)], False),
    ("log_softmax", lambda a: a.log_softmax(), lambda a: torch.log_softmax(a, dim=-1), [(4, 5)], False),
    ("log_softmax-3d-axis1", lambda a: autograd.log_softmax(a, axis=1), lambda a: torch.log_softmax(a, dim=1),
     [(2, 3, 4)], False),
    ("functional-activations", lambda a: autograd.relu(a) + autograd.tanh(a) * autograd.sigmoid(a),
     lambda a: torch.relu(a) + torch.tanh(a) * torch.sigmoid(a), [(3, 4)], False),
    ("mse", lambda a: autograd.mse(a, TARGET),
     lambda a: torch.nn.functional.mse_loss(a, torch.tensor(TARGET)), [(4, 3)], False),
    ("cross_entropy", lambda a: autograd.cross_entropy(a, CLASSES),
     lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(CLASSES)), [(4, 3)], False),
]


@pytest.mark.parametrize("ours, theirs, shapes, positive", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_op_value_and_gradient_match_torch(ours, theirs, shapes, positive):
    fn, grad_fn = engine(ours)
    assert_matches_torch(fn, theirs, arrays(*shapes, positive=positive), grad_ours=grad_fn, **GRAD_TOL)


def test_reused_value_gets_the_sum_of_its_gradients():
    x = Tensor([1.5, -2.0])
    y = x * x + x.exp() * x  # x appears four times
    y.sum().backward()
    assert_close("dy/dx", x.grad, 2 * x.data + np.exp(x.data) * (1 + x.data), rtol=1e-14, atol=0)


def test_gradients_accumulate_over_backward_calls_and_zero_grad_resets():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]])
    loss = (x.tanh() * x).sum()
    loss.backward()
    once = x.grad.copy()
    loss.backward()  # the same graph again: leaves accumulate, intermediates are recomputed
    assert_close("two backward calls", x.grad, 2 * once, rtol=1e-15, atol=0)
    x.zero_grad()
    assert x.grad is None
    loss.backward()
    assert_close("after zero_grad", x.grad, once, rtol=1e-15, atol=0)


def test_untracked_tensors_get_no_gradient():
    data = Tensor(np.ones((2, 3)), requires_grad=False)
    w = Tensor(np.full((3, 1), 0.5))
    (data @ w).sum().backward()
    assert data.grad is None and w.grad.shape == (3, 1)
    assert not (data * 2.0).requires_grad


def test_deep_graph_has_no_recursion_error():
    x = Tensor(0.3)
    y = x
    for _ in range(6000):
        y = (y * 1.0001).tanh() + 0.001
    y.backward()
    expected = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    z = expected
    for _ in range(6000):
        z = torch.tanh(z * 1.0001) + 0.001
    z.backward()
    assert_close("deep graph", x.grad, expected.grad, rtol=1e-10, atol=1e-14)


# -- random expression graphs --------------------------------------------------------------------
# Each step applies one op to the running value; binary ops take a fresh leaf of a shape that
# broadcasts against it, or an earlier intermediate (so the graph is a DAG, not a chain).
UNARY = [
    ("tanh", lambda v: v.tanh(), torch.tanh),
    ("sigmoid", lambda v: v.sigmoid(), torch.sigmoid),
    ("neg", lambda v: -v, lambda v: -v),
    ("square", lambda v: v**2, lambda v: v**2),
    ("exp-tanh", lambda v: v.tanh().exp(), lambda v: torch.tanh(v).exp()),
    ("log-1+square", lambda v: (v * v + 1.0).log(), lambda v: (v * v + 1.0).log()),
    ("softmax", lambda v: v.softmax(), lambda v: torch.softmax(v, dim=-1)),
    ("log_softmax", lambda v: v.log_softmax(), lambda v: torch.log_softmax(v, dim=-1)),
    ("relu-shifted", lambda v: (v + 0.123).relu(), lambda v: torch.relu(v + 0.123)),
    ("sum-last-keepdims", lambda v: v.sum(axis=-1, keepdims=True), lambda v: v.sum(dim=-1, keepdim=True)),
    ("mean-first-keepdims", lambda v: v.mean(axis=0, keepdims=True), lambda v: v.mean(dim=0, keepdim=True)),
    ("transpose", lambda v: v.transpose(), lambda v: v.permute(*reversed(range(v.ndim)))),
    ("flatten-back", lambda v: v.reshape(-1).reshape(v.shape), lambda v: v.reshape(-1).reshape(v.shape)),
]
BINARY = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("sub", lambda a, b: a - b, lambda a, b: a - b),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("div", lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
]


@st.composite
def expression_graphs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            steps.append(("unary", draw(st.integers(0, len(UNARY) - 1))))
        else:
            # a broadcastable leaf shape: a suffix of the current shape with some axes set to 1
            steps.append(("binary", draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, 3)), draw(st.lists(st.booleans(), min_size=3, max_size=3)),
                          draw(st.booleans())))
    return shape, steps, draw(st.integers(0, 2**31 - 1))


def run_graph(shape, steps, seed, lib):
    """Evaluate the same random program with our Tensors (lib='ours') or torch; returns (output, leaves)."""
    rng = np.random.default_rng(seed)
    make = (lambda a: Tensor(a)) if lib == "ours" else (lambda a: torch.tensor(a, requires_grad=True))
    leaves = [make(rng.standard_normal(shape))]
    value, history = leaves[0], [leaves[0]]
    for step in steps:
        if step[0] == "unary":
            value = UNARY[step[1]][1 if lib == "ours" else 2](value)
        else:
            _, op, drop, ones, reuse = step
            same_shape = [h for h in history if tuple(h.shape) == tuple(value.shape)]
            if reuse and len(same_shape) > 1:
                other = same_shape[len(same_shape) // 2]
            else:
                cur = tuple(value.shape)
                leaf_shape = tuple(1 if one else n for n, one in zip(cur[min(drop, len(cur)):], ones))
                leaf_shape = leaf_shape + cur[min(drop, len(cur)) + len(leaf_shape):]
                other = make(rng.standard_normal(leaf_shape))
                leaves.append(other)
            value = BINARY[op][1 if lib == "ours" else 2](value, other)
        history.append(value)
    upstream = np.random.default_rng(seed + 1).standard_normal(tuple(value.shape))
    weight = Tensor(upstream, requires_grad=False) if lib == "ours" else torch.tensor(upstream)
    return (value * weight).sum(), leaves


@settings(max_examples=40, deadline=None)
@given(expression_graphs())
def test_random_expression_graphs_match_torch(graph):
    shape, steps, seed = graph
    ours, our_leaves = run_graph(shape, steps, seed, "ours")
    theirs, their_leaves = run_graph(shape, steps, seed, "torch")
    assert_close("value", ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    ours.backward()
    grads = torch.autograd.grad(theirs, their_leaves, allow_unused=True)
    for i, (leaf, grad) in enumerate(zip(our_leaves, grads)):
        expected = np.zeros(leaf.shape) if grad is None else grad.numpy()
        received = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad
        assert_close(f"gradient of leaf {i}", received, expected, rtol=1e-9, atol=1e-11)


# -- bad input -------------------------------------------------------------------------------------
def test_backward_needs_a_tracked_scalar():
    with pytest.raises(ValueError, match=r"scalar output.*shape=\(2, 3\)"):
        Tensor(np.ones((2, 3))).backward()
    with pytest.raises(ValueError, match="requires_grad=False"):
        Tensor(1.0, requires_grad=False).backward()


@pytest.mark.parametrize("fn, match", [
    (lambda a, b: a + b, r"add tensors of shapes \(2, 3\) and \(2,\)"),
    (lambda a, b: a - b, r"add tensors of shapes \(2, 3\) and \(2,\)"),
    (lambda a, b: a * b, r"multiply tensors of shapes \(2, 3\) and \(2,\)"),
    (lambda a, b: a / b, r"divide tensors of shapes \(2, 3\) and \(2,\)"),
    (lambda a, b: a @ b, r"matmul tensors of shapes \(2, 3\) and \(2,\)"),
])
def test_shape_mismatch_is_a_clear_value_error(fn, match):
    with pytest.raises(ValueError, match=match):
        fn(Tensor(np.ones((2, 3))), Tensor(np.ones(2)))


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="Received: data='abc'"):
        Tensor("abc")
    with pytest.raises(TypeError, match="not boolean"):
        Tensor(np.array([True, False]))
    with pytest.raises(TypeError, match="requires_grad=1"):
        Tensor(1.0, requires_grad=1)
    with pytest.raises(TypeError, match="Received: other='x'"):
        Tensor(1.0) + "x"


def test_bad_op_arguments():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="exponent=Tensor"):
        x ** Tensor(2.0)
    with pytest.raises(ValueError, match="axis=2"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match=r"axis=\(0, 'a'\)"):
        x.mean(axis=(0, "a"))
    with pytest.raises(ValueError, match="axis=-3"):
        x.softmax(axis=-3)
    with pytest.raises(ValueError, match=r"reshape a tensor of shape \(2, 3\) to \(4,\)"):
        x.reshape(4)
    with pytest.raises(ValueError, match=r"axes=\(0, 0\)"):
        x.transpose(0, 0)
    with pytest.raises(ValueError, match=r"matmul tensors of shapes \(\) and \(2, 3\)"):
        Tensor(2.0) @ x
    with pytest.raises(TypeError, match="`x` must be a dlnotes.scratch.autograd.Tensor.*ndarray"):
        autograd.tanh(np.ones(3))


def test_bad_loss_arguments():
    logits = Tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"y_true.shape=\(3,\)"):
        autograd.mse(logits, np.zeros(3))
    with pytest.raises(TypeError, match="dtype float64"):
        autograd.cross_entropy(logits, np.zeros(3))
    with pytest.raises(ValueError, match=r"target.shape=\(2,\)"):
        autograd.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"values in \[0, 4\]"):
        autograd.cross_entropy(logits, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"logits.shape=\(4,\)"):
        autograd.cross_entropy(Tensor(np.zeros(4)), np.array([0]))
    with pytest.raises(TypeError, match="`logits` must be a dlnotes.scratch.autograd.Tensor"):
        autograd.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 2]))


def test_unbroadcast_sums_to_shape_and_rejects_bad_shapes():
    g = np.arange(24.0).reshape(2, 3, 4)
    assert_close("unbroadcast", autograd.unbroadcast(g, (3, 1)), g.sum(axis=(0, 2))[:, None], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"shape=\(1, 2, 3, 4\)"):
        autograd.unbroadcast(g, (1, 2, 3, 4))
