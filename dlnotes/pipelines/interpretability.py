r"""A small MNIST CNN to explain, and the tests an explanation must pass.

Taught in: *Interpretability* (``book/outlook/interpretability.ipynb``). The attribution methods
themselves are in :mod:`dlnotes.scratch.interpretability`.

In the order the chapter uses them: :func:`build_cnn` and :func:`train_cnn` (two convolutions on
the 5,000 MNIST digits that ship offline), :func:`attribute` (one name per method),
:func:`completeness_gap` (integrated gradients' sum against :math:`f(x) - f(x')`),
:func:`cascading_randomization` (the model-parameter sanity check of Adebayo et al., 2018: re-draw
the weights from the top layer down and measure how much each map still resembles the original,
by Spearman rank correlation), and :func:`deletion_curve` (Petsiuk et al., 2018: remove pixels in
the order a map ranks them and watch the class probability fall; a good map makes it fall fast).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from dlnotes._checks import check_choice, check_positive_int
from dlnotes.runtime import seed_everything
from dlnotes.scratch import interpretability as attr

__all__ = ["build_cnn", "train_cnn", "accuracy", "METHODS", "attribute", "completeness_gap", "LAYERS",
           "cascading_randomization", "spearman", "deletion_curve"]

METHODS = ("saliency", "gradient x input", "integrated gradients", "Grad-CAM")


def build_cnn() -> nn.Sequential:
    """``(N, 1, 28, 28)`` images -> logits ``(N, 10)``: conv 3x3 (16) - ReLU - pool - conv 3x3 (32) - ReLU - pool - linear."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),   # 16 x 13 x 13
        nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 5 x 5
        nn.Flatten(), nn.Linear(32 * 5 * 5, 10),
    )


# The layers with weights, top first, as the sanity check re-draws them; index into build_cnn().
LAYERS = {"linear": 7, "conv2": 3, "conv1": 0}


def _images(x) -> torch.Tensor:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"`x` must be images of shape (N, 28, 28). Received: x.shape={x.shape}")
    return torch.from_numpy(x)[:, None]


def train_cnn(x, y, *, epochs: int = 4, batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0) -> nn.Sequential:
    """Adam on the mean cross-entropy, ``epochs`` shuffled passes; returns the model in eval mode."""
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    images, labels = _images(x), torch.as_tensor(np.asarray(y), dtype=torch.long)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"`y` must hold one label per image. Received: y.shape={tuple(labels.shape)}")
    seed_everything(seed)
    model = build_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model, x, y) -> float:
    """Share of images whose largest logit is the label."""
    return float((model(_images(x)).argmax(1).numpy() == np.asarray(y)).mean())


def attribute(method: str, model, x: torch.Tensor, target) -> torch.Tensor:
    """The map of ``method`` (one of :data:`METHODS`) for each image, shape ``(N, 1, 28, 28)``.

    Grad-CAM runs on the second convolution's ReLU (``model[4]``) and is upsampled to 28 x 28;
    integrated gradients use a black baseline and 32 Gauss-Legendre nodes.
    """
    check_choice("method", method, METHODS)
    if method == "saliency":
        return attr.saliency(model, x, target)
    if method == "gradient x input":
        return attr.gradient_x_input(model, x, target)
    if method == "integrated gradients":
        return attr.integrated_gradients(model, x, target, n_steps=32)
    return attr.grad_cam(model, model[4], x, target, upsample_to=x.shape[-2:])


@torch.no_grad()
def completeness_gap(model, x: torch.Tensor, target, attributions: torch.Tensor, baseline=None) -> np.ndarray:
    r"""Per image, :math:`\sum_i A_i - (f_c(x) - f_c(x'))`: zero for exact integrated gradients."""
    target = torch.as_tensor(target).reshape(-1, 1)
    baseline = torch.zeros_like(x) if baseline is None else baseline
    delta = model(x).gather(1, target) - model(baseline).gather(1, target)
    return (attributions.flatten(1).sum(1) - delta[:, 0]).numpy()


def spearman(a, b) -> float:
    """Spearman rank correlation of two maps (flattened), ties ranked by their mean rank."""
    from scipy.stats import rankdata

    ra, rb = rankdata(np.ravel(a)), rankdata(np.ravel(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def cascading_randomization(model, x: torch.Tensor, target, methods=METHODS, *, seed: int = 0) -> dict:
    """For each method, the mean Spearman correlation of |map| with the trained model's |map| after
    re-drawing the weights of the top 0, 1, 2 and 3 layers (linear, then conv2, then conv1).

    Returns ``{method: [1.0, r_linear, r_linear+conv2, r_all]}``; a map that explains the *model*
    must lose its resemblance as the weights go; one that still looks the same was explaining the input.
    """
    original = {m: attribute(m, model, x, target).abs() for m in methods}
    result = {m: [1.0] for m in methods}
    randomized = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    for index in LAYERS.values():
        layer = randomized[index]
        with torch.no_grad():
            bound = float(np.sqrt(6.0 / (layer.weight[0].numel() + layer.weight.shape[0])))
            layer.weight.copy_(torch.empty_like(layer.weight).uniform_(-bound, bound, generator=generator))
            layer.bias.zero_()
        for m in methods:
            maps = attribute(m, randomized, x, target).abs()
            result[m].append(float(np.mean([spearman(a, b) for a, b in zip(original[m].numpy(), maps.numpy())])))
    return result


@torch.no_grad()
def deletion_curve(model, x: torch.Tensor, target, maps: torch.Tensor | None, fractions, *, seed: int = 0) -> np.ndarray:
    """Mean probability of the target class after setting the top ``fraction`` of pixels (ranked by
    ``maps``, or at random when ``maps`` is None) to 0, for each fraction; shape ``(len(fractions),)``."""
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or np.any((fractions < 0) | (fractions > 1)):
        raise ValueError(f"`fractions` must be a 1-D list of numbers in [0, 1]. Received: fractions={fractions!r}")
    n, pixels = x.shape[0], x[0].numel()
    if maps is None:
        generator = torch.Generator().manual_seed(seed)
        order = torch.stack([torch.randperm(pixels, generator=generator) for _ in range(n)])
    else:
        order = maps.reshape(n, -1).argsort(dim=1, descending=True, stable=True)
    target = torch.as_tensor(target).reshape(-1, 1)
    curve = []
    for fraction in fractions:
        k = int(round(fraction * pixels))
        keep = torch.ones(n, pixels)
        keep.scatter_(1, order[:, :k], 0.0)
        probs = model(x * keep.reshape(x.shape)).softmax(dim=1).gather(1, target)
        curve.append(float(probs.mean()))
    return np.array(curve)
