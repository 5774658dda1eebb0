r"""2-D convolution in NumPy: the definition, a fast im2col version, and its gradients.

Taught in: *Convolutional networks* (``book/architectures/convolution.ipynb``).

A convolution layer (strictly a cross-correlation, as in every deep-learning framework)
slides ``C_out`` filters of shape ``(C_in, kH, kW)`` over a zero-padded input and takes a
dot product at every position:

.. math::

    y_{n,o,i,j} = b_o + \sum_{c=0}^{C_{in}-1} \sum_{u=0}^{k_H-1} \sum_{v=0}^{k_W-1}
        w_{o,c,u,v}\, \tilde x_{n,c,\, s_H i + u,\, s_W j + v},

where :math:`\tilde x` is the input padded with :math:`p` zeros on each side and
:math:`s` the stride. Layouts follow PyTorch: inputs ``(N, C_in, H, W)`` (NCHW), weights
``(C_out, C_in, kH, kW)``, outputs ``(N, C_out, H_out, W_out)``.

:func:`conv2d_naive` is the formula as loops. :func:`conv2d` copies every window into a
column (:func:`im2col`) so that the whole layer becomes one matrix product;
:func:`col2im` is its adjoint and gives the input gradient in :func:`conv2d_backward`.
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_ndarray

__all__ = ["conv2d_output_size", "im2col", "col2im", "conv2d_naive", "conv2d", "conv2d_backward"]


# ----------------------------------------------------------------------------- input checks


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _pair(name: str, value, minimum: int, what: str) -> tuple[int, int]:
    """``value`` as ``(h, w)``: an int used for both, or a pair of ints, each ``>= minimum``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(_is_int(v) and v >= minimum for v in items):
        raise ValueError(f"`{name}` must be {what} or a pair of them. Received: {name}={value!r}")
    return int(items[0]), int(items[1])


def _check_geometry(x_shape, kernel_size, stride, padding) -> tuple[tuple, tuple, tuple, tuple]:
    """Checked ``(kernel, stride, padding, (H_out, W_out))`` pairs for an input of shape ``x_shape``."""
    kernel = _pair("kernel_size", kernel_size, 1, "a positive integer")
    stride = _pair("stride", stride, 1, "a positive integer")
    padding = _pair("padding", padding, 0, "a non-negative integer")
    padded = (x_shape[2] + 2 * padding[0], x_shape[3] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(f"`kernel_size` {kernel} must fit in the padded input {padded} "
                         f"(x.shape={x_shape}, padding={padding}). Received: kernel_size={kernel_size!r}")
    out = conv2d_output_size(x_shape[2:], kernel, stride, padding)
    return kernel, stride, padding, out


def _check_conv(x, weight, bias, stride, padding):
    x = check_ndarray("x", x, 4)
    weight = check_ndarray("weight", weight, 4)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"`weight` must have C_in={x.shape[1]} input channels (weight.shape[1]) to match "
                         f"x.shape={x.shape}. Received: weight.shape={weight.shape}")
    if bias is not None:
        if not isinstance(bias, np.ndarray) or bias.shape != (weight.shape[0],):
            got = bias.shape if isinstance(bias, np.ndarray) else type(bias).__name__
            raise ValueError(f"`bias` must be None or an array of shape (C_out,) = ({weight.shape[0]},). "
                             f"Received: bias.shape={got}")
    padding_hw = _pair("padding", padding, 0, "a non-negative integer")
    padded = (x.shape[2] + 2 * padding_hw[0], x.shape[3] + 2 * padding_hw[1])
    if weight.shape[2] > padded[0] or weight.shape[3] > padded[1]:
        raise ValueError(f"`weight`'s kernel {weight.shape[2:]} must fit in the padded input {padded} "
                         f"(x.shape={x.shape}, padding={padding!r}). Received: weight.shape={weight.shape}")
    return _check_geometry(x.shape, weight.shape[2:], stride, padding)


# ----------------------------------------------------------------------------- building blocks


def conv2d_output_size(in_size, kernel_size, stride=1, padding=0):
    r"""Output size of a convolution or pooling window along each spatial axis.

    .. math::

        n_{out} = \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1 .

    Args:
        in_size: ``n``, an int, or ``(H, W)``.
        kernel_size, stride, padding: ints, or ``(h, w)`` pairs (defaults ``stride=1``, ``padding=0``).

    Returns:
        An int if every argument is an int, else the pair ``(H_out, W_out)``. Matches the
        shape of ``torch.nn.functional.conv2d`` (and of pooling with ``ceil_mode=False``).

    Raises:
        ValueError: a size is not a positive integer, ``stride < 1``, ``padding < 0``, or the
            kernel is larger than the padded input.
    """
    scalar = all(_is_int(v) for v in (in_size, kernel_size, stride, padding))
    n = _pair("in_size", in_size, 1, "a positive integer")
    k = _pair("kernel_size", kernel_size, 1, "a positive integer")
    s = _pair("stride", stride, 1, "a positive integer")
    p = _pair("padding", padding, 0, "a non-negative integer")
    if any(k[d] > n[d] + 2 * p[d] for d in range(2)):
        raise ValueError(f"`kernel_size` must not exceed the padded input size in_size + 2 * padding = "
                         f"{tuple(n[d] + 2 * p[d] for d in range(2))}. Received: kernel_size={kernel_size!r}")
    out = tuple((n[d] + 2 * p[d] - k[d]) // s[d] + 1 for d in range(2))
    return out[0] if scalar else out


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    if padding == (0, 0):
        return x
    pad = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    return np.pad(x, pad, constant_values=value)


def im2col(x, kernel_size, stride=1, padding=0, pad_value=0.0) -> np.ndarray:
    r"""Copy every ``kH x kW`` window of the padded input into a column.

    .. math::

        \mathrm{cols}_{n,c,u,v,i,j} = \tilde x_{n,c,\, s_H i + u,\, s_W j + v} .

    Args:
        x: input of shape ``(N, C, H, W)``.
        kernel_size, stride, padding: ints or ``(h, w)`` pairs (defaults ``stride=1``, ``padding=0``).
        pad_value: the value padded in (``0`` for convolution, ``-inf`` for max pooling).

    Returns:
        ``cols`` of shape ``(N, C, kH, kW, H_out, W_out)``. Reshaped to
        ``(N, C * kH * kW, H_out * W_out)`` it equals ``torch.nn.functional.unfold``.

    Raises:
        TypeError, ValueError: as :func:`conv2d_output_size`, or ``x`` is not a 4-D array.
    """
    x = check_ndarray("x", x, 4)
    (kh, kw), (sh, sw), padding, (ho, wo) = _check_geometry(x.shape, kernel_size, stride, padding)
    xp = _pad(x, padding, pad_value)
    n, c = x.shape[:2]
    # A (N, C, kH, kW, H_out, W_out) view of a (C, kH, kW, N, H_out, W_out) buffer: conv2d reads the
    # buffer as a (C kH kW) x (N H_out W_out) matrix without copying it again.
    cols = np.empty((c, kh, kw, n, ho, wo), dtype=xp.dtype).transpose(3, 0, 1, 2, 4, 5)
    for u in range(kh):  # one strided slice per kernel offset: kH * kW copies of a whole feature map
        for v in range(kw):
            cols[:, :, u, v] = xp[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw]
    return cols


def col2im(cols, x_shape, stride=1, padding=0) -> np.ndarray:
    r"""The adjoint of :func:`im2col`: add every column entry back onto the input pixel it came from.

    .. math::

        \tilde x_{n,c,\, s_H i + u,\, s_W j + v} \mathrel{+}= \mathrm{cols}_{n,c,u,v,i,j},
        \quad\text{then crop the padding.}

    Args:
        cols: array of shape ``(N, C, kH, kW, H_out, W_out)``.
        x_shape: the input shape ``(N, C, H, W)``.
        stride, padding: as given to :func:`im2col`.

    Returns:
        Array of shape ``x_shape``; like ``torch.nn.functional.fold``. Pixels shared by
        overlapping windows receive the sum of their columns.

    Raises:
        ValueError: ``cols`` does not have the shape :func:`im2col` gives for ``x_shape``.
    """
    cols = check_ndarray("cols", cols, 6)
    x_shape = tuple(x_shape) if isinstance(x_shape, (tuple, list)) else x_shape
    if not isinstance(x_shape, tuple) or len(x_shape) != 4 or not all(_is_int(v) and v >= 1 for v in x_shape):
        raise ValueError(f"`x_shape` must be 4 positive integers (N, C, H, W). Received: x_shape={x_shape!r}")
    kernel, (sh, sw), (ph, pw), out = _check_geometry(x_shape, cols.shape[2:4], stride, padding)
    expected = x_shape[:2] + kernel + out
    if cols.shape != expected:
        raise ValueError(f"`cols` must have shape {expected} for x_shape={x_shape}, stride={stride!r}, "
                         f"padding={padding!r}. Received: cols.shape={cols.shape}")
    ho, wo = out
    xp = np.zeros(x_shape[:2] + (x_shape[2] + 2 * ph, x_shape[3] + 2 * pw), dtype=cols.dtype)
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            xp[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw] += cols[:, :, u, v]
    return xp[:, :, ph:ph + x_shape[2], pw:pw + x_shape[3]]


def _as_matrix(cols: np.ndarray) -> np.ndarray:
    """The columns of :func:`im2col` as a ``(C kH kW, N H_out W_out)`` matrix (a view: no copy)."""
    return cols.transpose(1, 2, 3, 0, 4, 5).reshape(-1, cols.shape[0] * cols.shape[4] * cols.shape[5])


# ----------------------------------------------------------------------------- the layer


def conv2d_naive(x, weight, bias=None, stride=1, padding=0) -> np.ndarray:
    r"""2-D convolution straight from the definition, one dot product per output pixel.

    .. math::

        y_{n,o,i,j} = b_o + \sum_{c,u,v} w_{o,c,u,v}\, \tilde x_{n,c,\, s_H i + u,\, s_W j + v} .

    Args:
        x: input of shape ``(N, C_in, H, W)``.
        weight: filters of shape ``(C_out, C_in, kH, kW)``.
        bias: ``None`` (default) or shape ``(C_out,)``.
        stride, padding: ints or ``(h, w)`` pairs (defaults 1 and 0).

    Returns:
        ``y`` of shape ``(N, C_out, H_out, W_out)``, as ``torch.nn.functional.conv2d``.
        Slow (Python loops): use it to check :func:`conv2d`.
    """
    (kh, kw), (sh, sw), padding, (ho, wo) = _check_conv(x, weight, bias, stride, padding)
    xp = _pad(x, padding)
    y = np.zeros((x.shape[0], weight.shape[0], ho, wo), dtype=np.result_type(x, weight))
    for n in range(x.shape[0]):
        for o in range(weight.shape[0]):
            for i in range(ho):
                for j in range(wo):
                    window = xp[n, :, sh * i:sh * i + kh, sw * j:sw * j + kw]
                    y[n, o, i, j] = np.sum(window * weight[o])
    if bias is not None:
        y += bias[:, None, None]
    return y


def conv2d(x, weight, bias=None, stride=1, padding=0) -> np.ndarray:
    r"""2-D convolution as one matrix product: ``W`` (as ``C_out x C_in kH kW``) times the im2col columns.

    .. math::

        Y_n = W_{\text{mat}}\, \mathrm{cols}(x)_n + b, \qquad
        W_{\text{mat}} \in \mathbb{R}^{C_{out} \times C_{in} k_H k_W},\;
        \mathrm{cols}(x)_n \in \mathbb{R}^{C_{in} k_H k_W \times H_{out} W_{out}} .

    The product is computed for the whole batch at once, as one
    ``(C_out, C_in kH kW) @ (C_in kH kW, N H_out W_out)`` matrix product (one BLAS call).

    Args and returns as :func:`conv2d_naive` (same numbers, up to rounding), and as
    ``torch.nn.functional.conv2d(x, weight, bias, stride, padding)``. The dtype is that of
    ``x`` and ``weight`` combined (float32 stays float32).

    Raises:
        TypeError: ``x``, ``weight`` are not arrays.
        ValueError: wrong rank, channel mismatch, kernel larger than the padded input,
            ``stride < 1``, ``padding < 0``, or ``bias`` not of shape ``(C_out,)``.
    """
    kernel, stride, padding, (ho, wo) = _check_conv(x, weight, bias, stride, padding)
    n, c_out = x.shape[0], weight.shape[0]
    cols = _as_matrix(im2col(x, kernel, stride, padding))         # (C_in kH kW, N H_out W_out)
    y = weight.reshape(c_out, -1) @ cols                          # one matrix product: (C_out, N H_out W_out)
    y = y.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)          # an (N, C_out, H_out, W_out) view
    bias_term = 0 if bias is None else bias[:, None, None]
    return np.add(y, bias_term, out=np.empty(y.shape, y.dtype))    # add the bias while copying to NCHW order


def conv2d_backward(upstream, x, weight, stride=1, padding=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of a loss through :func:`conv2d`, given :math:`G = \partial L / \partial y`.

    .. math::

        \frac{\partial L}{\partial b_o} = \sum_{n,i,j} G_{n,o,i,j}, \qquad
        \frac{\partial L}{\partial W_{\text{mat}}} = \sum_n G_n\, \mathrm{cols}(x)_n^\top, \qquad
        \frac{\partial L}{\partial x} = \mathrm{col2im}\Big(W_{\text{mat}}^\top G_n\Big).

    Args:
        upstream: ``G``, of the output's shape ``(N, C_out, H_out, W_out)``.
        x, weight, stride, padding: as given to :func:`conv2d`.

    Returns:
        ``(dx, dweight, dbias)`` with the shapes of ``x``, ``weight`` and ``(C_out,)``; they
        match ``torch.autograd`` through ``torch.nn.functional.conv2d``.

    Raises:
        ValueError: as :func:`conv2d`, or ``upstream`` does not have the output's shape.
    """
    kernel, stride, padding, (ho, wo) = _check_conv(x, weight, None, stride, padding)
    n, c_out = x.shape[0], weight.shape[0]
    upstream = check_ndarray("upstream", upstream, 4)
    if upstream.shape != (n, c_out, ho, wo):
        raise ValueError(f"`upstream` must have the output's shape {(n, c_out, ho, wo)}. "
                         f"Received: upstream.shape={upstream.shape}")
    g = upstream.transpose(1, 0, 2, 3).reshape(c_out, -1)          # (C_out, N H_out W_out)
    cols = _as_matrix(im2col(x, kernel, stride, padding))           # (C_in kH kW, N H_out W_out)
    dbias = g.sum(axis=1)
    dweight = (g @ cols.T).reshape(weight.shape)
    dcols = weight.reshape(c_out, -1).T @ g                          # (C_in kH kW, N H_out W_out)
    dcols = dcols.reshape(x.shape[1:2] + kernel + (n, ho, wo)).transpose(3, 0, 1, 2, 4, 5)
    dx = col2im(dcols, x.shape, stride, padding)
    return dx, dweight, dbias
