"""dlnotes.scratch.interpretability: every attribution method equals Captum's on the same model and inputs.

The model runs in float64 so that the comparisons can be tight: saliency, gradient x input and
Grad-CAM are the same autograd computations and must agree to 1e-12; integrated gradients
agree to 1e-8 (Captum builds its nodes with float32 ``torch.linspace``). Captum's trapezoid rule
has weights that sum to (K-1)/K; the test pins that difference down exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from captum.attr import InputXGradient, IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from hypothesis import given, strategies as st

from dlnotes.scratch import interpretability as attr


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 5 * 5, 10))
    return net.double().eval()


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(5, 1, 28, 28, generator=generator, dtype=torch.float64), torch.tensor([0, 3, 5, 7, 9])


def test_saliency_and_gradient_x_input_equal_captum(model, batch):
    x, t = batch
    assert torch.allclose(attr.saliency(model, x, t), Saliency(model).attribute(x.clone(), target=t), rtol=0, atol=1e-12)
    assert torch.allclose(attr.gradient_x_input(model, x, t), InputXGradient(model).attribute(x.clone(), target=t),
                          rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_right"])
@pytest.mark.parametrize("n_steps", [4, 25])
def test_integrated_gradients_equal_captum(model, batch, method, n_steps):
    x, t = batch
    ours = attr.integrated_gradients(model, x, t, n_steps=n_steps, method=method)
    theirs = IntegratedGradients(model).attribute(x, target=t, n_steps=n_steps, method=method)
    assert (ours - theirs).abs().max() < 1e-8


def test_captum_trapezoid_weights_sum_to_k_minus_1_over_k(model, batch):
    x, t = batch
    k = 10
    ours = attr.integrated_gradients(model, x, t, n_steps=k, method="riemann_trapezoid")
    theirs = IntegratedGradients(model).attribute(x, target=t, n_steps=k, method="riemann_trapezoid")
    assert (ours * (k - 1) / k - theirs).abs().max() < 1e-8
    assert (ours - theirs).abs().max() > 1e-4  # the difference is real, not rounding


def test_grad_cam_equals_captum(model, batch):
    x, t = batch
    theirs = LayerGradCam(model, model[4]).attribute(x, target=t, relu_attributions=True)
    assert torch.allclose(attr.grad_cam(model, model[4], x, t), theirs, rtol=0, atol=1e-12)
    raw = LayerGradCam(model, model[4]).attribute(x, target=t)
    assert torch.allclose(attr.grad_cam(model, model[4], x, t, relu=False), raw, rtol=0, atol=1e-12)
    up = LayerAttribution.interpolate(theirs, (28, 28), interpolate_mode="bilinear")
    assert torch.allclose(attr.grad_cam(model, model[4], x, t, upsample_to=(28, 28)), up, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["riemann_right", "riemann_trapezoid", "gausslegendre"])
@given(n=st.integers(2, 40))
def test_quadrature_weights_sum_to_one_and_nodes_lie_in_the_interval(method, n):
    nodes, weights = attr.quadrature(n, method)
    assert nodes.shape == weights.shape == (n,)
    assert abs(weights.sum() - 1.0) < 1e-12 and np.all(weights > 0)
    assert np.all((nodes >= 0) & (nodes <= 1))


def test_gauss_legendre_is_exact_for_polynomials_of_degree_2k_minus_1():
    nodes, weights = attr.quadrature(3, "gausslegendre")
    for degree in range(6):  # int_0^1 a^d da = 1/(d+1)
        assert abs((weights * nodes ** degree).sum() - 1 / (degree + 1)) < 1e-14


def test_integrated_gradients_are_complete_and_exact_on_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    ig = attr.integrated_gradients(linear, x, 2, n_steps=2)
    # for f(x) = w.x + b, IG_i = x_i w_i exactly, and the attributions sum to f(x) - f(0)
    assert torch.allclose(ig.flatten(1), x.flatten(1) * linear[1].weight[2], atol=1e-14)
    with torch.no_grad():
        delta = linear(x)[:, 2] - linear(torch.zeros_like(x))[:, 2]
    assert torch.allclose(ig.flatten(1).sum(1), delta, atol=1e-12)


def test_completeness_error_shrinks_with_more_nodes(model, batch):
    x, t = batch
    with torch.no_grad():
        delta = model(x).gather(1, t[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    errors = [(attr.integrated_gradients(model, x, t, n_steps=n, method="riemann_trapezoid").flatten(1).sum(1) - delta)
              .abs().max().item() for n in (4, 16, 64)]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("call, match", [
    (lambda m, x: attr.saliency("net", x, 0), r"`model` must be a torch.nn.Module. Received: model of type str"),
    (lambda m, x: attr.saliency(m, x.numpy(), 0), r"`x` must be a floating-point tensor"),
    (lambda m, x: attr.saliency(m, x, [1, 2]), r"`target` must hold one class per input \(5\). Received: target.shape=\(2,\)"),
    (lambda m, x: attr.quadrature(0), r"`n_steps` must be a positive integer. Received: n_steps=0"),
    (lambda m, x: attr.quadrature(1, "riemann_trapezoid"), r"`n_steps` must be at least 2 for the trapezoid rule"),
    (lambda m, x: attr.quadrature(5, "simpson"), r"`method` must be one of .* Received: method='simpson'"),
    (lambda m, x: attr.grad_cam(m, nn.ReLU(), x, 0), r"`layer` must be one of the modules of `model`"),
    (lambda m, x: attr.grad_cam(m, m[7], x, 0), r"`layer` must output feature maps \(N, K, h, w\). Received: output shape \(5, 10\)"),
])
def test_bad_arguments_are_named(model, batch, call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call(model, batch[0])
