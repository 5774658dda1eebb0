"""dlnotes.scratch.pooling: max and average pooling against torch, forward and backward."""

import numpy as np
import pytest
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlnotes.scratch import pooling
from tests.helpers import assert_matches_torch

POOLS = [
    (pooling.max_pool2d, pooling.max_pool2d_backward, F.max_pool2d),
    (pooling.avg_pool2d, pooling.avg_pool2d_backward, F.avg_pool2d),
]
POOL_IDS = ["max", "avg"]

# (x shape, kernel_size, stride, padding): non-overlapping, overlapping (gradients add up),
# rectangular, padded, and a window that does not tile the input (the rest is dropped).
SETTINGS = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 2, 7, 7), 3, 2, 1),
    ((1, 3, 9, 6), (3, 2), (2, 1), (1, 0)),
    ((2, 1, 7, 5), 2, None, 1),
    ((1, 2, 6, 6), 4, 1, 2),
]


@pytest.mark.parametrize("x_shape, kernel, stride, padding", SETTINGS)
@pytest.mark.parametrize("ours, ours_backward, theirs", POOLS, ids=POOL_IDS)
def test_forward_and_gradient_match_torch(ours, ours_backward, theirs, x_shape, kernel, stride, padding):
    x = np.random.default_rng(0).standard_normal(x_shape)
    assert_matches_torch(
        lambda x: ours(x, kernel, stride, padding),
        lambda x: theirs(x, kernel, stride, padding),
        [x],
        grad_ours=lambda x, upstream: [ours_backward(upstream, x, kernel, stride, padding)],
        rtol=1e-12, atol=1e-12, grad_rtol=1e-12, grad_atol=1e-12,
    )


@settings(max_examples=30)
@given(kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       extra=st.integers(0, 4), pad=st.booleans(), seed=st.integers(0, 2**16), kind=st.sampled_from([0, 1]))
def test_random_settings_match_torch(kh, kw, sh, sw, extra, pad, seed, kind):
    ours, ours_backward, theirs = POOLS[kind]
    padding = (kh // 2, kw // 2) if pad else 0
    x = np.random.default_rng(seed).standard_normal((2, 2, kh + extra, kw + extra + 1))
    assert_matches_torch(
        lambda x: ours(x, (kh, kw), (sh, sw), padding),
        lambda x: theirs(x, (kh, kw), (sh, sw), padding),
        [x],
        grad_ours=lambda x, upstream: [ours_backward(upstream, x, (kh, kw), (sh, sw), padding)],
        rtol=1e-12, atol=1e-12, grad_rtol=1e-12, grad_atol=1e-12,
    )


def test_max_pool_gradient_goes_to_the_maximum_only():
    x = np.array([[[[1.0, 5.0], [3.0, 2.0]]]])
    dx = pooling.max_pool2d_backward(np.array([[[[7.0]]]]), x, 2)
    np.testing.assert_array_equal(dx, [[[[0.0, 7.0], [0.0, 0.0]]]])
    assert pooling.max_pool2d(x, 2).item() == 5.0
    assert pooling.avg_pool2d(x, 2).item() == 2.75


def test_stride_defaults_to_kernel_size():
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    assert pooling.max_pool2d(x, 2).shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(pooling.max_pool2d(x, 2), pooling.max_pool2d(x, 2, stride=2))
    assert pooling.avg_pool2d(x, 3, stride=1).shape == (1, 1, 4, 4)


BAD_POOL = [
    (dict(x=np.ones((4, 4))), ValueError, r"x.shape=\(4, 4\)"),
    (dict(x=[[1.0]]), TypeError, "`x` must be a NumPy array"),
    (dict(kernel_size=0), ValueError, "kernel_size=0"),
    (dict(kernel_size=5), ValueError, "kernel_size=5"),
    (dict(stride=0), ValueError, "stride=0"),
    (dict(padding=-1), ValueError, "padding=-1"),
    (dict(padding=2), ValueError, "at most half.*padding=2"),
]


@pytest.mark.parametrize("fn", [pooling.max_pool2d, pooling.avg_pool2d], ids=POOL_IDS)
@pytest.mark.parametrize("change, error, match", BAD_POOL)
def test_forward_rejects_bad_input(fn, change, error, match):
    args = dict(x=np.ones((1, 1, 4, 4)), kernel_size=2, stride=None, padding=0) | change
    with pytest.raises(error, match=match):
        fn(**args)


@pytest.mark.parametrize("fn", [pooling.max_pool2d_backward, pooling.avg_pool2d_backward], ids=POOL_IDS)
@pytest.mark.parametrize("change, error, match", BAD_POOL + [
    (dict(upstream=np.ones((1, 1, 3, 3))), ValueError, r"upstream.shape=\(1, 1, 3, 3\)"),
    (dict(upstream=np.ones((2, 2))), ValueError, "`upstream` must be 4-D"),
])
def test_backward_rejects_bad_input(fn, change, error, match):
    args = dict(upstream=np.ones((1, 1, 2, 2)), x=np.ones((1, 1, 4, 4)), kernel_size=2, stride=None,
                padding=0) | change
    with pytest.raises(error, match=match):
        fn(**args)
