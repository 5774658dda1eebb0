"""dlnotes.scratch.rnn: cells and unrolled layers against torch.nn.RNN/LSTM/GRU and their cells, in float64."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from dlnotes.scratch import rnn
from tests.helpers import assert_close, assert_matches_torch

T, N, I, H = 23, 3, 4, 5  # a sequence of length >= 20
TOL = dict(rtol=1e-9, atol=1e-12, grad_rtol=1e-9, grad_atol=1e-11)
GATES = {kind: len(names) for kind, names in rnn.GATE_ORDER.items()}
SEQ_FORWARD = {"rnn": rnn.rnn_forward, "lstm": rnn.lstm_forward, "gru": rnn.gru_forward}
SEQ_BACKWARD = {"rnn": rnn.rnn_backward, "lstm": rnn.lstm_backward, "gru": rnn.gru_backward}
PARAMS = ("W_ih", "W_hh", "b_ih", "b_hh")


def make_weights(kind, hidden=H, inputs=I, seed=0):
    """Random weights in torch's layout, scaled like torch's default U(-1/sqrt(H), 1/sqrt(H)) but wider."""
    rng = np.random.default_rng(seed)
    G = GATES[kind]
    return [rng.uniform(-0.6, 0.6, shape) for shape in ((G * hidden, inputs), (G * hidden, hidden), (G * hidden,), (G * hidden,))]


def torch_names(suffix):
    return {f"weight_ih{suffix}": 0, f"weight_hh{suffix}": 1, f"bias_ih{suffix}": 2, f"bias_hh{suffix}": 3}


def call_module(module, weights, args, suffix=""):
    """Run a torch module with our weight tensors swapped in, so autograd reaches them."""
    return functional_call(module, {name: weights[i] for name, i in torch_names(suffix).items()}, args)


# ----------------------------------------------------------------------------- cells vs torch.nn.*Cell

@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell_matches_torch_rnncell(nonlinearity):
    cell = torch.nn.RNNCell(I, H, nonlinearity=nonlinearity).double()
    rng = np.random.default_rng(1)
    x, h = rng.standard_normal((N, I)), rng.standard_normal((N, H))

    def ours(x, h, *w):
        return rnn.rnn_cell(x, h, *w, nonlinearity=nonlinearity)[0]

    def grads(x, h, *w_and_upstream):
        g = rnn.rnn_cell_backward(w_and_upstream[-1], rnn.rnn_cell(x, h, *w_and_upstream[:-1], nonlinearity=nonlinearity)[1])
        return [g[k] for k in ("x", "h", *PARAMS)]

    assert_matches_torch(ours, lambda x, h, *w: call_module(cell, w, (x, h)), [x, h, *make_weights("rnn")],
                         grad_ours=grads, **TOL)


def test_lstm_cell_matches_torch_lstmcell():
    cell = torch.nn.LSTMCell(I, H).double()
    rng = np.random.default_rng(2)
    x, h, c = rng.standard_normal((N, I)), rng.standard_normal((N, H)), rng.standard_normal((N, H))

    def ours(x, h, c, *w):
        return np.concatenate(rnn.lstm_cell(x, (h, c), *w)[0], axis=-1)

    def grads(x, h, c, *w_and_upstream):
        upstream = w_and_upstream[-1]
        cache = rnn.lstm_cell(x, (h, c), *w_and_upstream[:-1])[1]
        g = rnn.lstm_cell_backward((upstream[:, :H], upstream[:, H:]), cache)
        return [g[k] for k in ("x", "h", "c", *PARAMS)]

    def theirs(x, h, c, *w):
        return torch.cat(call_module(cell, w, (x, (h, c))), dim=-1)

    assert_matches_torch(ours, theirs, [x, h, c, *make_weights("lstm")], grad_ours=grads, **TOL)


def test_gru_cell_matches_torch_grucell():
    cell = torch.nn.GRUCell(I, H).double()
    rng = np.random.default_rng(3)
    x, h = rng.standard_normal((N, I)), rng.standard_normal((N, H))

    def grads(x, h, *w_and_upstream):
        g = rnn.gru_cell_backward(w_and_upstream[-1], rnn.gru_cell(x, h, *w_and_upstream[:-1])[1])
        return [g[k] for k in ("x", "h", *PARAMS)]

    assert_matches_torch(lambda x, h, *w: rnn.gru_cell(x, h, *w)[0], lambda x, h, *w: call_module(cell, w, (x, h)),
                         [x, h, *make_weights("gru")], grad_ours=grads, **TOL)


def test_cells_without_bias_and_without_state_match_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, I))
    for kind, module, ours in [("rnn", torch.nn.RNNCell, lambda x, w: rnn.rnn_cell(x, None, *w)[0]),
                               ("lstm", torch.nn.LSTMCell, lambda x, w: rnn.lstm_cell(x, None, *w)[0][1]),
                               ("gru", torch.nn.GRUCell, lambda x, w: rnn.gru_cell(x, None, *w)[0])]:
        cell = module(I, H, bias=False).double()
        W_ih, W_hh = make_weights(kind)[:2]
        with torch.no_grad():
            cell.weight_ih.copy_(torch.tensor(W_ih))
            cell.weight_hh.copy_(torch.tensor(W_hh))
            expected = cell(torch.tensor(x))
        expected = expected[1] if kind == "lstm" else expected
        assert_close(kind, ours(x, [W_ih, W_hh]), expected, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- gate order

def test_gate_order_means_what_torch_means():
    """Saturating the gates named by split_gates freezes the state, in torch's cells and in ours."""
    rng = np.random.default_rng(5)
    x, h, c = rng.standard_normal((N, I)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    W_ih, W_hh, b_ih, b_hh = make_weights("lstm")
    gates = rnn.split_gates(b_ih, "lstm")
    gates["f"][:], gates["i"][:] = 40.0, -40.0          # keep everything, write nothing: c' = c
    (_, c_ours), _ = rnn.lstm_cell(x, (h, c), W_ih, W_hh, b_ih, np.zeros_like(b_hh))
    cell = torch.nn.LSTMCell(I, H).double()
    with torch.no_grad():
        for p, w in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), (W_ih, W_hh, b_ih, 0 * b_hh)):
            p.copy_(torch.tensor(w))
        _, c_torch = cell(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
    assert_close("lstm c'", c_ours, c, rtol=0, atol=1e-12)
    assert_close("torch c'", c_torch, c, rtol=0, atol=1e-12)

    W_ih, W_hh, b_ih, b_hh = make_weights("gru")
    rnn.split_gates(b_hh, "gru")["z"][:] = 40.0        # update gate closed: h' = h
    h_ours, _ = rnn.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)
    assert_close("gru h'", h_ours, h, rtol=0, atol=1e-12)
    assert rnn.split_gates(W_hh, "gru", axis=0)["n"].shape == (H, H)


# ----------------------------------------------------------------------------- unrolled layers vs torch.nn.RNN/LSTM/GRU

SEQ_CASES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind,nonlinearity", SEQ_CASES)
def test_sequence_layer_outputs_states_and_all_gradients_match_torch(kind, nonlinearity, batch_first):
    """Outputs and final states over T = 23 steps; gradients wrt x, h0 (c0) and every weight."""
    extra = {"nonlinearity": nonlinearity} if nonlinearity else {}
    module = getattr(torch.nn, kind.upper())(I, H, batch_first=batch_first, **extra).double()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((N, T, I) if batch_first else (T, N, I))
    states = [rng.standard_normal((N, H)) for _ in range(2 if kind == "lstm" else 1)]
    n_states = len(states)
    kw = dict(extra, batch_first=batch_first)
    out_size = T * N * H

    def run_ours(x, *rest):
        state = tuple(rest[:n_states]) if kind == "lstm" else rest[0]
        return SEQ_FORWARD[kind](x, state, *rest[n_states:], **kw)

    def flat(out, final):
        final = final if kind == "lstm" else (final,)
        return np.concatenate([out.ravel(), *(f.ravel() for f in final)])

    def ours(x, *rest):
        out, final, _ = run_ours(x, *rest)
        return flat(out, final)

    def grads(x, *rest):
        *inputs, upstream = rest
        out, _, cache = run_ours(x, *inputs)
        d_out = upstream[:out_size].reshape(out.shape)
        d_final = [upstream[out_size + k * N * H: out_size + (k + 1) * N * H].reshape(N, H) for k in range(n_states)]
        g = SEQ_BACKWARD[kind](d_out, tuple(d_final) if kind == "lstm" else d_final[0], cache)
        return [g["x"], g["h0"], *([g["c0"]] if kind == "lstm" else []), *(g[k] for k in PARAMS)]

    def theirs(x, *rest):
        states = tuple(s[None] for s in rest[:n_states])
        out, final = call_module(module, rest[n_states:], (x, states if kind == "lstm" else states[0]), "_l0")
        final = final if kind == "lstm" else (final,)
        return torch.cat([out.flatten(), *(f.flatten() for f in final)])

    assert_matches_torch(ours, theirs, [x, *states, *make_weights(kind)], grad_ours=grads, **TOL)


def test_lstm_layer_with_weights_copied_into_torch_module():
    """The plain way: copy our weights into torch.nn.LSTM under no_grad and read .grad afterwards."""
    rng = np.random.default_rng(7)
    weights = make_weights("lstm", seed=7)
    x = rng.standard_normal((T, N, I))
    lstm = torch.nn.LSTM(I, H).double()
    with torch.no_grad():
        for name, i in torch_names("_l0").items():
            getattr(lstm, name).copy_(torch.tensor(weights[i]))
    x_t = torch.tensor(x, requires_grad=True)
    out_t, (h_t, c_t) = lstm(x_t)
    (out_t.sum() + 2 * h_t.sum() - c_t.sum()).backward()

    out, (h_T, c_T), cache = rnn.lstm_forward(x, None, *weights)
    g = rnn.lstm_backward(np.ones_like(out), (2 * np.ones_like(h_T), -np.ones_like(c_T)), cache)
    assert_close("outputs", out, out_t, rtol=1e-9, atol=1e-12)
    assert_close("h_T", h_T, h_t[0], rtol=1e-9, atol=1e-12)
    assert_close("c_T", c_T, c_t[0], rtol=1e-9, atol=1e-12)
    assert_close("dx", g["x"], x_t.grad, rtol=1e-9, atol=1e-11)
    for name, i in torch_names("_l0").items():
        assert_close(name, g[PARAMS[i]], getattr(lstm, name).grad, rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- fast layer == loop over cells

@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["rnn", "lstm", "gru"]), steps=st.integers(1, 6), batch=st.integers(1, 4),
       inputs=st.integers(1, 4), hidden=st.integers(1, 4), seed=st.integers(0, 1000))
def test_unrolled_layer_equals_a_loop_over_cells(kind, steps, batch, inputs, hidden, seed):
    weights = make_weights(kind, hidden, inputs, seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, batch, inputs))
    state = (rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden)))
    state = state if kind == "lstm" else state[0]
    out, final, _ = SEQ_FORWARD[kind](x, state, *weights)
    cell = {"rnn": rnn.rnn_cell, "lstm": rnn.lstm_cell, "gru": rnn.gru_cell}[kind]
    for t in range(steps):
        state, _ = cell(x[t], state, *weights)
        h = state[0] if kind == "lstm" else state
        np.testing.assert_allclose(out[t], h, rtol=1e-12, atol=1e-14)
    for ours, loop in zip(final if kind == "lstm" else [final], state if kind == "lstm" else [state]):
        np.testing.assert_allclose(ours, loop, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- bad input

W = {kind: make_weights(kind) for kind in GATES}
X2, H2 = np.zeros((N, I)), np.zeros((N, H))
X3 = np.zeros((T, N, I))


def cache_of(kind):
    return {"rnn": lambda: rnn.rnn_cell(X2, H2, *W["rnn"])[1], "lstm": lambda: rnn.lstm_cell(X2, (H2, H2), *W["lstm"])[1],
            "gru": lambda: rnn.gru_cell(X2, H2, *W["gru"])[1],
            "rnn_seq": lambda: rnn.rnn_forward(X3, None, *W["rnn"])[2],
            "lstm_seq": lambda: rnn.lstm_forward(X3, None, *W["lstm"])[2],
            "gru_seq": lambda: rnn.gru_forward(X3, None, *W["gru"])[2]}[kind]()


BAD = [
    (lambda: rnn.split_gates(np.zeros(8), "rnn4"), ValueError, r"Received: kind='rnn4'"),
    (lambda: rnn.split_gates(np.zeros(10), "lstm"), ValueError, r"Received: array.shape=\(10,\)"),
    (lambda: rnn.rnn_cell(np.zeros((N, 3)), H2, *W["rnn"]), ValueError, r"`x` must have 4 features.*x.shape=\(3, 3\)"),
    (lambda: rnn.rnn_cell(np.zeros(I), H2, *W["rnn"]), ValueError, r"`x` must be 2-D. Received: x.shape=\(4,\)"),
    (lambda: rnn.rnn_cell(X2, np.zeros((N, 6)), *W["rnn"]), ValueError, r"`h` must have shape.*h.shape=\(3, 6\)"),
    (lambda: rnn.rnn_cell(X2, H2, *W["rnn"], nonlinearity="sigmoid"), ValueError, r"nonlinearity='sigmoid'"),
    (lambda: rnn.rnn_cell(X2.tolist(), H2, *W["rnn"]), TypeError, r"`x` must be a NumPy array.*list"),
    (lambda: rnn.rnn_cell(X2, H2, np.zeros((6, I)), *W["rnn"][1:]), ValueError, r"W_ih.shape=\(6, 4\)"),
    (lambda: rnn.rnn_cell(X2, H2, W["rnn"][0], np.zeros((5, 4)), *W["rnn"][2:]), ValueError, r"W_hh.shape=\(5, 4\)"),
    (lambda: rnn.rnn_cell(X2, H2, *W["rnn"][:2], np.zeros(6), None), ValueError, r"b_ih.shape=\(6,\)"),
    (lambda: rnn.rnn_cell_backward(np.zeros((N, 6)), cache_of("rnn")), ValueError, r"dh_new.shape=\(3, 6\)"),
    (lambda: rnn.rnn_cell_backward(H2, cache_of("gru")), ValueError, r"Received: cache for 'gru'"),
    (lambda: rnn.lstm_cell(X2, H2, *W["lstm"]), ValueError, r"`state` must be a pair"),
    (lambda: rnn.lstm_cell(X2, (H2, np.zeros((2, H))), *W["lstm"]), ValueError, r"c.shape=\(2, 5\)"),
    (lambda: rnn.lstm_cell(X2, (H2, H2), *W["gru"]), ValueError, r"`W_hh` must have shape \(4\*H, H\).*\(15, 5\)"),
    (lambda: rnn.lstm_cell(X2, (H2, H2), *W["lstm"][:3], np.zeros(19)), ValueError, r"b_hh.shape=\(19,\)"),
    (lambda: rnn.lstm_cell_backward((H2, np.zeros((N, 4))), cache_of("lstm")), ValueError, r"dc_new.shape=\(3, 4\)"),
    (lambda: rnn.lstm_cell_backward(H2, cache_of("lstm")), ValueError, r"`dstate` must be a pair"),
    (lambda: rnn.lstm_cell_backward((H2, H2), "cache"), ValueError, r"cache for 'str'"),
    (lambda: rnn.gru_cell(X2, H2, *W["rnn"]), ValueError, r"`W_hh` must have shape \(3\*H, H\)"),
    (lambda: rnn.gru_cell(X2, np.zeros((N + 1, H)), *W["gru"]), ValueError, r"h.shape=\(4, 5\)"),
    (lambda: rnn.gru_cell(np.zeros((N, 7)), H2, *W["gru"]), ValueError, r"x.shape=\(3, 7\)"),
    (lambda: rnn.gru_cell_backward(np.zeros(H), cache_of("gru")), ValueError, r"dh_new.shape=\(5,\)"),
    (lambda: rnn.gru_cell_backward(H2, cache_of("gru_seq")), ValueError, r"cache for 'gru_seq'"),
    (lambda: rnn.rnn_forward(X2, None, *W["rnn"]), ValueError, r"`x` must be 3-D. Received: x.shape=\(3, 4\)"),
    (lambda: rnn.rnn_forward(X3, np.zeros((1, N, H)), *W["rnn"]), ValueError, r"`h0` must be 2-D.*\(1, 3, 5\)"),
    (lambda: rnn.rnn_forward(X3, None, *W["rnn"], nonlinearity="gelu"), ValueError, r"nonlinearity='gelu'"),
    (lambda: rnn.rnn_forward(X3, None, *W["rnn"], batch_first="yes"), ValueError, r"batch_first='yes'"),
    (lambda: rnn.rnn_forward(np.zeros((0, N, I)), None, *W["rnn"]), ValueError, r"x.shape=\(0, 3, 4\)"),
    (lambda: rnn.rnn_forward(X3, H2, *W["rnn"], batch_first=True), ValueError, r"\(N, H\) = \(23, 5\).*h0.shape=\(3, 5\)"),
    (lambda: rnn.rnn_backward(np.zeros((T, N, 4)), None, cache_of("rnn_seq")), ValueError, r"doutputs.shape=\(23, 3, 4\)"),
    (lambda: rnn.rnn_backward(None, np.zeros((N, 4)), cache_of("rnn_seq")), ValueError, r"dh_T.shape=\(3, 4\)"),
    (lambda: rnn.rnn_backward(None, None, cache_of("rnn")), ValueError, r"cache for 'rnn'"),
    (lambda: rnn.lstm_forward(X3, (H2,), *W["lstm"]), ValueError, r"`state0` must be a pair"),
    (lambda: rnn.lstm_forward(X3, (H2, np.zeros((N, 2))), *W["lstm"]), ValueError, r"c0.shape=\(3, 2\)"),
    (lambda: rnn.lstm_forward(np.zeros((T, N, 2)), None, *W["lstm"]), ValueError, r"x.shape=\(23, 3, 2\)"),
    (lambda: rnn.lstm_backward(None, (None, np.zeros(H)), cache_of("lstm_seq")), ValueError, r"dc_T.shape=\(5,\)"),
    (lambda: rnn.lstm_backward(None, H2, cache_of("lstm_seq")), ValueError, r"`dstate_T` must be a pair"),
    (lambda: rnn.lstm_backward(np.zeros((N, T, H)), None, cache_of("lstm_seq")), ValueError, r"doutputs.shape=\(3, 23, 5\)"),
    (lambda: rnn.gru_forward(X3, H2, W["gru"][0][:, :2], *W["gru"][1:]), ValueError, r"x.shape=\(23, 3, 4\)"),
    (lambda: rnn.gru_forward(X3, H2, *W["gru"][:2], np.zeros((3 * H, 1)), None), ValueError, r"`b_ih` must be 1-D"),
    (lambda: rnn.gru_backward(None, np.zeros((N, H, 1)), cache_of("gru_seq")), ValueError, r"dh_T.shape=\(3, 5, 1\)"),
    (lambda: rnn.gru_backward(None, None, cache_of("lstm_seq")), ValueError, r"cache for 'lstm_seq'"),
]


@pytest.mark.parametrize("call,error,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_names_the_argument_and_echoes_the_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_every_public_function_has_a_bad_input_test():
    import inspect

    sources = "\n".join(inspect.getsource(call) for call, _, _ in BAD)
    missing = [name for name in rnn.__all__ if callable(getattr(rnn, name)) and f"rnn.{name}(" not in sources]
    assert missing == []
