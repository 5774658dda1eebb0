"""dlnotes.scratch.efficiency: counts equal FlopCounterMode's, the distillation loss equals torch's, masks equal prune's.

FLOP and parameter counts are integers and must be equal exactly, on hypothesis-drawn architectures.
The distillation loss runs in float64 on both sides: value to 1e-12 relative, the analytic gradient
against autograd's to 1e-10. The global magnitude mask must equal ``prune.global_unstructured``'s
``weight_mask`` buffers element for element (continuous random weights: no ties).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch.nn.utils import prune
from torch.utils.flop_counter import FlopCounterMode

from dlnotes.pipelines.efficiency import build_student, build_teacher
from dlnotes.scratch import efficiency as eff


def torch_flops(model, shape) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(*shape))
    return counter.get_total_flops()


@st.composite
def cnns(draw):
    """A random Conv2d stack (kernel, stride, padding, dilation, groups, bias), pooling, then Linear layers."""
    batch, channels = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    height, width = draw(st.integers(8, 20)), draw(st.integers(8, 20))
    layers, c, h, w = [], channels, height, width
    for _ in range(draw(st.integers(1, 3))):
        groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0]))
        out = groups * draw(st.integers(1, 4))
        k, s, p, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
        h2, w2 = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
        if min(h2, w2) < 1:
            break
        layers += [nn.Conv2d(c, out, k, stride=s, padding=p, dilation=d, groups=groups, bias=draw(st.booleans())), nn.ReLU()]
        c, h, w = out, h2, w2
        if min(h, w) >= 2 and draw(st.booleans()):
            layers.append(draw(st.sampled_from([nn.MaxPool2d(2), nn.AvgPool2d(2)])))
            h, w = h // 2, w // 2
    layers.append(nn.Flatten())
    n_in = c * h * w
    for _ in range(draw(st.integers(1, 2))):
        n_out = draw(st.integers(1, 12))
        layers += [nn.Linear(n_in, n_out, bias=draw(st.booleans())), nn.Dropout(0.1)]
        n_in = n_out
    return nn.Sequential(*layers).eval(), (batch, channels, height, width)


@settings(max_examples=40, deadline=None)
@given(cnns())
def test_flops_and_params_equal_torch_on_random_cnns(drawn):
    model, shape = drawn
    assert eff.count_flops(model, shape) == torch_flops(model, shape)
    assert eff.count_params(model) == sum(p.numel() for p in model.parameters())


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(1, 50), min_size=2, max_size=4))
def test_flops_of_mlps_equal_torch(batch, widths):
    layers = [nn.Flatten()]
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers)
    assert eff.count_flops(model, (batch, widths[0])) == torch_flops(model, (batch, widths[0])) == 2 * batch * sum(
        a * b for a, b in zip(widths, widths[1:]))


@pytest.mark.parametrize("build", [build_teacher, build_student])
def test_the_chapters_models_by_hand(build):
    model = build()
    assert eff.count_flops(model, (1, 1, 28, 28)) == torch_flops(model, (1, 1, 28, 28))
    if build is build_student:  # 2 x multiply-adds: conv1 4*26*26*9, conv2 8*11*11*4*9, linear 200*10
        assert eff.count_flops(model, (1, 1, 28, 28)) == 2 * (4 * 26 * 26 * 9 + 8 * 11 * 11 * 4 * 9 + 200 * 10)
        assert eff.count_params(model) == (4 * 9 + 4) + (8 * 4 * 9 + 8) + (200 * 10 + 10)


def test_same_padding_and_single_layer():
    conv = nn.Conv2d(3, 5, 3, padding="same")
    assert eff.count_flops(conv, (2, 3, 9, 7)) == torch_flops(conv, (2, 3, 9, 7))
    assert eff.count_params(nn.Linear(7, 3, bias=False)) == 21


def test_counts_reject_what_they_do_not_know():
    with pytest.raises(TypeError, match="count_flops does not know"):
        eff.count_flops(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), (1, 1, 8, 8))
    with pytest.raises(TypeError, match="count_params does not know"):
        eff.count_params(nn.Sequential(nn.BatchNorm1d(3)))
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        eff.count_params("resnet")
    with pytest.raises(ValueError, match=r"input_shape=\(1, 0\)"):
        eff.count_flops(nn.Linear(3, 2), (1, 0))
    with pytest.raises(ValueError, match="Linear\\(3, ...\\) needs input"):
        eff.count_flops(nn.Linear(3, 2), (1, 4))
    with pytest.raises(ValueError, match="too small"):
        eff.count_flops(nn.Conv2d(1, 1, 5), (1, 1, 3, 3))


# --- distillation ---------------------------------------------------------------------------

def torch_kd(s, t, y, temperature, alpha):
    """An independent expression: KL as soft-target cross-entropy minus the teacher's entropy."""
    p = F.softmax(t / temperature, dim=1)
    soft_ce = F.cross_entropy(s / temperature, p)  # cross-entropy with probability targets
    entropy = -(p * F.log_softmax(t / temperature, dim=1)).sum(1).mean()
    return alpha * temperature ** 2 * (soft_ce - entropy) + (1 - alpha) * F.cross_entropy(s, y)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(2, 10), st.floats(0.5, 10), st.floats(0, 1), st.integers(0, 2 ** 31 - 1))
def test_distillation_loss_and_gradient_equal_torch(n, k, temperature, alpha, seed):
    rng = np.random.default_rng(seed)
    s, t, y = rng.normal(0, 3, (n, k)), rng.normal(0, 3, (n, k)), rng.integers(0, k, n)
    s_torch = torch.tensor(s, requires_grad=True)
    theirs = torch_kd(s_torch, torch.tensor(t), torch.tensor(y), temperature, alpha)
    theirs.backward()
    ours = eff.distillation_loss(s, t, y, temperature=temperature, alpha=alpha)
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eff.distillation_loss_grad(s, t, y, temperature=temperature, alpha=alpha),
                               s_torch.grad.numpy(), rtol=1e-10, atol=1e-12)
    kl_div = F.kl_div(F.log_softmax(torch.tensor(s) / temperature, 1), F.log_softmax(torch.tensor(t) / temperature, 1),
                      reduction="batchmean", log_target=True)
    assert np.isclose(ours, (alpha * temperature ** 2 * kl_div + (1 - alpha) * F.cross_entropy(torch.tensor(s), torch.tensor(y))).item(),
                      rtol=1e-12, atol=1e-12)


def test_distillation_loss_limits():
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=(5, 4)), np.array([0, 1, 2, 3, 0])
    assert eff.distillation_loss(s, s, y, alpha=1.0) == pytest.approx(0.0, abs=1e-12)  # KL(p || p) = 0
    ce = -eff.log_softmax(s)[np.arange(5), y].mean()
    assert eff.distillation_loss(s, rng.normal(size=(5, 4)), y, alpha=0.0) == pytest.approx(ce, rel=1e-12)
    assert eff.distillation_loss(s, rng.normal(size=(5, 4)), y) > 0


def test_distillation_loss_rejects_bad_input():
    s = np.zeros((3, 4))
    with pytest.raises(ValueError, match="temperature"):
        eff.distillation_loss(s, s, [0, 1, 2], temperature=0)
    with pytest.raises(ValueError, match=r"alpha=1.5"):
        eff.distillation_loss(s, s, [0, 1, 2], alpha=1.5)
    with pytest.raises(ValueError, match="teacher_logits.shape=\\(3, 5\\)"):
        eff.distillation_loss(s, np.zeros((3, 5)), [0, 1, 2])
    with pytest.raises(ValueError, match="`labels`"):
        eff.distillation_loss(s, s, [0, 1, 4])


# --- magnitude pruning ----------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(st.floats(0, 1), st.integers(0, 2 ** 31 - 1))
def test_magnitude_mask_equals_prune_global_unstructured(amount, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).double()
    weights = [model[0].weight.detach().numpy().copy(), model[2].weight.detach().numpy().copy()]
    prune.global_unstructured([(model[0], "weight"), (model[2], "weight")], pruning_method=prune.L1Unstructured, amount=amount)
    ours = eff.magnitude_mask(weights, amount)
    for mask, module in zip(ours, (model[0], model[2])):
        np.testing.assert_array_equal(mask, module.weight_mask.numpy())
    assert sum(int((m == 0).sum()) for m in ours) == round(amount * sum(w.size for w in weights))


def test_magnitude_mask_keeps_the_largest():
    masks = eff.magnitude_mask([np.array([0.1, -5.0, 0.3]), np.array([[-0.2, 4.0]])], 0.6)  # prune 3 of 5
    np.testing.assert_array_equal(masks[0], [0, 1, 0])
    np.testing.assert_array_equal(masks[1], [[0, 1]])
    with pytest.raises(ValueError, match="sparsity=1.2"):
        eff.magnitude_mask([np.ones(3)], 1.2)
    with pytest.raises(TypeError, match="`weights` must be a non-empty list"):
        eff.magnitude_mask(np.ones(3), 0.5)
