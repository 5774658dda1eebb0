"""dlnotes.pipelines.efficiency: training, distillation, pruning, quantization, sizes and timing do what they say.

Models train for one or two epochs on 1,000 of the offline MNIST digits (a few seconds in all).
``kd_loss`` is checked against the NumPy reference in :mod:`dlnotes.scratch.efficiency`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from dlnotes.data import load_mnist
from dlnotes.pipelines import efficiency as eff
from dlnotes.scratch import efficiency as ref


@pytest.fixture(scope="module")
def data():
    (x, y), (x_test, y_test) = load_mnist(n_train=1000)
    return x, y, x_test[:300], y_test[:300]


@pytest.fixture(scope="module")
def teacher(data):
    x, y, _, _ = data
    return eff.train(eff.build_teacher(), x, y, epochs=2, seed=0)


def test_kd_loss_equals_the_reference():
    rng = np.random.default_rng(0)
    s, t, y = rng.normal(size=(6, 10)), rng.normal(size=(6, 10)), rng.integers(0, 10, 6)
    ours = eff.kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=3.0, alpha=0.7).item()
    assert ours == pytest.approx(ref.distillation_loss(s, t, y, temperature=3.0, alpha=0.7), rel=1e-12)


def test_teacher_learns_and_training_is_reproducible(data, teacher):
    x, y, x_test, y_test = data
    assert eff.accuracy(teacher, x_test, y_test) > 0.8  # chance is 0.1
    again = eff.train(eff.build_teacher(), x, y, epochs=2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), again.state_dict().values()))


def test_distillation_moves_the_student_towards_the_teacher(data, teacher):
    x, y, x_test, y_test = data
    alone = eff.train(eff.build_student(), x, y, epochs=3, seed=0, learning_rate=5e-3)
    distilled = eff.train(eff.build_student(), x, y, epochs=3, seed=0, learning_rate=5e-3, teacher=teacher, alpha=1.0)
    assert eff.accuracy(distilled, x_test, y_test) > 0.5 and eff.accuracy(alone, x_test, y_test) > 0.5
    assert not torch.equal(alone[0].weight, distilled[0].weight)  # the teacher changed the training
    with torch.no_grad():
        images = torch.from_numpy(x_test)[:, None]
        kl = lambda m: nn.functional.kl_div(m(images).log_softmax(1), teacher(images).log_softmax(1),
                                            reduction="batchmean", log_target=True).item()
    assert kl(distilled) < kl(alone)


@pytest.mark.parametrize("amount", [0.0, 0.5, 0.9])
def test_prune_global_zeroes_the_smallest_weights(teacher, amount):
    pruned = eff.prune_global(teacher, amount)
    weights = [m.weight.detach().numpy() for m in teacher.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    masks = ref.magnitude_mask(weights, amount)
    kept = [m.weight.detach().numpy() != 0 for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(np.array_equal(k, m.astype(bool)) for k, m in zip(kept, masks))
    assert eff.sparsity(pruned) == pytest.approx(amount, abs=1e-5)
    assert eff.sparsity(teacher) == 0.0  # the original is untouched
    assert eff.model_size_bytes(pruned) == pytest.approx(eff.model_size_bytes(teacher), rel=0.01)  # dense storage
    if amount >= 0.5:
        assert eff.model_size_bytes(pruned, compressed=True) < 0.8 * eff.model_size_bytes(teacher, compressed=True)


def test_quantize_int8_is_smaller_close_and_silent(data, teacher):
    _, _, x_test, y_test = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantized = eff.quantize_int8(teacher)
    assert type(quantized[7]).__name__ == "Linear" and type(quantized[7]).__module__.startswith("torch.ao.nn.quantized")
    assert eff.model_size_bytes(quantized) < 0.4 * eff.model_size_bytes(teacher)  # the Linear weights dominate
    assert abs(eff.accuracy(quantized, x_test, y_test) - eff.accuracy(teacher, x_test, y_test)) <= 0.02
    assert isinstance(teacher[7], nn.Linear) and type(teacher[7]) is nn.Linear  # original unchanged


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_copies(data, teacher, dtype):
    _, _, x_test, y_test = data
    half = eff.to_dtype(teacher, dtype)
    assert next(half.parameters()).dtype == dtype and next(teacher.parameters()).dtype == torch.float32
    assert abs(eff.accuracy(half, x_test, y_test) - eff.accuracy(teacher, x_test, y_test)) <= 0.02
    assert eff.model_size_bytes(half) < 0.6 * eff.model_size_bytes(teacher)
    with pytest.raises(TypeError, match="dtype=torch.int8"):
        eff.to_dtype(teacher, torch.int8)


def test_latency_and_energy():
    times = eff.latency(eff.build_student(), n_calls=5, warmup=1)
    assert times.shape == (5,) and np.all(times > 0)
    assert eff.energy(3600.0, 10.0, grams_co2_per_kwh=500.0) == {"wh": 10.0, "grams_co2": 5.0}
    with pytest.raises(ValueError, match="n_calls=0"):
        eff.latency(eff.build_student(), n_calls=0)
    with pytest.raises(ValueError, match="watts=0"):
        eff.energy(1.0, 0)


def test_bad_arguments_are_named(data):
    x, y, _, _ = data
    with pytest.raises(ValueError, match="epochs=0"):
        eff.train(eff.build_student(), x, y, epochs=0)
    with pytest.raises(ValueError, match="alpha=2"):
        eff.train(eff.build_student(), x, y, alpha=2)
    with pytest.raises(ValueError, match=r"x.shape=\(3, 28\)"):
        eff.accuracy(eff.build_student(), np.zeros((3, 28)), [0, 1, 2])
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        eff.prune_global("teacher", 0.5)
    with pytest.raises(ValueError, match="amount=1.5"):
        eff.prune_global(eff.build_student(), 1.5)


def test_chapter_thresholds_are_the_measured_ones():
    """The notebook's checked constants are scripts/thresholds/efficiency.py's, beyond the worst run in
    benchmarks/efficiency_thresholds.md."""
    from tests.helpers import chapter_thresholds_hold

    chapter_thresholds_hold("efficiency", "book/outlook/efficiency.ipynb", {
        "TEACHER_ACCURACY_MIN": "teacher_accuracy", "STUDENT_ACCURACY_MIN": "student_accuracy",
        "DISTILL_GAP_MAX": "distill_gap_abs", "PRUNE80_DROP_MAX": "prune80_drop", "PRUNE95_DROP_MIN": "prune95_drop",
        "INT8_DROP_MAX": "int8_drop", "HALF_DROP_MAX": "half_drop"})
