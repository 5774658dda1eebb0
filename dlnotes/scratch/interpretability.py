r"""Attribution methods written out from their definitions, on any PyTorch classifier.

Taught in: *Interpretability* (``book/outlook/interpretability.ipynb``); the tests check every
method against Captum on the same model and inputs.

An attribution method explains one output :math:`f_c(x)` (the logit of class :math:`c`) of a
model for an input :math:`x` (shape ``(N, C, H, W)`` here) by a map :math:`A(x)` of the input's
shape. In the order the chapter uses them:

- **saliency** (Simonyan et al., 2014): :math:`A = \lvert \partial f_c / \partial x \rvert`;
- **gradient times input** (Shrikumar et al., 2016): :math:`A = x \odot \partial f_c / \partial x`;
- **integrated gradients** (Sundararajan et al., 2017), along the straight path from a baseline
  :math:`x'` (black image) to :math:`x`:

  .. math::

      A_i = (x_i - x'_i) \int_0^1 \frac{\partial f_c}{\partial x_i}\big(x' + \alpha (x - x')\big)\, d\alpha
          \approx (x_i - x'_i) \sum_{k=1}^{K} w_k \frac{\partial f_c}{\partial x_i}\big(x' + \alpha_k (x - x')\big),

  with trapezoid or Gauss-Legendre nodes :math:`\alpha_k` and weights :math:`w_k`. By the
  fundamental theorem of calculus for line integrals the exact attributions are *complete*:
  :math:`\sum_i A_i = f_c(x) - f_c(x')`; the quadrature misses that by its error only;
- **Grad-CAM** (Selvaraju et al., 2017) on a convolutional layer with activations :math:`a^k`
  (channel :math:`k`): channel weights :math:`\beta_k = \operatorname{mean}_{uv} \partial f_c / \partial a^k_{uv}`,
  map :math:`\operatorname{ReLU}(\sum_k \beta_k a^k)`, upsampled bilinearly to the input size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dlnotes._checks import check_choice, check_positive_int

__all__ = ["class_gradient", "saliency", "gradient_x_input", "quadrature", "integrated_gradients", "grad_cam",
           "upsample"]


def _check_inputs(model, x, target) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module. Received: model of type {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise TypeError(f"`x` must be a floating-point tensor of shape (N, ...). Received: x={x!r:.60}")
    target = torch.as_tensor(target, dtype=torch.long, device=x.device).reshape(-1)
    if target.numel() == 1:
        target = target.expand(x.shape[0])
    if target.shape[0] != x.shape[0]:
        raise ValueError(f"`target` must hold one class per input ({x.shape[0]}). Received: target.shape={tuple(target.shape)}")
    return x, target


def class_gradient(model, x, target) -> torch.Tensor:
    r""":math:`\partial f_c(x) / \partial x` for each input and its target class :math:`c`; shape of ``x``.

    The inputs are independent (the model is in eval mode), so the gradient of the *sum* of the
    chosen logits is every input's own gradient at once.
    """
    x, target = _check_inputs(model, x, target)
    x = x.detach().requires_grad_(True)
    logits = model(x)
    chosen = logits.gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(chosen, x)
    return grad


def saliency(model, x, target) -> torch.Tensor:
    r"""Saliency: the absolute gradient :math:`\lvert \partial f_c / \partial x \rvert`."""
    return class_gradient(model, x, target).abs()


def gradient_x_input(model, x, target) -> torch.Tensor:
    r"""Gradient times input: :math:`x \odot \partial f_c / \partial x`."""
    return x.detach() * class_gradient(model, x, target)


def quadrature(n_steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes :math:`\alpha_k \in [0, 1]` and weights :math:`w_k` (summing to 1) for :math:`\int_0^1 g(\alpha)\,d\alpha`.

    ``"riemann_right"``: nodes :math:`k/K`, weights :math:`1/K`; ``"riemann_trapezoid"``: :math:`K`
    equally spaced nodes from 0 to 1, weights :math:`1/(K-1)` halved at the two ends;
    ``"gausslegendre"``: the :math:`K`-point Gauss-Legendre rule mapped from :math:`[-1, 1]` to
    :math:`[0, 1]` (exact for polynomials of degree :math:`2K - 1`).

    (Captum's ``"riemann_trapezoid"`` uses the same nodes with weights :math:`1/K`, halved at the
    ends: they sum to :math:`(K-1)/K`, so its integrals come out short by a factor :math:`(K-1)/K`.)
    """
    n_steps = check_positive_int("n_steps", n_steps)
    check_choice("method", method, ("riemann_right", "riemann_trapezoid", "gausslegendre"))
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if method == "riemann_right":
        return np.arange(1, n_steps + 1) / n_steps, np.full(n_steps, 1.0 / n_steps)
    if n_steps < 2:
        raise ValueError(f"`n_steps` must be at least 2 for the trapezoid rule. Received: n_steps={n_steps}")
    weights = np.full(n_steps, 1.0 / (n_steps - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0.0, 1.0, n_steps), weights


def integrated_gradients(model, x, target, *, baseline=None, n_steps: int = 50,
                         method: str = "gausslegendre") -> torch.Tensor:
    r"""Integrated gradients from ``baseline`` (zeros by default) to ``x``, by the quadrature :func:`quadrature`."""
    x, target = _check_inputs(model, x, target)
    baseline = torch.zeros_like(x) if baseline is None else torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    alphas, weights = quadrature(n_steps, method)
    total = torch.zeros_like(x)
    for alpha, weight in zip(alphas, weights):
        total += float(weight) * class_gradient(model, baseline + float(alpha) * (x - baseline), target)
    return (x - baseline) * total


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """Bilinear upsampling of ``(N, 1, h, w)`` maps to ``size`` = (H, W) (``align_corners=False``)."""
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def grad_cam(model, layer: torch.nn.Module, x, target, *, relu: bool = True, upsample_to=None) -> torch.Tensor:
    r"""Grad-CAM on ``layer`` (a module of ``model`` whose output is ``(N, K, h, w)``): shape ``(N, 1, h, w)``,
    or ``(N, 1, H, W)`` with ``upsample_to=(H, W)``."""
    x, target = _check_inputs(model, x, target)
    if not isinstance(layer, torch.nn.Module) or not any(m is layer for m in model.modules()):
        raise ValueError("`layer` must be one of the modules of `model` (e.g. model[3]). "
                         f"Received: layer={layer!r:.60}")
    store = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: store.setdefault("a", output))
    try:
        logits = model(x.detach())
    finally:
        handle.remove()
    activations = store["a"]
    if activations.ndim != 4:
        raise ValueError(f"`layer` must output feature maps (N, K, h, w). Received: output shape {tuple(activations.shape)}")
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations)
    beta = grads.mean(dim=(2, 3), keepdim=True)  # beta_k: (N, K, 1, 1)
    cam = (beta * activations).sum(dim=1, keepdim=True)
    cam = F.relu(cam) if relu else cam
    return (upsample(cam, upsample_to) if upsample_to is not None else cam).detach()
