r"""What a model costs, counted from its layer shapes, and the two tricks that make it cheaper.

Taught in: *Efficiency and cost* (``book/outlook/efficiency.ipynb``); the tests check every function
against PyTorch: :func:`count_flops` against ``torch.utils.flop_counter.FlopCounterMode``,
:func:`distillation_loss` against ``torch.nn.functional.kl_div`` + ``cross_entropy`` (value and
autograd gradient), :func:`magnitude_mask` against ``torch.nn.utils.prune.global_unstructured``.

- :func:`count_params` and :func:`count_flops` read only the layers' hyperparameters (channels,
  kernel, stride, padding, dilation, groups, features). FLOPs follow ``FlopCounterMode``'s
  convention: **one multiply-add is two FLOPs**, biases, activations and pooling are not counted.
  A ``Conv2d`` with weight ``(C_out, C_in / g, k_h, k_w)`` on an output of shape
  ``(N, C_out, H_out, W_out)`` costs

  .. math:: 2 \, N \, C_\text{out} H_\text{out} W_\text{out} \cdot (C_\text{in}/g) \, k_h k_w ,

  with :math:`H_\text{out} = \lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1`, and a ``Linear`` layer
  :math:`\mathbb{R}^{\dots \times n_\text{in}} \to \mathbb{R}^{\dots \times n_\text{out}}` costs
  :math:`2 \cdot (\text{leading elements}) \cdot n_\text{in} n_\text{out}`.
- :func:`distillation_loss` (Hinton et al., 2015): with student logits :math:`s`, teacher logits
  :math:`t`, labels :math:`y`, temperature :math:`T` and weight :math:`\alpha`,

  .. math::

      L = \alpha \, T^2 \, \frac{1}{N}\sum_n \mathrm{KL}\big(\sigma(t_n/T) \,\|\, \sigma(s_n/T)\big)
          + (1 - \alpha) \, \frac{1}{N}\sum_n -\log \sigma(s_n)_{y_n},

  where :math:`\sigma` is the softmax. Its gradient with respect to the student's logits is
  :math:`\partial L / \partial s_n = \frac{1}{N}\big[\alpha T (\sigma(s_n/T) - \sigma(t_n/T))
  + (1-\alpha)(\sigma(s_n) - e_{y_n})\big]`; the factor :math:`T^2` keeps the soft term's gradient
  of the same size as :math:`T` changes.
- :func:`magnitude_mask` (global magnitude pruning, Han et al., 2015): keep the weights of largest
  :math:`|w|` over all tensors together, zero the ``round(sparsity * n)`` smallest.

Nothing here imports torch at module level; :func:`count_params` and :func:`count_flops` import it
to recognise the layer types.
"""

from __future__ import annotations

import numpy as np

from dlnotes._checks import check_float_array, check_real

__all__ = ["count_params", "count_flops", "conv_output_size", "log_softmax", "distillation_loss",
           "distillation_loss_grad", "magnitude_mask"]


# --- parameters and FLOPs from layer shapes -------------------------------------------------

def _layers(model) -> list:
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module. Received: model of type {type(model).__name__}")
    return list(model) if isinstance(model, nn.Sequential) else [model]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def count_params(model) -> int:
    r"""Number of weights and biases of a ``Sequential`` of ``Conv2d``/``Linear`` (and weight-free) layers.

    ``Conv2d``: :math:`C_\text{out} (C_\text{in}/g) k_h k_w + C_\text{out}` (bias);
    ``Linear``: :math:`n_\text{out} n_\text{in} + n_\text{out}`. Computed from the hyperparameters,
    not from the tensors; equals ``sum(p.numel() for p in model.parameters())``.
    """
    import torch.nn as nn

    total = 0
    for layer in _layers(model):
        if isinstance(layer, nn.Conv2d):
            kh, kw = _pair(layer.kernel_size)
            total += layer.out_channels * (layer.in_channels // layer.groups) * kh * kw
            total += layer.out_channels if layer.bias is not None else 0
        elif isinstance(layer, nn.Linear):
            total += layer.out_features * layer.in_features + (layer.out_features if layer.bias is not None else 0)
        elif any(True for _ in layer.parameters()):
            raise TypeError(f"`model` has a layer with parameters that count_params does not know. Received: {layer!r}")
    return total


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    r""":math:`\lfloor (n + 2p - d(k - 1) - 1) / s \rfloor + 1`, the output length of a convolution or pooling."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"`size` is too small for the kernel: output would be {out}. Received: size={size}, kernel={kernel}")
    return out


def count_flops(model, input_shape) -> int:
    r"""FLOPs of one forward pass on an input of ``input_shape`` (batch included), 2 per multiply-add.

    Walks a ``Sequential`` and propagates the shape: ``Conv2d`` (int/tuple padding or ``"valid"``/``"same"``,
    stride, dilation, groups), ``Linear``, ``MaxPool2d``/``AvgPool2d``, ``Flatten``, and shape-keeping
    layers (``ReLU``, ``Dropout``, ``Identity``). Counts only convolutions and linear layers, as
    ``FlopCounterMode`` does. Raises ``TypeError`` for any other layer.

    Args:
        model: ``torch.nn.Sequential`` (or a single layer).
        input_shape: e.g. ``(N, C, H, W)`` for a CNN, ``(N, n_in)`` for an MLP.
    """
    import torch.nn as nn

    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"`input_shape` must be a tuple of positive sizes. Received: input_shape={input_shape!r}")
    flops = 0
    for layer in _layers(model):
        if isinstance(layer, nn.Conv2d):
            if len(shape) != 4 or shape[1] != layer.in_channels:
                raise ValueError(f"Conv2d({layer.in_channels}, ...) needs input (N, {layer.in_channels}, H, W). Received: shape={shape}")
            (kh, kw), (sh, sw), (dh, dw) = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.dilation)
            if layer.padding == "same":
                h, w = shape[2], shape[3]
            else:
                ph, pw = (0, 0) if layer.padding == "valid" else _pair(layer.padding)
                h, w = conv_output_size(shape[2], kh, sh, ph, dh), conv_output_size(shape[3], kw, sw, pw, dw)
            flops += 2 * shape[0] * layer.out_channels * h * w * (layer.in_channels // layer.groups) * kh * kw
            shape = (shape[0], layer.out_channels, h, w)
        elif isinstance(layer, nn.Linear):
            if shape[-1] != layer.in_features:
                raise ValueError(f"Linear({layer.in_features}, ...) needs input (..., {layer.in_features}). Received: shape={shape}")
            flops += 2 * int(np.prod(shape[:-1])) * layer.in_features * layer.out_features
            shape = shape[:-1] + (layer.out_features,)
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            (kh, kw) = _pair(layer.kernel_size)
            (sh, sw) = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
            (ph, pw) = _pair(layer.padding)
            dh, dw = _pair(getattr(layer, "dilation", 1))
            if getattr(layer, "ceil_mode", False):
                raise ValueError(f"`model` has a pooling layer with ceil_mode=True, which count_flops does not support. Received: {layer!r}")
            shape = shape[:2] + (conv_output_size(shape[2], kh, sh, ph, dh), conv_output_size(shape[3], kw, sw, pw, dw))
        elif isinstance(layer, nn.Flatten):
            start, end = layer.start_dim % len(shape), layer.end_dim % len(shape)
            shape = shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]
        elif isinstance(layer, (nn.ReLU, nn.Dropout, nn.Identity)):
            pass
        else:
            raise TypeError(f"`model` has a layer that count_flops does not know. Received: {layer!r}")
    return flops


# --- knowledge distillation -----------------------------------------------------------------

def log_softmax(z: np.ndarray) -> np.ndarray:
    r""":math:`z_i - \log\sum_j e^{z_j}` along the last axis, shifted by the maximum for stability."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_kd(student_logits, teacher_logits, labels, temperature, alpha):
    s, t = check_float_array("student_logits", student_logits), check_float_array("teacher_logits", teacher_logits)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError("`student_logits` and `teacher_logits` must both have shape (N, K). "
                         f"Received: student_logits.shape={s.shape}, teacher_logits.shape={t.shape}")
    y = np.asarray(labels)
    if y.shape != (s.shape[0],) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= s.shape[1]:
        raise ValueError(f"`labels` must be N = {s.shape[0]} integers in [0, {s.shape[1]}). Received: labels={labels!r:.80}")
    temperature = check_real("temperature", temperature, 0.0, low_open=True)
    alpha = check_real("alpha", alpha, 0.0, 1.0)
    return s, t, y, temperature, alpha


def distillation_loss(student_logits, teacher_logits, labels, *, temperature: float = 4.0, alpha: float = 0.9) -> float:
    r"""Hinton et al.'s loss: :math:`\alpha T^2\,\overline{\mathrm{KL}}(\sigma(t/T)\,\|\,\sigma(s/T)) + (1-\alpha)\,\overline{\mathrm{CE}}(s, y)`.

    Args:
        student_logits, teacher_logits: arrays of shape ``(N, K)``.
        labels: integer array of shape ``(N,)``.
        temperature: :math:`T > 0` (default 4); ``alpha``: weight of the soft term in ``[0, 1]`` (default 0.9).

    Returns the mean over the batch, a float. Matches
    ``alpha * T**2 * F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="batchmean", log_target=True)
    + (1 - alpha) * F.cross_entropy(s, y)``.
    """
    s, t, y, temperature, alpha = _check_kd(student_logits, teacher_logits, labels, temperature, alpha)
    log_p_student, log_p_teacher = log_softmax(s / temperature), log_softmax(t / temperature)
    kl = (np.exp(log_p_teacher) * (log_p_teacher - log_p_student)).sum(axis=1).mean()
    ce = -log_softmax(s)[np.arange(len(y)), y].mean()
    return float(alpha * temperature ** 2 * kl + (1 - alpha) * ce)


def distillation_loss_grad(student_logits, teacher_logits, labels, *, temperature: float = 4.0, alpha: float = 0.9) -> np.ndarray:
    r""":math:`\partial L / \partial s = \frac{1}{N}[\alpha T(\sigma(s/T) - \sigma(t/T)) + (1-\alpha)(\sigma(s) - e_y)]`, shape ``(N, K)``."""
    s, t, y, temperature, alpha = _check_kd(student_logits, teacher_logits, labels, temperature, alpha)
    n = s.shape[0]
    soft = np.exp(log_softmax(s / temperature)) - np.exp(log_softmax(t / temperature))
    hard = np.exp(log_softmax(s))
    hard[np.arange(n), y] -= 1.0
    return (alpha * temperature * soft + (1 - alpha) * hard) / n


# --- global magnitude pruning ---------------------------------------------------------------

def magnitude_mask(weights, sparsity: float) -> list[np.ndarray]:
    r"""Masks (1 keep, 0 prune) that zero the ``round(sparsity * n)`` smallest :math:`|w|` over all arrays together.

    Args:
        weights: a list of float arrays (any shapes), :math:`n` elements in all.
        sparsity: share of weights to remove, in ``[0, 1]``.

    Returns one float mask per array, of its shape. Equals the ``weight_mask`` buffers that
    ``torch.nn.utils.prune.global_unstructured(..., pruning_method=prune.L1Unstructured, amount=sparsity)``
    leaves (``round`` as in ``prune._compute_nparams_toprune``; ties broken by position, which
    torch leaves unspecified).
    """
    sparsity = check_real("sparsity", sparsity, 0.0, 1.0)
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"`weights` must be a non-empty list of arrays. Received: weights of type {type(weights).__name__}")
    arrays = [check_float_array(f"weights[{i}]", w) for i, w in enumerate(weights)]
    flat = np.concatenate([np.abs(a).ravel() for a in arrays])
    n_prune = int(round(sparsity * flat.size))
    keep = np.ones(flat.size)
    keep[np.argsort(flat, kind="stable")[:n_prune]] = 0.0
    masks, start = [], 0
    for a in arrays:
        masks.append(keep[start:start + a.size].reshape(a.shape))
        start += a.size
    return masks
