r"""Max and average pooling in NumPy, forward and backward, on top of :func:`dlnotes.scratch.conv.im2col`.

Taught in: *Convolutional networks* (``book/architectures/convolution.ipynb``).

Pooling summarises each ``kH x kW`` window of every channel by one number, with no weights:

.. math::

    \text{max: } y_{n,c,i,j} = \max_{u,v} \tilde x_{n,c,\, s_H i + u,\, s_W j + v}, \qquad
    \text{average: } y_{n,c,i,j} = \frac{1}{k_H k_W} \sum_{u,v} \tilde x_{n,c,\, s_H i + u,\, s_W j + v} .

As in PyTorch, ``stride`` defaults to ``kernel_size`` (non-overlapping windows), max pooling
pads with :math:`-\infty` and average pooling with zeros that count in the mean
(``count_include_pad=True``); ``padding`` may be at most half the kernel, and the output
size is rounded down (``ceil_mode=False``).
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_ndarray
from dlnotes.scratch.conv import _pair, col2im, conv2d_output_size, im2col

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def _check_pool(x, kernel_size, stride, padding):
    """Checked ``(kernel, stride, padding, (H_out, W_out))`` for pooling ``x``."""
    x = check_ndarray("x", x, 4)
    kernel = _pair("kernel_size", kernel_size, 1, "a positive integer")
    stride = kernel if stride is None else _pair("stride", stride, 1, "a positive integer")
    pad = _pair("padding", padding, 0, "a non-negative integer")
    if 2 * pad[0] > kernel[0] or 2 * pad[1] > kernel[1]:
        raise ValueError(f"`padding` must be at most half of kernel_size={kernel_size!r}. Received: padding={padding!r}")
    padded = (x.shape[2] + 2 * pad[0], x.shape[3] + 2 * pad[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"`kernel_size` must fit in the padded input {padded} (x.shape={x.shape}, "
                         f"padding={padding!r}). Received: kernel_size={kernel_size!r}")
    return kernel, stride, pad, conv2d_output_size(x.shape[2:], kernel, stride, pad)


def _check_pool_backward(upstream, x, kernel_size, stride, padding):
    """As :func:`_check_pool`, plus ``upstream`` checked against the output's shape."""
    kernel, stride, padding, out = _check_pool(x, kernel_size, stride, padding)
    upstream = check_ndarray("upstream", upstream, 4)
    if upstream.shape != x.shape[:2] + out:
        raise ValueError(f"`upstream` must have the output's shape {x.shape[:2] + out}. "
                         f"Received: upstream.shape={upstream.shape}")
    return upstream, kernel, stride, padding, out


def _lowest(dtype) -> float:
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def max_pool2d(x, kernel_size, stride=None, padding=0) -> np.ndarray:
    r"""Max pooling: the largest value in each window, :math:`y = \max_{u,v} \tilde x_{s i + u,\, s j + v}`.

    Args:
        x: input of shape ``(N, C, H, W)``.
        kernel_size: int or ``(kH, kW)``.
        stride: int or pair; ``None`` (default) means ``kernel_size``.
        padding: int or pair, at most half the kernel (default 0); padded with :math:`-\infty`.

    Returns:
        ``y`` of shape ``(N, C, H_out, W_out)``, as ``torch.nn.functional.max_pool2d``.

    Raises:
        TypeError: ``x`` is not an array.
        ValueError: ``x`` is not 4-D, bad ``kernel_size``/``stride``/``padding``, or the
            window is larger than the padded input.
    """
    kernel, stride, padding, _ = _check_pool(x, kernel_size, stride, padding)
    return im2col(x, kernel, stride, padding, pad_value=_lowest(x.dtype)).max(axis=(2, 3))


def max_pool2d_backward(upstream, x, kernel_size, stride=None, padding=0) -> np.ndarray:
    r"""Gradient through :func:`max_pool2d`: each window's upstream gradient goes to its maximum.

    .. math::

        \frac{\partial L}{\partial x_{n,c,h,w}} = \sum_{(i,j):\, (h,w) = \operatorname{argmax}_{\text{window } (i,j)}}
        G_{n,c,i,j} .

    Ties go to the first maximum in row-major window order, as in PyTorch's CPU kernel.

    Args:
        upstream: ``G``, of the output's shape ``(N, C, H_out, W_out)``.
        x, kernel_size, stride, padding: as given to :func:`max_pool2d`.

    Returns:
        ``dx`` of the shape of ``x``; matches ``torch.autograd`` through ``F.max_pool2d``.
    """
    upstream, kernel, stride, padding, out = _check_pool_backward(upstream, x, kernel_size, stride, padding)
    cols = im2col(x, kernel, stride, padding, pad_value=_lowest(x.dtype))
    flat = cols.reshape(x.shape[:2] + (-1,) + out)
    winner = flat.argmax(axis=2)[:, :, None]  # (N, C, 1, H_out, W_out)
    offsets = np.arange(flat.shape[2])[None, None, :, None, None]
    dcols = np.where(offsets == winner, upstream[:, :, None], 0).astype(upstream.dtype)
    return col2im(dcols.reshape(cols.shape), x.shape, stride, padding)


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> np.ndarray:
    r"""Average pooling: the mean of each window, :math:`y = \frac{1}{k_H k_W}\sum_{u,v} \tilde x_{s i + u,\, s j + v}`.

    Args and errors as :func:`max_pool2d`; padding is with zeros, which count in the mean.

    Returns:
        ``y`` of shape ``(N, C, H_out, W_out)``, as ``torch.nn.functional.avg_pool2d``
        (``count_include_pad=True``, ``ceil_mode=False``).
    """
    kernel, stride, padding, _ = _check_pool(x, kernel_size, stride, padding)
    return im2col(x, kernel, stride, padding).mean(axis=(2, 3))


def avg_pool2d_backward(upstream, x, kernel_size, stride=None, padding=0) -> np.ndarray:
    r"""Gradient through :func:`avg_pool2d`: each window spreads :math:`G_{n,c,i,j} / (k_H k_W)` evenly.

    .. math::

        \frac{\partial L}{\partial x_{n,c,h,w}} = \frac{1}{k_H k_W} \sum_{(i,j):\, (h,w) \in \text{window } (i,j)}
        G_{n,c,i,j} .

    Args and errors as :func:`max_pool2d_backward`, with ``x, kernel_size, stride, padding`` as
    given to :func:`avg_pool2d`. Returns ``dx`` of the shape of ``x``; it matches ``torch.autograd``
    through ``F.avg_pool2d``.
    """
    upstream, kernel, stride, padding, out = _check_pool_backward(upstream, x, kernel_size, stride, padding)
    share = upstream / (kernel[0] * kernel[1])
    dcols = np.broadcast_to(share[:, :, None, None], x.shape[:2] + kernel + out)
    return col2im(np.ascontiguousarray(dcols), x.shape, stride, padding)
