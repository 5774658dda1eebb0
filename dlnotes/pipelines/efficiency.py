r"""Smaller, faster, cheaper MNIST models: distillation, pruning, quantization, and what each costs.

Taught in: *Efficiency and cost* (``book/outlook/efficiency.ipynb``). The counting and the
from-equation references are in :mod:`dlnotes.scratch.efficiency`.

In the order the chapter uses them: :func:`build_teacher` / :func:`build_student` (a wide and a
tiny CNN on ``(N, 1, 28, 28)`` images), :func:`train` (Adam on cross-entropy, or on Hinton et al.'s
distillation loss when a ``teacher`` is given, computed with ``torch.nn.functional`` in
:func:`kd_loss`), :func:`prune_global` (``torch.nn.utils.prune.global_unstructured``, L1, made
permanent), :func:`quantize_int8` (post-training dynamic int8 of the ``Linear`` layers),
:func:`to_dtype` (float16 / bfloat16 copies), :func:`model_size_bytes` (the serialized
``state_dict``), :func:`latency` (batch-1 wall time per call) and :func:`energy` (seconds x watts).
"""

from __future__ import annotations

import copy
import io
import warnings
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dlnotes._checks import check_positive_float, check_positive_int, check_real
from dlnotes.pipelines.production import call_times
from dlnotes.runtime import seed_everything

__all__ = ["build_teacher", "build_student", "train", "kd_loss", "accuracy", "prune_global", "sparsity",
           "quantize_int8", "to_dtype", "model_size_bytes", "latency", "energy"]


def build_teacher() -> nn.Sequential:
    """``(N, 1, 28, 28)`` -> ``(N, 10)``: conv 3x3 (32) - pool - conv 3x3 (64) - pool - linear 1600->128 - linear 128->10."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 13 x 13
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 5 x 5
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def build_student() -> nn.Sequential:
    """``(N, 1, 28, 28)`` -> ``(N, 10)``: conv 3x3 (4) - pool - conv 3x3 (8) - pool - linear 200->10."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2),    # 4 x 13 x 13
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.MaxPool2d(2),    # 8 x 5 x 5
        nn.Flatten(), nn.Linear(8 * 5 * 5, 10),
    )


def _images(x) -> torch.Tensor:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"`x` must be images of shape (N, 28, 28). Received: x.shape={x.shape}")
    return torch.from_numpy(x)[:, None]


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module. Received: model of type {type(model).__name__}")
    return model


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    r""":math:`\alpha T^2 \mathrm{KL}(\sigma(t/T) \| \sigma(s/T)) + (1-\alpha) \mathrm{CE}(s, y)`, batch means, via ``torch.nn.functional``.

    The same quantity as :func:`dlnotes.scratch.efficiency.distillation_loss`, written with
    ``F.kl_div`` (``reduction="batchmean"``) and ``F.cross_entropy``; differentiable.
    """
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1), F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature ** 2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def train(model: nn.Module, x, y, *, epochs: int = 3, batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0,
          teacher: nn.Module | None = None, temperature: float = 4.0, alpha: float = 0.9) -> nn.Module:
    """Adam for ``epochs`` shuffled passes; returns ``model`` (trained in place) in eval mode.

    Without ``teacher`` the loss is the mean cross-entropy. With a ``teacher`` it is :func:`kd_loss`
    against the teacher's logits (computed once, in eval mode: nothing is augmented). ``seed``
    sets the initial weights (re-initialises ``model``'s layers) and the batch order.
    """
    _check_model(model)
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    learning_rate = check_positive_float("learning_rate", learning_rate)
    temperature = check_positive_float("temperature", temperature)
    alpha = check_real("alpha", alpha, 0.0, 1.0)
    images, labels = _images(x), torch.as_tensor(np.asarray(y), dtype=torch.long)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"`y` must hold one label per image. Received: y.shape={tuple(labels.shape)}")
    if teacher is not None:
        _check_model(teacher).eval()
        with torch.no_grad():
            teacher_logits = teacher(images)
    seed_everything(seed)
    for layer in model.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            logits = model(images[batch])
            if teacher is None:
                loss = F.cross_entropy(logits, labels[batch])
            else:
                loss = kd_loss(logits, teacher_logits[batch], labels[batch], temperature=temperature, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def _input_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32  # dynamically quantized modules take float32 input


@torch.no_grad()
def accuracy(model: nn.Module, x, y) -> float:
    """Share of images whose largest logit is the label; the images are cast to the model's dtype."""
    _check_model(model)
    logits = model(_images(x).to(_input_dtype(model)))
    return float((logits.float().argmax(1).numpy() == np.asarray(y)).mean())


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` with the ``round(amount * n)`` smallest-magnitude weights of all its
    ``Conv2d``/``Linear`` layers together set to zero (``prune.global_unstructured`` with
    ``L1Unstructured``, then ``prune.remove``: plain dense tensors with zeros; biases untouched)."""
    from torch.nn.utils import prune

    _check_model(model)
    amount = check_real("amount", amount, 0.0, 1.0)
    pruned = copy.deepcopy(model)
    parameters = [(m, "weight") for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(parameters, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in parameters:
        prune.remove(module, name)
    return pruned.eval()


def sparsity(model: nn.Module) -> float:
    """Share of exact zeros among the weights (not biases) of the ``Conv2d``/``Linear`` layers."""
    weights = [m.weight for m in _check_model(model).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))


def quantize_int8(model: nn.Module) -> nn.Module:
    """Post-training dynamic quantization (``torch.ao.quantization.quantize_dynamic``) of the ``Linear``
    layers to ``qint8``: weights stored as int8 with one scale per tensor, activations quantized on
    the fly per batch; convolutions stay float32. Returns a new model; ``model`` is unchanged.

    On torch 2.13 ``torch.ao.quantization`` warns that it is deprecated in favour of torchao; those two
    warnings (and only those) are silenced here.
    """
    from torch.ao.quantization import quantize_dynamic

    _check_model(model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel", category=UserWarning)
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def to_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` with every floating-point parameter cast to ``dtype`` (float16, bfloat16, ...)."""
    _check_model(model)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"`dtype` must be a floating-point torch.dtype. Received: dtype={dtype!r}")
    return copy.deepcopy(model).to(dtype).eval()


def model_size_bytes(model: nn.Module, *, compressed: bool = False) -> int:
    """Bytes of ``torch.save(model.state_dict())``; with ``compressed=True``, of that after ``zlib`` level 9.

    Zeros from unstructured pruning do not shrink the dense tensors: only the compressed size sees them.
    """
    buffer = io.BytesIO()
    torch.save(_check_model(model).state_dict(), buffer)
    data = buffer.getvalue()
    return len(zlib.compress(data, 9)) if compressed else len(data)


@torch.no_grad()
def latency(model: nn.Module, *, n_calls: int = 200, warmup: int = 20, input_shape=(1, 1, 28, 28), seed: int = 0) -> np.ndarray:
    """Seconds per call of ``model`` on one random input (batch 1 by default), ``n_calls`` timed calls
    after ``warmup`` untimed ones, measured with ``time.perf_counter``; shape ``(n_calls,)``.

    Uses the threads torch has now (``torch.get_num_threads()``). The numbers depend on the machine
    and on what else runs on it: report percentiles, not a single call.
    """
    _check_model(model).eval()
    n_calls, warmup = check_positive_int("n_calls", n_calls), check_positive_int("warmup", warmup)
    x = torch.rand(*input_shape, generator=torch.Generator().manual_seed(seed)).to(_input_dtype(model))
    return call_times(model, x, repeats=n_calls, warmup=warmup)


def energy(seconds: float, watts: float, *, grams_co2_per_kwh: float = 400.0) -> dict[str, float]:
    r"""Energy :math:`E = P t` of ``seconds`` at ``watts``, in watt-hours, and its CO2 at a grid intensity.

    Returns ``{"wh": P t / 3600, "grams_co2": wh / 1000 * grams_co2_per_kwh}``.
    """
    seconds = check_real("seconds", seconds, 0.0)
    watts = check_positive_float("watts", watts)
    grams = check_real("grams_co2_per_kwh", grams_co2_per_kwh, 0.0)
    wh = watts * seconds / 3600.0
    return {"wh": wh, "grams_co2": wh / 1000.0 * grams}
