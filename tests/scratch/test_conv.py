"""dlnotes.scratch.conv: the fast convolution against the naive one and against torch, forward and backward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.scratch import conv
from tests.helpers import assert_close, assert_matches_torch

# (x shape, weight shape, stride, padding): square and rectangular, strided, padded.
SETTINGS = [
    ((2, 3, 7, 7), (4, 3, 3, 3), 1, 0),
    ((2, 3, 8, 6), (5, 3, 3, 2), 2, 1),
    ((1, 2, 9, 10), (3, 2, 4, 3), (2, 3), (1, 0)),
    ((3, 1, 5, 5), (2, 1, 5, 5), 1, 2),
    ((2, 4, 6, 6), (3, 4, 1, 1), 3, 0),
]


def random_problem(x_shape, w_shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])


@st.composite
def conv_problems(draw):
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    seed = draw(st.integers(0, 2**16))
    return (n, c_in, h, w), (c_out, c_in, kh, kw), stride, (ph, pw), seed


@settings(max_examples=40)
@given(conv_problems())
def test_fast_conv_equals_naive_conv(problem):
    x_shape, w_shape, stride, padding, seed = problem
    x, w, b = random_problem(x_shape, w_shape, seed)
    assert_close("conv2d", conv.conv2d(x, w, b, stride, padding), conv.conv2d_naive(x, w, b, stride, padding),
                 rtol=1e-10, atol=1e-12)


@settings(max_examples=25)
@given(conv_problems())
def test_im2col_and_col2im_are_adjoint(problem):
    # <im2col(x), c> == <x, col2im(c)> for every x and c: col2im is the transpose of im2col.
    x_shape, w_shape, stride, padding, seed = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    cols = conv.im2col(x, w_shape[2:], stride, padding)
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x * conv.col2im(c, x_shape, stride, padding))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", SETTINGS)
@pytest.mark.parametrize("fn", [conv.conv2d, conv.conv2d_naive], ids=["conv2d", "conv2d_naive"])
def test_forward_and_gradients_match_torch(fn, x_shape, w_shape, stride, padding):
    def grads(x, w, b, upstream):
        return conv.conv2d_backward(upstream, x, w, stride, padding)

    assert_matches_torch(
        lambda x, w, b: fn(x, w, b, stride, padding),
        lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
        list(random_problem(x_shape, w_shape)),
        grad_ours=grads, rtol=1e-10, atol=1e-12, grad_rtol=1e-10, grad_atol=1e-12,
    )


def test_without_bias_and_float32_match_torch():
    x, w, _ = random_problem((2, 3, 6, 6), (4, 3, 3, 3))
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), padding=1)
    assert_close("no bias", conv.conv2d(x, w, padding=1), expected, rtol=1e-10, atol=1e-12)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    assert_close("float32", conv.conv2d(x32, w32, padding=1), F.conv2d(torch.tensor(x32), torch.tensor(w32), padding=1),
                 rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", SETTINGS)
def test_im2col_and_col2im_match_unfold_and_fold(x_shape, w_shape, stride, padding):
    x = np.random.default_rng(3).standard_normal(x_shape)
    kernel = w_shape[2:]
    cols = conv.im2col(x, kernel, stride, padding)
    unfolded = F.unfold(torch.tensor(x), kernel, stride=stride, padding=padding)
    assert_close("im2col", cols.reshape(unfolded.shape), unfolded, rtol=0, atol=0)
    folded = F.fold(unfolded, x_shape[2:], kernel, stride=stride, padding=padding)
    assert_close("col2im", conv.col2im(cols, x_shape, stride, padding), folded, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_size, kernel, stride, padding", [
    (28, 3, 1, 0), (28, 5, 1, 2), (28, 3, 2, 1), (32, 7, 2, 3), (7, 2, 3, 0), (5, 5, 1, 0), ((28, 20), (3, 5), (2, 1), (1, 2)),
])
def test_output_size_matches_torch(in_size, kernel, stride, padding):
    hw = in_size if isinstance(in_size, tuple) else (in_size, in_size)
    torch_shape = F.conv2d(torch.zeros(1, 1, *hw), torch.zeros(1, 1, *np.broadcast_to(kernel, 2)),
                           stride=stride, padding=padding).shape
    expected = torch_shape[2] if isinstance(in_size, int) else tuple(torch_shape[2:])
    assert conv.conv2d_output_size(in_size, kernel, stride, padding) == expected


def test_output_size_formula_by_hand():
    assert conv.conv2d_output_size(28, 3) == 26
    assert conv.conv2d_output_size(28, 3, padding=1) == 28
    assert conv.conv2d_output_size(28, 2, stride=2) == 14
    assert conv.conv2d_output_size((28, 28), 3, 2, 1) == (14, 14)


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_size=0, kernel_size=1), "in_size=0"),
    (dict(in_size=5, kernel_size=6), "kernel_size=6"),
    (dict(in_size=5, kernel_size=3, stride=0), "stride=0"),
    (dict(in_size=5, kernel_size=3, stride=1.5), "stride=1.5"),
    (dict(in_size=5, kernel_size=3, padding=-1), "padding=-1"),
    (dict(in_size=(5, 5, 5), kernel_size=3), r"in_size=\(5, 5, 5\)"),
])
def test_output_size_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv.conv2d_output_size(**kwargs)


BAD_CONV = [
    (dict(x=np.ones((3, 5, 5))), ValueError, r"`x` must be 4-D.*x.shape=\(3, 5, 5\)"),
    (dict(weight=np.ones((2, 3, 3))), ValueError, r"`weight` must be 4-D.*weight.shape=\(2, 3, 3\)"),
    (dict(weight=np.ones((2, 2, 3, 3))), ValueError, r"C_in=3.*weight.shape=\(2, 2, 3, 3\)"),
    (dict(weight=np.ones((2, 3, 8, 3))), ValueError, r"must fit in the padded input.*weight.shape=\(2, 3, 8, 3\)"),
    (dict(stride=0), ValueError, "stride=0"),
    (dict(stride=(1, -2)), ValueError, r"stride=\(1, -2\)"),
    (dict(padding=-1), ValueError, "padding=-1"),
    (dict(bias=np.ones(3)), ValueError, r"bias.shape=\(3,\)"),
    (dict(x=[[1.0]]), TypeError, "`x` must be a NumPy array"),
]


@pytest.mark.parametrize("fn", [conv.conv2d, conv.conv2d_naive], ids=["conv2d", "conv2d_naive"])
@pytest.mark.parametrize("change, error, match", BAD_CONV)
def test_conv_rejects_bad_input(fn, change, error, match):
    args = dict(x=np.ones((1, 3, 5, 5)), weight=np.ones((2, 3, 3, 3)), bias=None, stride=1, padding=0) | change
    with pytest.raises(error, match=match):
        fn(**args)


@pytest.mark.parametrize("change, error, match", [c for c in BAD_CONV if "bias" not in c[0]] + [
    (dict(upstream=np.ones((1, 2, 4, 4))), ValueError, r"upstream.shape=\(1, 2, 4, 4\)"),
    (dict(upstream=np.ones((2, 3, 3))), ValueError, r"`upstream` must be 4-D"),
])
def test_conv_backward_rejects_bad_input(change, error, match):
    args = dict(upstream=np.ones((1, 2, 3, 3)), x=np.ones((1, 3, 5, 5)), weight=np.ones((2, 3, 3, 3)),
                stride=1, padding=0) | change
    with pytest.raises(error, match=match):
        conv.conv2d_backward(**args)


def test_im2col_and_col2im_reject_bad_input():
    with pytest.raises(ValueError, match=r"x.shape=\(5, 5\)"):
        conv.im2col(np.ones((5, 5)), 3)
    with pytest.raises(ValueError, match="kernel_size=6"):
        conv.im2col(np.ones((1, 1, 5, 5)), 6)
    with pytest.raises(ValueError, match="stride=0"):
        conv.im2col(np.ones((1, 1, 5, 5)), 3, stride=0)
    with pytest.raises(ValueError, match=r"cols.shape=\(1, 1, 3, 3, 2, 2\)"):
        conv.col2im(np.ones((1, 1, 3, 3, 2, 2)), (1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"x_shape=\(5, 5\)"):
        conv.col2im(np.ones((1, 1, 3, 3, 3, 3)), (5, 5))
    with pytest.raises(ValueError, match="x_shape=25"):
        conv.col2im(np.ones((1, 1, 3, 3, 3, 3)), 25)
    with pytest.raises(ValueError, match=r"`cols` must be 6-D"):
        conv.col2im(np.ones((3, 3)), (1, 1, 5, 5))
