r"""Adversarial attacks and distribution shifts written out from their definitions.

Taught in: *Robustness and security* (``book/outlook/robustness.ipynb``); the tests check the
attacks' invariants with hypothesis and against a direct autograd computation, and the shifts
against ``scipy.ndimage`` and ``skimage.transform``.

Images are tensors (attacks) or arrays (shifts) of shape ``(N, C, H, W)`` or ``(N, H, W)`` with
pixel values in :math:`[0, 1]`. In the order the chapter uses them:

- **input gradient** of the summed cross-entropy :math:`L(x, y) = \sum_n \ell(f(x_n), y_n)`,
  :math:`g = \nabla_x L`; each image's gradient is its own loss's gradient;
- **FGSM**, the fast gradient sign method (Goodfellow et al., 2015), one step to the corner of the
  :math:`L^\infty` ball that the linearised loss prefers:

  .. math::

      x_{\text{adv}} = \operatorname{clip}_{[0, 1]}\big(x + \varepsilon \operatorname{sign}(\nabla_x L(x, y))\big);

- **projection** onto the intersection of the ball :math:`\lVert x' - x \rVert_\infty \le \varepsilon`
  and the box :math:`[0, 1]`: :math:`\Pi(x') = \operatorname{clip}_{[0,1]}(\operatorname{clip}_{[x-\varepsilon, x+\varepsilon]}(x'))`
  (the two are boxes, so clipping to one after the other is the exact Euclidean projection);
- **PGD**, projected gradient descent on the negative loss (Madry et al., 2018): start at a uniform
  random point of the ball (or at :math:`x`), then :math:`K` steps

  .. math::

      x^{(k+1)} = \Pi\big(x^{(k)} + \alpha \operatorname{sign}(\nabla_x L(x^{(k)}, y))\big);

  with one step, no random start and :math:`\alpha = \varepsilon` it *is* FGSM;
- **shifts** (no adversary): rotation about the image centre with bilinear interpolation and zeros
  outside (``scipy.ndimage.rotate(..., order=1, reshape=False, mode="grid-constant")``), Gaussian
  pixel noise clipped to :math:`[0, 1]`, and Gaussian blur with a kernel truncated at
  :math:`4\sigma` and zero padding (``scipy.ndimage.gaussian_filter(..., mode="constant")``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlnotes._checks import check_float_array, check_positive_int, check_real

__all__ = ["input_gradient", "fgsm", "project_linf", "pgd", "rotate", "gaussian_noise", "gaussian_blur"]


def _check_batch(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"`x` must be a floating-point tensor of images. Received: x of type {type(x).__name__}"
                        + (f" with dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    y = torch.as_tensor(y, dtype=torch.long)
    if x.ndim < 2 or y.shape != (x.shape[0],):
        raise ValueError(f"`y` must hold one label per image of `x`. Received: x.shape={tuple(x.shape)}, "
                         f"y.shape={tuple(y.shape)}")
    return x, y


def input_gradient(model, x: torch.Tensor, y) -> torch.Tensor:
    r""":math:`\nabla_x \sum_n \ell(f(x_n), y_n)` for the cross-entropy :math:`\ell`, shape of ``x``.

    The sum (not the mean) keeps each image's gradient independent of the batch size; the model's
    parameters get no gradient (``torch.autograd.grad`` w.r.t. ``x`` only).
    """
    x, y = _check_batch(x, y)
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model, x: torch.Tensor, y, eps: float, *, clip: bool = True) -> torch.Tensor:
    r"""FGSM: :math:`x + \varepsilon\,\operatorname{sign}(\nabla_x L)`, clipped to :math:`[0, 1]` when ``clip``.

    Args:
        model: a classifier returning logits ``(N, classes)``.
        x: images, float tensor ``(N, ...)``; y: labels ``(N,)``.
        eps: the :math:`L^\infty` budget, a real number >= 0.
        clip: clip to the valid pixel range :math:`[0, 1]`.

    Returns:
        ``x_adv`` of the shape and dtype of ``x``, detached. Without clipping,
        ``x_adv - x == eps * sign(grad)`` exactly (pixels with a zero gradient do not move).
    """
    eps = check_real("eps", eps, 0.0)
    x, y = _check_batch(x, y)
    x_adv = x.detach() + eps * input_gradient(model, x, y).sign()
    return x_adv.clamp(0.0, 1.0) if clip else x_adv


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    r"""Project ``x_adv`` onto :math:`\{x' : \lVert x' - x\rVert_\infty \le \varepsilon,\ 0 \le x' \le 1\}`.

    Both sets are boxes, so clipping coordinate-wise to the ball and then to :math:`[0, 1]` is the
    exact nearest point (for ``x`` in :math:`[0, 1]` the intersection is never empty).
    """
    eps = check_real("eps", eps, 0.0)
    if not isinstance(x_adv, torch.Tensor) or not isinstance(x, torch.Tensor) or x_adv.shape != x.shape:
        raise ValueError("`x_adv` and `x` must be tensors of the same shape. Received: "
                         f"x_adv.shape={tuple(getattr(x_adv, 'shape', ()))}, x.shape={tuple(getattr(x, 'shape', ()))}")
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


def pgd(model, x: torch.Tensor, y, eps: float, *, steps: int = 10, step_size: float | None = None,
        random_start: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""PGD in :math:`L^\infty` (Madry et al., 2018): ``steps`` signed-gradient steps, each projected.

    Args:
        model, x, y: as in :func:`fgsm`.
        eps: the budget :math:`\varepsilon \ge 0`.
        steps: :math:`K \ge 1`.
        step_size: :math:`\alpha > 0`; default :math:`2.5\,\varepsilon / K` (Madry et al.'s rule of
            thumb: enough to cross the ball and back).
        random_start: start at :math:`\Pi(x + u)`, :math:`u \sim U[-\varepsilon, \varepsilon]^d`
            (drawn from ``generator``), else at ``x``.

    Returns:
        ``x_adv`` with :math:`\lVert x_{adv} - x\rVert_\infty \le \varepsilon` and values in :math:`[0, 1]`.
        Matches ``torchattacks.PGD(model, eps, alpha=step_size, steps, random_start)`` in definition.
    """
    eps = check_real("eps", eps, 0.0)
    steps = check_positive_int("steps", steps)
    alpha = 2.5 * eps / steps if step_size is None else check_real("step_size", step_size, 0.0, low_open=True)
    x, y = _check_batch(x, y)
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1
        x_adv = project_linf(x + eps * noise, x, eps)
    for _ in range(steps):
        x_adv = project_linf(x_adv + alpha * input_gradient(model, x_adv, y).sign(), x, eps)
    return x_adv


# --- distribution shift (NumPy; no adversary) -------------------------------------------------


def _images(name: str, x) -> np.ndarray:
    x = check_float_array(name, x)
    if x.ndim < 2:
        raise ValueError(f"`{name}` must be images whose last two axes are (height, width). Received: {name}.shape={x.shape}")
    return x


def _bilinear_zero(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample the last two axes of ``image`` at real coordinates, zero outside (grid-constant)."""
    h, w = image.shape[-2:]
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    out = np.zeros(image.shape[:-2] + rows.shape, dtype=np.result_type(image.dtype, np.float64))
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            r, c = r0 + dr, c0 + dc
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            values = image[..., np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)]
            out += np.where(inside, wr * wc, 0.0) * values
    return out


def rotate(x, degrees: float) -> np.ndarray:
    r"""Rotate images by ``degrees`` counter-clockwise (as displayed) about the centre, bilinear, zeros outside.

    Output pixel :math:`p` reads the input at :math:`m + R\,(p - m)` with
    :math:`R = \begin{pmatrix} \cos\theta & \sin\theta \\ -\sin\theta & \cos\theta \end{pmatrix}` in (row, column)
    coordinates and the centre
    :math:`m = ((H-1)/2, (W-1)/2)`: inverse mapping, so no holes. Shape and dtype of ``x``
    (last two axes are height and width). Equals ``scipy.ndimage.rotate(x, degrees, axes=(-2, -1),
    reshape=False, order=1, mode="grid-constant")`` and, on images with a black border,
    ``skimage.transform.rotate(x, degrees, order=1)``.
    """
    x = _images("x", x)
    theta = np.deg2rad(check_real("degrees", degrees))
    h, w = x.shape[-2:]
    mr, mc = (h - 1) / 2, (w - 1) / 2
    rr, cc = np.meshgrid(np.arange(h, dtype=float) - mr, np.arange(w, dtype=float) - mc, indexing="ij")
    cos, sin = np.cos(theta), np.sin(theta)
    # Counter-clockwise on screen (rows grow downwards): the source of (r, c) is rotated by -theta.
    rows = cos * rr + sin * cc + mr
    cols = -sin * rr + cos * cc + mc
    return _bilinear_zero(x, rows, cols).astype(x.dtype)


def gaussian_noise(x, sigma: float, *, seed: int = 0) -> np.ndarray:
    r""":math:`\operatorname{clip}_{[0,1]}(x + \sigma z)`, :math:`z \sim \mathcal N(0, I)` from ``numpy.random.default_rng(seed)``."""
    x = _images("x", x)
    sigma = check_real("sigma", sigma, 0.0)
    noise = np.random.default_rng(seed).standard_normal(x.shape)
    return np.clip(x + sigma * noise, 0.0, 1.0).astype(x.dtype)


def _gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=float)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x, sigma: float) -> np.ndarray:
    r"""Separable Gaussian blur of the last two axes, kernel :math:`\propto e^{-t^2 / 2\sigma^2}` for
    :math:`|t| \le \lfloor 4\sigma + 1/2 \rfloor`, zero padding; ``sigma = 0`` returns a copy.

    Equals ``scipy.ndimage.gaussian_filter(x, sigma, axes=(-2, -1), mode="constant")``.
    """
    x = _images("x", x)
    sigma = check_real("sigma", sigma, 0.0)
    if sigma == 0:
        return x.copy()
    kernel = _gaussian_kernel(sigma)
    radius = len(kernel) // 2
    out = x.astype(np.float64)
    for axis in (-2, -1):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad)
        out = sum(k * np.take(padded, np.arange(i, i + n), axis=axis) for i, k in enumerate(kernel))
    return out.astype(x.dtype)
