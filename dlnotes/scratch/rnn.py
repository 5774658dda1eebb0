r"""Recurrent cells (Elman RNN, LSTM, GRU) and their unrolled layers, forward and backward, in NumPy.

Taught in: *Recurrent networks, LSTM and GRU* (``book/architectures/rnn.ipynb``).

Every function follows PyTorch's conventions so weights can be copied in both directions:

- weights are stored like ``torch.nn.LSTM``: ``W_ih`` of shape ``(G*H, I)``, ``W_hh`` of shape
  ``(G*H, H)``, biases ``b_ih`` and ``b_hh`` of shape ``(G*H,)``, with ``G`` gate blocks
  stacked along the first axis in the order :data:`GATE_ORDER` (``G`` = 1, 4, 3);
- sequences are time-major ``(T, N, I)`` unless ``batch_first=True`` gives ``(N, T, I)``;
- states are ``(N, H)`` (one layer, one direction, so no leading layer axis).

A forward function returns its result and a ``cache``; the matching ``*_backward`` takes the
upstream gradients and that cache and returns a dict of gradients keyed by argument name.
The unrolled layers precompute :math:`x_t W_{ih}^\top + b_{ih}` for all steps in one matrix
product and keep only the recurrent product inside the time loop; their backward pass
(backpropagation through time) accumulates the weight gradients in one product as well.
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_choice, check_ndarray

__all__ = [
    "GATE_ORDER", "split_gates",
    "rnn_cell", "rnn_cell_backward", "lstm_cell", "lstm_cell_backward", "gru_cell", "gru_cell_backward",
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
]

#: The gate blocks stacked in ``W_ih``, ``W_hh``, ``b_ih``, ``b_hh``, in PyTorch's order.
GATE_ORDER = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
NONLINEARITIES = ("tanh", "relu")


def split_gates(array: np.ndarray, kind: str, axis: int = -1) -> dict:
    """Split a stacked gate array into its blocks, named as in :data:`GATE_ORDER`.

    Args:
        array: pre-activations ``(..., G*H)`` (``axis=-1``) or weights ``(G*H, ...)`` (``axis=0``).
        kind: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        axis: the stacked axis.

    Returns:
        ``{gate name: view of shape (..., H, ...)}`` in PyTorch's order, e.g. ``i, f, g, o`` for the LSTM.

    Raises:
        ValueError: unknown ``kind``, or the axis is not a multiple of the number of gates.
    """
    names = GATE_ORDER[check_choice("kind", kind, GATE_ORDER)]
    if array.shape[axis] % len(names):
        raise ValueError(f"`array` must have a multiple of {len(names)} entries along axis {axis}. "
                         f"Received: array.shape={array.shape}")
    return dict(zip(names, np.split(array, len(names), axis=axis)))


# ----------------------------------------------------------------------------- input checks

def _check_weights(kind: str, W_ih, W_hh, b_ih, b_hh) -> tuple[int, int]:
    """Check the four parameters of a ``kind`` cell; return ``(H, I)``."""
    gates = len(GATE_ORDER[kind])
    check_ndarray("W_ih", W_ih, 2)
    check_ndarray("W_hh", W_hh, 2)
    if W_hh.shape[0] % gates or W_hh.shape[1] * gates != W_hh.shape[0]:
        raise ValueError(f"`W_hh` must have shape ({gates}*H, H) for a {kind} cell. Received: W_hh.shape={W_hh.shape}")
    H = W_hh.shape[1]
    if W_ih.shape[0] != gates * H:
        raise ValueError(f"`W_ih` must have {gates}*H = {gates * H} rows like `W_hh`. Received: W_ih.shape={W_ih.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None and check_ndarray(name, b, 1).shape != (gates * H,):
            raise ValueError(f"`{name}` must have shape ({gates * H},). Received: {name}.shape={b.shape}")
    return H, W_ih.shape[1]


def _check_input(name: str, x, ndim: int, I: int) -> np.ndarray:
    check_ndarray(name, x, ndim)
    if x.shape[-1] != I:
        raise ValueError(f"`{name}` must have {I} features (W_ih.shape[1]) in its last axis. "
                         f"Received: {name}.shape={x.shape}")
    return x


def _check_state(name: str, h, N: int, H: int, dtype) -> np.ndarray:
    if h is None:
        return np.zeros((N, H), dtype)
    if check_ndarray(name, h, 2).shape != (N, H):
        raise ValueError(f"`{name}` must have shape (N, H) = {(N, H)}. Received: {name}.shape={h.shape}")
    return h


def _check_pair(name: str, value) -> tuple:
    if value is None:
        return None, None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"`{name}` must be a pair (h, c). Received: {name} of type {type(value).__name__}")
    return tuple(value)


def _check_cache(cache, kind: str) -> dict:
    if not isinstance(cache, dict) or cache.get("kind") != kind:
        got = cache.get("kind") if isinstance(cache, dict) else type(cache).__name__
        raise ValueError(f"`cache` must come from the {kind} forward function. Received: cache for {got!r}")
    return cache


def _check_grad(name: str, value, shape: tuple) -> np.ndarray:
    if value is None:
        return None
    if check_ndarray(name, value, len(shape)).shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}. Received: {name}.shape={value.shape}")
    return value


def _sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    r""":math:`\sigma(a) = 1 / (1 + e^{-a}) = (1 + \tanh(a/2)) / 2`, written the stable way."""
    out = np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def _bias_grads(dgi: np.ndarray, dgh: np.ndarray, b_ih, b_hh) -> dict:
    axes = tuple(range(dgi.ndim - 1))
    return {"b_ih": None if b_ih is None else dgi.sum(axis=axes), "b_hh": None if b_hh is None else dgh.sum(axis=axes)}


def _affine(x: np.ndarray, W: np.ndarray, b) -> np.ndarray:
    """``x @ W.T + b`` over the last axis (one 2-D product), with ``b`` optional (``bias=False`` in torch)."""
    out = (x.reshape(-1, x.shape[-1]) @ W.T).reshape(*x.shape[:-1], W.shape[0])
    if b is not None:
        out += b
    return out


# ----------------------------------------------------------------------------- cells

def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh"):
    r"""One step of the Elman RNN, like ``torch.nn.RNNCell``.

    .. math::

        h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}), \qquad \phi = \tanh \text{ or } \mathrm{ReLU}.

    Args:
        x: input ``(N, I)``.
        h: state ``(N, H)``; ``None`` means zeros.
        W_ih, W_hh: ``(H, I)`` and ``(H, H)``.
        b_ih, b_hh: ``(H,)`` each, or ``None`` for no bias.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.

    Returns:
        ``(h_new, cache)`` with ``h_new`` of shape ``(N, H)``.
    """
    H, I = _check_weights("rnn", W_ih, W_hh, b_ih, b_hh)
    nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    x = _check_input("x", x, 2, I)
    h = _check_state("h", h, x.shape[0], H, x.dtype)
    a = _affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)
    h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    return h_new, {"kind": "rnn", "x": x, "h": h, "h_new": h_new, "nonlinearity": nonlinearity,
                   "params": (W_ih, W_hh, b_ih, b_hh)}


def _rnn_local_grad(dh_new: np.ndarray, h_new: np.ndarray, nonlinearity: str) -> np.ndarray:
    r""":math:`\partial L/\partial a = \partial L/\partial h' \odot \phi'(a)`, written in terms of :math:`h'`."""
    return dh_new * (1.0 - h_new**2) if nonlinearity == "tanh" else dh_new * (h_new > 0)


def rnn_cell_backward(dh_new, cache) -> dict:
    r"""Gradients of one :func:`rnn_cell` step.

    .. math::

        \delta = \frac{\partial L}{\partial h'} \odot \phi'(a), \quad
        \frac{\partial L}{\partial x} = \delta W_{ih}, \quad \frac{\partial L}{\partial h} = \delta W_{hh}, \quad
        \frac{\partial L}{\partial W_{ih}} = \delta^\top x, \quad \frac{\partial L}{\partial W_{hh}} = \delta^\top h,

    and both bias gradients are :math:`\sum_n \delta_n`.

    Args:
        dh_new: upstream gradient ``(N, H)``.
        cache: from :func:`rnn_cell`.

    Returns:
        ``{"x", "h", "W_ih", "W_hh", "b_ih", "b_hh"}`` (bias entries ``None`` if there was no bias).
    """
    cache = _check_cache(cache, "rnn")
    dh_new = _check_grad("dh_new", dh_new, cache["h_new"].shape)
    W_ih, W_hh, b_ih, b_hh = cache["params"]
    delta = _rnn_local_grad(dh_new, cache["h_new"], cache["nonlinearity"])
    return {"x": delta @ W_ih, "h": delta @ W_hh, "W_ih": delta.T @ cache["x"], "W_hh": delta.T @ cache["h"],
            **_bias_grads(delta, delta, b_ih, b_hh)}


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    r"""One step of the LSTM, like ``torch.nn.LSTMCell``; gates in the order ``i, f, g, o``.

    .. math::

        i &= \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) &&\text{input gate}\\
        f &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) &&\text{forget gate}\\
        g &= \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) &&\text{candidate cell}\\
        o &= \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) &&\text{output gate}\\
        c' &= f \odot c + i \odot g, \qquad h' = o \odot \tanh(c')

    Args:
        x: input ``(N, I)``.
        state: ``(h, c)``, each ``(N, H)``; ``None`` means zeros.
        W_ih, W_hh: ``(4H, I)`` and ``(4H, H)``.
        b_ih, b_hh: ``(4H,)`` each, or ``None`` for no bias.

    Returns:
        ``((h_new, c_new), cache)``, states of shape ``(N, H)``.
    """
    H, I = _check_weights("lstm", W_ih, W_hh, b_ih, b_hh)
    x = _check_input("x", x, 2, I)
    h, c = _check_pair("state", state)
    h = _check_state("h", h, x.shape[0], H, x.dtype)
    c = _check_state("c", c, x.shape[0], H, x.dtype)
    a = split_gates(_affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh), "lstm")
    i, f, g, o = _sigmoid(a["i"]), _sigmoid(a["f"]), np.tanh(a["g"]), _sigmoid(a["o"])
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), {"kind": "lstm", "x": x, "h": h, "c": c, "gates": np.concatenate([i, f, g, o], -1),
                            "c_new": c_new, "params": (W_ih, W_hh, b_ih, b_hh)}


def _lstm_local_grad(dh_new, dc_new, gates, c, c_new):
    r"""Gradients of the pre-activations ``(N, 4H)`` and of :math:`c`, given those of :math:`h', c'`."""
    g = split_gates(gates, "lstm")
    tanh_c = np.tanh(c_new)
    dc = dc_new + dh_new * g["o"] * (1.0 - tanh_c**2)
    da = np.concatenate([dc * g["g"] * g["i"] * (1.0 - g["i"]),      # through i
                         dc * c * g["f"] * (1.0 - g["f"]),            # through f
                         dc * g["i"] * (1.0 - g["g"] ** 2),           # through g
                         dh_new * tanh_c * g["o"] * (1.0 - g["o"])],  # through o
                        axis=-1)
    return da, dc * g["f"]


def lstm_cell_backward(dstate, cache) -> dict:
    r"""Gradients of one :func:`lstm_cell` step.

    .. math::

        \delta c = \frac{\partial L}{\partial c'} + \frac{\partial L}{\partial h'} \odot o \odot (1 - \tanh^2 c'),
        \quad \frac{\partial L}{\partial c} = \delta c \odot f,

        \delta a_i = \delta c \odot g \odot i(1-i), \quad \delta a_f = \delta c \odot c \odot f(1-f), \quad
        \delta a_g = \delta c \odot i \odot (1-g^2), \quad
        \delta a_o = \frac{\partial L}{\partial h'} \odot \tanh c' \odot o(1-o),

    then, with :math:`\delta a` the four blocks side by side, as in :func:`rnn_cell_backward`.

    Args:
        dstate: ``(dh_new, dc_new)``, each ``(N, H)`` or ``None`` (zero).
        cache: from :func:`lstm_cell`.

    Returns:
        ``{"x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh"}``.
    """
    cache = _check_cache(cache, "lstm")
    shape = cache["c_new"].shape
    dh_new, dc_new = _check_pair("dstate", dstate)
    dh_new = _check_grad("dh_new", dh_new, shape)
    dc_new = _check_grad("dc_new", dc_new, shape)
    dh_new = np.zeros_like(cache["c_new"]) if dh_new is None else dh_new
    dc_new = np.zeros_like(cache["c_new"]) if dc_new is None else dc_new
    W_ih, W_hh, b_ih, b_hh = cache["params"]
    da, dc = _lstm_local_grad(dh_new, dc_new, cache["gates"], cache["c"], cache["c_new"])
    return {"x": da @ W_ih, "h": da @ W_hh, "c": dc, "W_ih": da.T @ cache["x"], "W_hh": da.T @ cache["h"],
            **_bias_grads(da, da, b_ih, b_hh)}


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    r"""One step of the GRU, like ``torch.nn.GRUCell``; gates in the order ``r, z, n``.

    .. math::

        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) &&\text{reset gate}\\
        z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) &&\text{update gate}\\
        n &= \tanh\big(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})\big) &&\text{candidate state}\\
        h' &= (1 - z) \odot n + z \odot h

    Args:
        x: input ``(N, I)``.
        h: state ``(N, H)``; ``None`` means zeros.
        W_ih, W_hh: ``(3H, I)`` and ``(3H, H)``.
        b_ih, b_hh: ``(3H,)`` each, or ``None`` for no bias.

    Returns:
        ``(h_new, cache)`` with ``h_new`` of shape ``(N, H)``.
    """
    H, I = _check_weights("gru", W_ih, W_hh, b_ih, b_hh)
    x = _check_input("x", x, 2, I)
    h = _check_state("h", h, x.shape[0], H, x.dtype)
    ai = split_gates(_affine(x, W_ih, b_ih), "gru")
    ah = split_gates(_affine(h, W_hh, b_hh), "gru")
    r, z = _sigmoid(ai["r"] + ah["r"]), _sigmoid(ai["z"] + ah["z"])
    n = np.tanh(ai["n"] + r * ah["n"])
    h_new = (1.0 - z) * n + z * h
    return h_new, {"kind": "gru", "x": x, "h": h, "gates": np.concatenate([r, z, n], -1), "hn": ah["n"],
                   "params": (W_ih, W_hh, b_ih, b_hh)}


def _gru_local_grad(dh_new, gates, hn, h):
    """Gradients of the input and hidden pre-activations ``(N, 3H)`` each, and the direct one of ``h``."""
    g = split_gates(gates, "gru")
    r, z, n = g["r"], g["z"], g["n"]
    dn = dh_new * (1.0 - z) * (1.0 - n**2)
    dr = dn * hn * r * (1.0 - r)
    dz = dh_new * (h - n) * z * (1.0 - z)
    return np.concatenate([dr, dz, dn], -1), np.concatenate([dr, dz, dn * r], -1), dh_new * z


def gru_cell_backward(dh_new, cache) -> dict:
    r"""Gradients of one :func:`gru_cell` step.

    .. math::

        \delta a_n = \frac{\partial L}{\partial h'} \odot (1-z) \odot (1-n^2), \quad
        \delta a_r = \delta a_n \odot (W_{hn} h + b_{hn}) \odot r(1-r), \quad
        \delta a_z = \frac{\partial L}{\partial h'} \odot (h - n) \odot z(1-z);

    the hidden-side block of :math:`n` receives :math:`\delta a_n \odot r`, and
    :math:`\partial L/\partial h` adds the direct path :math:`\frac{\partial L}{\partial h'} \odot z`.

    Args:
        dh_new: upstream gradient ``(N, H)``.
        cache: from :func:`gru_cell`.

    Returns:
        ``{"x", "h", "W_ih", "W_hh", "b_ih", "b_hh"}``.
    """
    cache = _check_cache(cache, "gru")
    dh_new = _check_grad("dh_new", dh_new, cache["h"].shape)
    W_ih, W_hh, b_ih, b_hh = cache["params"]
    dgi, dgh, dh = _gru_local_grad(dh_new, cache["gates"], cache["hn"], cache["h"])
    return {"x": dgi @ W_ih, "h": dh + dgh @ W_hh, "W_ih": dgi.T @ cache["x"], "W_hh": dgh.T @ cache["h"],
            **_bias_grads(dgi, dgh, b_ih, b_hh)}


# ----------------------------------------------------------------------------- unrolled layers

def _check_sequence(kind, x, W_ih, W_hh, b_ih, b_hh, batch_first):
    H, I = _check_weights(kind, W_ih, W_hh, b_ih, b_hh)
    if not isinstance(batch_first, (bool, np.bool_)):
        raise ValueError(f"`batch_first` must be True or False. Received: batch_first={batch_first!r}")
    x = _check_input("x", x, 3, I)
    x = x.swapaxes(0, 1) if batch_first else x
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"`x` must hold at least one step and one sequence. Received: x.shape={x.shape}")
    return x, H


def _stacked_grads(da_i, da_h, x, hs, W_ih, W_hh, b_ih, b_hh):
    """Weight gradients of a whole sequence in one product each: ``da (T, N, G*H)``, ``hs`` = states h_0..h_T."""
    T, N, GH = da_i.shape
    flat_i, flat_h = da_i.reshape(T * N, GH), da_h.reshape(T * N, GH)
    return {"W_ih": flat_i.T @ x.reshape(T * N, -1), "W_hh": flat_h.T @ hs[:-1].reshape(T * N, -1),
            **_bias_grads(da_i, da_h, b_ih, b_hh), "x": da_i @ W_ih}


def _output(out, batch_first):
    return out.swapaxes(0, 1) if batch_first else out


def rnn_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh", batch_first: bool = False):
    r"""The Elman RNN unrolled over a sequence, like a one-layer ``torch.nn.RNN``.

    :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})` for :math:`t = 1..T`.

    Args:
        x: inputs ``(T, N, I)``, or ``(N, T, I)`` if ``batch_first``.
        h0: initial state ``(N, H)``, or ``None`` for zeros.
        W_ih, W_hh, b_ih, b_hh, nonlinearity: as in :func:`rnn_cell`.

    Returns:
        ``(outputs, h_T, cache)``: every state ``(T, N, H)`` (``(N, T, H)`` if ``batch_first``) and the last ``(N, H)``.
    """
    x, H = _check_sequence("rnn", x, W_ih, W_hh, b_ih, b_hh, batch_first)
    nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    T, N, _ = x.shape
    hs = np.empty((T + 1, N, H), np.result_type(x, W_hh))
    hs[0] = _check_state("h0", h0, N, H, x.dtype)
    a = _affine(x, W_ih, b_ih)                      # every input projection in one product
    if b_hh is not None:
        a += b_hh
    for t in range(T):
        np.add(a[t], hs[t] @ W_hh.T, out=hs[t + 1])
        if nonlinearity == "tanh":
            np.tanh(hs[t + 1], out=hs[t + 1])
        else:
            np.maximum(hs[t + 1], 0.0, out=hs[t + 1])
    cache = {"kind": "rnn_seq", "x": x, "hs": hs, "nonlinearity": nonlinearity, "params": (W_ih, W_hh, b_ih, b_hh),
             "batch_first": batch_first}
    return _output(hs[1:], batch_first), hs[T], cache


def _sequence_upstream(doutputs, hs, batch_first):
    """Upstream gradient of every output, time-major ``(T, N, H)``; zeros when ``None``."""
    dout = _check_grad("doutputs", doutputs, _output(hs[1:], batch_first).shape)
    return np.zeros_like(hs[1:]) if dout is None else _output(dout, batch_first)


def _backward_setup(cache, kind: str, doutputs):
    """The checked cache of a ``kind`` sequence pass: ``(cache, hs, x, params, dout)``, ``dout`` time-major."""
    cache = _check_cache(cache, kind)
    hs = cache["hs"]
    return cache, hs, cache["x"], cache["params"], _sequence_upstream(doutputs, hs, cache["batch_first"])


def _state_upstream(name, grad, like):
    """Upstream gradient of a final state, shaped like ``like``; zeros when ``None``."""
    grad = _check_grad(name, grad, like.shape)
    return np.zeros_like(like) if grad is None else grad


def rnn_backward(doutputs, dh_T, cache) -> dict:
    r"""Backpropagation through time for :func:`rnn_forward`.

    Going back from :math:`t = T` to 1, the gradient reaching :math:`h_t` is the output's own
    plus the one carried back from step :math:`t+1`, :math:`\delta_{t+1} W_{hh}`.

    Args:
        doutputs: gradient of the outputs, shaped like them, or ``None`` (zero).
        dh_T: gradient of the final state ``(N, H)``, or ``None``.
        cache: from :func:`rnn_forward`.

    Returns:
        ``{"x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"}``; ``"x"`` shaped like the input.
    """
    cache, hs, x, (W_ih, W_hh, b_ih, b_hh), dout = _backward_setup(cache, "rnn_seq", doutputs)
    dh = _state_upstream("dh_T", dh_T, hs[0])
    da = np.empty_like(hs[1:])
    for t in reversed(range(x.shape[0])):
        da[t] = _rnn_local_grad(dh + dout[t], hs[t + 1], cache["nonlinearity"])
        dh = da[t] @ W_hh
    grads = _stacked_grads(da, da, x, hs, W_ih, W_hh, b_ih, b_hh)
    return {**grads, "x": _output(grads["x"], cache["batch_first"]), "h0": dh}


def lstm_forward(x, state0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first: bool = False):
    r"""The LSTM unrolled over a sequence, like a one-layer ``torch.nn.LSTM``.

    Runs the equations of :func:`lstm_cell` for :math:`t = 1..T`, with the input projections
    :math:`W_{ih} x_t + b_{ih} + b_{hh}` of all steps computed first in one matrix product and
    the gates written into one preallocated ``(T, N, 4H)`` array (kept for the backward pass).

    Args:
        x: inputs ``(T, N, I)``, or ``(N, T, I)`` if ``batch_first``.
        state0: ``(h0, c0)``, each ``(N, H)``, or ``None`` for zeros.
        W_ih, W_hh, b_ih, b_hh: as in :func:`lstm_cell`.

    Returns:
        ``(outputs, (h_T, c_T), cache)``: outputs ``(T, N, H)`` (``(N, T, H)`` if ``batch_first``).
    """
    x, H = _check_sequence("lstm", x, W_ih, W_hh, b_ih, b_hh, batch_first)
    T, N, _ = x.shape
    h0, c0 = _check_pair("state0", state0)
    dtype = np.result_type(x, W_hh)
    hs, cs = np.empty((T + 1, N, H), dtype), np.empty((T + 1, N, H), dtype)
    hs[0], cs[0] = _check_state("h0", h0, N, H, x.dtype), _check_state("c0", c0, N, H, x.dtype)
    gates = _affine(x, W_ih, b_ih)                   # (T, N, 4H): every input projection at once
    if b_hh is not None:
        gates += b_hh
    W_hh_T = np.ascontiguousarray(W_hh.T)
    tanh_c = np.empty((N, H), dtype)
    for t in range(T):
        a = gates[t]
        a += hs[t] @ W_hh_T                          # the only product inside the loop
        _sigmoid(a[:, :2 * H], out=a[:, :2 * H])      # i and f are adjacent
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
        _sigmoid(a[:, 3 * H:], out=a[:, 3 * H:])
        np.multiply(a[:, H:2 * H], cs[t], out=cs[t + 1])              # f * c
        cs[t + 1] += a[:, :H] * a[:, 2 * H:3 * H]                     # + i * g
        np.multiply(a[:, 3 * H:], np.tanh(cs[t + 1], out=tanh_c), out=hs[t + 1])  # o * tanh(c')
    cache = {"kind": "lstm_seq", "x": x, "hs": hs, "cs": cs, "gates": gates, "params": (W_ih, W_hh, b_ih, b_hh),
             "batch_first": batch_first}
    return _output(hs[1:], batch_first), (hs[T], cs[T]), cache


def lstm_backward(doutputs, dstate_T, cache) -> dict:
    r"""Backpropagation through time for :func:`lstm_forward`.

    At each step, from :math:`T` down to 1, applies :func:`lstm_cell_backward`'s local rule to
    :math:`\partial L/\partial h_t` (the output's gradient plus the one from step :math:`t+1`)
    and :math:`\partial L/\partial c_t`; the weight gradients are summed over steps in one product.

    Args:
        doutputs: gradient of the outputs, shaped like them, or ``None``.
        dstate_T: ``(dh_T, dc_T)``, each ``(N, H)`` or ``None``; or ``None``.
        cache: from :func:`lstm_forward`.

    Returns:
        ``{"x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"}``.
    """
    cache, hs, x, (W_ih, W_hh, b_ih, b_hh), dout = _backward_setup(cache, "lstm_seq", doutputs)
    cs = cache["cs"]
    dh_T, dc_T = _check_pair("dstate_T", dstate_T)
    dh = _state_upstream("dh_T", dh_T, hs[0])
    dc = _state_upstream("dc_T", dc_T, hs[0])
    da = np.empty_like(cache["gates"])
    for t in reversed(range(x.shape[0])):
        da[t], dc = _lstm_local_grad(dh + dout[t], dc, cache["gates"][t], cs[t], cs[t + 1])
        dh = da[t] @ W_hh
    grads = _stacked_grads(da, da, x, hs, W_ih, W_hh, b_ih, b_hh)
    return {**grads, "x": _output(grads["x"], cache["batch_first"]), "h0": dh, "c0": dc}


def gru_forward(x, h0, W_ih, W_hh, b_ih=None, b_hh=None, batch_first: bool = False):
    r"""The GRU unrolled over a sequence, like a one-layer ``torch.nn.GRU``.

    Runs the equations of :func:`gru_cell` for :math:`t = 1..T`, with the input projections
    of all steps computed first in one matrix product.

    Args:
        x: inputs ``(T, N, I)``, or ``(N, T, I)`` if ``batch_first``.
        h0: initial state ``(N, H)``, or ``None`` for zeros.
        W_ih, W_hh, b_ih, b_hh: as in :func:`gru_cell`.

    Returns:
        ``(outputs, h_T, cache)``: outputs ``(T, N, H)`` (``(N, T, H)`` if ``batch_first``).
    """
    x, H = _check_sequence("gru", x, W_ih, W_hh, b_ih, b_hh, batch_first)
    T, N, _ = x.shape
    dtype = np.result_type(x, W_hh)
    hs, hn = np.empty((T + 1, N, H), dtype), np.empty((T, N, H), dtype)
    hs[0] = _check_state("h0", h0, N, H, x.dtype)
    gates = _affine(x, W_ih, b_ih)                   # (T, N, 3H): input projections, then r, z, n in place
    for t in range(T):
        ah = _affine(hs[t], W_hh, b_hh)
        a = gates[t]
        a[:, :2 * H] += ah[:, :2 * H]
        _sigmoid(a[:, :2 * H], out=a[:, :2 * H])                       # r and z
        hn[t] = ah[:, 2 * H:]
        a[:, 2 * H:] += a[:, :H] * hn[t]
        n, z = np.tanh(a[:, 2 * H:], out=a[:, 2 * H:]), a[:, H:2 * H]
        np.add(n, z * (hs[t] - n), out=hs[t + 1])                     # (1 - z) n + z h
    cache = {"kind": "gru_seq", "x": x, "hs": hs, "gates": gates, "hn": hn, "params": (W_ih, W_hh, b_ih, b_hh),
             "batch_first": batch_first}
    return _output(hs[1:], batch_first), hs[T], cache


def gru_backward(doutputs, dh_T, cache) -> dict:
    r"""Backpropagation through time for :func:`gru_forward` (the local rule of :func:`gru_cell_backward`).

    Args:
        doutputs: gradient of the outputs, shaped like them, or ``None``.
        dh_T: gradient of the final state ``(N, H)``, or ``None``.
        cache: from :func:`gru_forward`.

    Returns:
        ``{"x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"}``.
    """
    cache, hs, x, (W_ih, W_hh, b_ih, b_hh), dout = _backward_setup(cache, "gru_seq", doutputs)
    dh = _state_upstream("dh_T", dh_T, hs[0])
    da_i, da_h = np.empty_like(cache["gates"]), np.empty_like(cache["gates"])
    for t in reversed(range(x.shape[0])):
        da_i[t], da_h[t], dh_direct = _gru_local_grad(dh + dout[t], cache["gates"][t], cache["hn"][t], hs[t])
        dh = dh_direct + da_h[t] @ W_hh
    grads = _stacked_grads(da_i, da_h, x, hs, W_ih, W_hh, b_ih, b_hh)
    return {**grads, "x": _output(grads["x"], cache["batch_first"]), "h0": dh}
