"""dlnotes.scratch.robustness: the attacks keep their invariants and equal independent code; the shifts equal scipy/skimage.

torchattacks (the usual reference) requires torchvision, which is not installed with the course's
CPU-only torch, so the attacks are checked against code paths that share nothing with ours:
``loss.backward()`` on a mean loss instead of ``torch.autograd.grad`` on a sum, torchattacks'
own formulas for the projection (``x + clamp(x_adv - x)``, then ``clamp``), and PGD with one
step of size epsilon from ``x``, which is FGSM by definition. The models run in float64 so
"exactly" can mean to 1e-12 or better.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st
from skimage.transform import rotate as sk_rotate

from dlnotes.scratch import robustness as rob


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    return net.double().eval()


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 28, 28, generator=generator, dtype=torch.float64), torch.tensor([0, 1, 3, 5, 7, 9])


def reference_gradient(model, x, y):
    """Another code path: a mean loss and .backward(), scaled back to the sum."""
    x = x.clone().requires_grad_(True)
    nn.CrossEntropyLoss()(model(x), y).backward()
    return x.grad * len(y)


def test_input_gradient_equals_backward_on_the_mean_loss(model, batch):
    x, y = batch
    model.zero_grad(set_to_none=True)
    ours = rob.input_gradient(model, x, y)
    assert all(p.grad is None for p in model.parameters())  # only the input gets a gradient
    torch.testing.assert_close(ours, reference_gradient(model, x, y), rtol=1e-10, atol=1e-14)
    model.zero_grad(set_to_none=True)


def test_fgsm_perturbation_is_exactly_eps_times_the_sign(model, batch):
    x, y = batch
    eps = 0.1
    unclipped = rob.fgsm(model, x, y, eps, clip=False)
    sign = reference_gradient(model, x, y).sign()
    model.zero_grad(set_to_none=True)
    assert torch.equal(unclipped, x + eps * sign)  # bit for bit
    moved = sign != 0  # max-pooling routes no gradient to some pixels: those stay put
    assert 0.5 < moved.float().mean() < 1 and torch.equal(unclipped[~moved], x[~moved])
    assert ((unclipped - x)[moved].abs() - eps).abs().max() < 1e-16  # float64 rounding of (x + eps) - x
    clipped = rob.fgsm(model, x, y, eps)
    assert torch.equal(clipped, unclipped.clamp(0, 1))
    inside = (unclipped >= 0) & (unclipped <= 1)
    assert inside.float().mean() > 0.7  # most pixels are not clipped, and there it is the same step
    assert torch.equal(clipped[inside], unclipped[inside])


def test_pgd_with_one_step_of_eps_from_x_is_fgsm(model, batch):
    x, y = batch
    for eps in (0.05, 0.3):
        one_step = rob.pgd(model, x, y, eps, steps=1, step_size=eps, random_start=False)
        torch.testing.assert_close(one_step, rob.fgsm(model, x, y, eps), rtol=0, atol=1e-15)


def torchattacks_pgd(model, images, labels, eps, alpha, steps):
    """torchattacks.PGD.forward (v3.5.1) without a random start, transcribed."""
    adv = images.clone().detach()
    for _ in range(steps):
        adv.requires_grad = True
        grad = torch.autograd.grad(nn.CrossEntropyLoss()(model(adv), labels), adv)[0]
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-eps, max=eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return adv


def test_pgd_equals_the_torchattacks_formulas(model, batch):
    x, y = batch
    ours = rob.pgd(model, x, y, 0.2, steps=7, step_size=0.05, random_start=False)
    torch.testing.assert_close(ours, torchattacks_pgd(model, x, y, 0.2, 0.05, 7), rtol=0, atol=1e-12)


def test_pgd_raises_the_loss_at_least_as_much_as_fgsm(model, batch):
    x, y = batch
    losses = {}
    for name, x_adv in (("clean", x), ("fgsm", rob.fgsm(model, x, y, 0.1)),
                        ("pgd", rob.pgd(model, x, y, 0.1, steps=10, generator=torch.Generator().manual_seed(0)))):
        with torch.no_grad():
            losses[name] = nn.functional.cross_entropy(model(x_adv), y).item()
    assert losses["pgd"] >= losses["fgsm"] > losses["clean"]


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(0.0, 0.5), steps=st.integers(1, 4), seed=st.integers(0, 2**16), random_start=st.booleans())
def test_pgd_stays_in_the_ball_and_the_box(model, batch, eps, steps, seed, random_start):
    x, y = batch
    x_adv = rob.pgd(model, x, y, eps, steps=steps, random_start=random_start,
                    generator=torch.Generator().manual_seed(seed))
    assert (x_adv - x).abs().max() <= eps + 1e-12
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@settings(max_examples=50, deadline=None)
@given(eps=st.floats(0.0, 1.0), seed=st.integers(0, 2**16), scale=st.floats(0.1, 3.0))
def test_projection_is_the_nearest_point_of_the_ball_and_box(eps, seed, scale):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 5, generator=generator, dtype=torch.float64)
    z = x + scale * torch.randn(3, 5, generator=generator, dtype=torch.float64)
    p = rob.project_linf(z, x, eps)
    assert (p - x).abs().max() <= eps + 1e-15 and p.min() >= 0 and p.max() <= 1
    # Coordinate-wise the feasible set is the interval [max(x-eps, 0), min(x+eps, 1)]; clipping to it is nearest.
    torch.testing.assert_close(p, torch.clamp(z, (x - eps).clamp(min=0), (x + eps).clamp(max=1)), rtol=0, atol=0)
    torch.testing.assert_close(rob.project_linf(p, x, eps), p, rtol=0, atol=0)  # idempotent


def test_attack_arguments_are_checked(model, batch):
    x, y = batch
    with pytest.raises(ValueError, match=r"`eps` must be in \[0.0, inf\)\. Received: eps=-0.1"):
        rob.fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match="`steps` must be a positive integer. Received: steps=0"):
        rob.pgd(model, x, y, 0.1, steps=0)
    with pytest.raises(ValueError, match=r"`step_size` must be in \(0.0, inf\)\. Received: step_size=0"):
        rob.pgd(model, x, y, 0.1, step_size=0)
    with pytest.raises(ValueError, match=r"one label per image.*y.shape=\(2,\)"):
        rob.fgsm(model, x, y[:2], 0.1)
    with pytest.raises(TypeError, match="`x` must be a floating-point tensor"):
        rob.fgsm(model, x.numpy(), y, 0.1)
    with pytest.raises(ValueError, match="same shape"):
        rob.project_linf(x[:2], x, 0.1)


def bordered_images(seed, n=3):
    """Random images with a black border of 4 pixels, like MNIST digits."""
    x = np.zeros((n, 28, 28))
    x[:, 4:24, 4:24] = np.random.default_rng(seed).random((n, 20, 20))
    return x


@pytest.mark.parametrize("degrees", [0.0, 7.5, 30.0, -45.0, 90.0, 180.0])
def test_rotation_equals_scipy_and_skimage(degrees):
    x = bordered_images(0)
    ours = rob.rotate(x, degrees)
    scipy_rot = ndi.rotate(x, degrees, axes=(-2, -1), reshape=False, order=1, mode="grid-constant")
    np.testing.assert_allclose(ours, scipy_rot, rtol=0, atol=1e-12)
    skimage_rot = np.stack([sk_rotate(image, degrees, order=1) for image in x])
    np.testing.assert_allclose(ours, skimage_rot, rtol=0, atol=1e-12)


def test_rotation_is_counter_clockwise_and_keeps_dtype():
    x = np.zeros((1, 5, 5), dtype=np.float32)
    x[0, 0, 2] = 1.0  # top centre
    out = rob.rotate(x, 90.0)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.unravel_index(out[0].argmax(), (5, 5)) == (2, 0)  # counter-clockwise: top goes to the left


@pytest.mark.parametrize("sigma", [0.0, 0.5, 1.0, 2.0])
def test_blur_equals_scipy_gaussian_filter(sigma):
    x = np.random.default_rng(1).random((2, 28, 28))
    expected = x if sigma == 0 else ndi.gaussian_filter(x, sigma, axes=(-2, -1), mode="constant")
    np.testing.assert_allclose(rob.gaussian_blur(x, sigma), expected, rtol=0, atol=1e-12)


@given(sigma=st.floats(0.0, 2.0), seed=st.integers(0, 100))
def test_noise_stays_in_the_pixel_range_and_is_reproducible(sigma, seed):
    x = bordered_images(seed, n=2).astype(np.float32)
    a, b = rob.gaussian_noise(x, sigma, seed=seed), rob.gaussian_noise(x, sigma, seed=seed)
    assert a.dtype == np.float32 and np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1
    if sigma == 0:
        assert np.array_equal(a, x)


def test_shift_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`sigma` must be in \[0.0, inf\)\. Received: sigma=-1"):
        rob.gaussian_blur(np.zeros((1, 4, 4)), -1)
    with pytest.raises(TypeError, match="`degrees` must be a finite real number. Received: degrees=nan"):
        rob.rotate(np.zeros((1, 4, 4)), float("nan"))
    with pytest.raises(ValueError, match=r"last two axes.*x.shape=\(4,\)"):
        rob.gaussian_noise(np.zeros(4), 0.1)
