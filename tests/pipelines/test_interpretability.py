"""dlnotes.pipelines.interpretability: the CNN learns, the sanity check and the deletion curve measure what they say.

The model is trained for one epoch on 1,000 of the offline MNIST digits (about a second);
Spearman's correlation is checked against scipy's ``spearmanr``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dlnotes.data import load_mnist
from dlnotes.pipelines import interpretability as interp


@pytest.fixture(scope="module")
def trained():
    (x, y), (x_test, y_test) = load_mnist(n_train=1000)
    model = interp.train_cnn(x, y, epochs=2, seed=0)
    return model, x_test[:300], y_test[:300]


def test_the_cnn_learns_and_is_reproducible(trained):
    model, x, y = trained
    assert interp.accuracy(model, x, y) > 0.7  # ten classes: chance is 0.1 (measured: 0.78 after 2 epochs)
    (x_train, y_train), _ = load_mnist(n_train=1000)
    again = interp.train_cnn(x_train, y_train, epochs=2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_layers_name_the_weighted_layers_top_first():
    model = interp.build_cnn()
    assert [type(model[i]).__name__ for i in interp.LAYERS.values()] == ["Linear", "Conv2d", "Conv2d"]
    assert sum(p.numel() for p in model.parameters()) == (16 * 9 + 16) + (32 * 16 * 9 + 32) + (800 * 10 + 10)


@pytest.mark.parametrize("method", interp.METHODS)
def test_every_method_returns_one_map_per_image(trained, method):
    model, x, y = trained
    images = torch.from_numpy(x[:4])[:, None]
    maps = interp.attribute(method, model, images, torch.from_numpy(y[:4]))
    assert maps.shape == (4, 1, 28, 28) and torch.isfinite(maps).all()


def test_completeness_gap_is_small_relative_to_the_logit_change(trained):
    model, x, y = trained
    images, target = torch.from_numpy(x[:8])[:, None], torch.from_numpy(y[:8])
    ig = interp.attribute("integrated gradients", model, images, target)
    gap = interp.completeness_gap(model, images, target, ig)
    with torch.no_grad():
        delta = (model(images).gather(1, target[:, None]) - model(torch.zeros_like(images)).gather(1, target[:, None]))[:, 0]
    assert np.all(np.abs(gap) < 0.05 * np.abs(delta.numpy()) + 1e-3)
    wrong = interp.completeness_gap(model, images, target, 2 * ig)  # doubling the map breaks completeness
    assert np.all(np.abs(wrong) > np.abs(gap))


@pytest.mark.parametrize("seed", range(3))
def test_spearman_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(6, 7)), rng.normal(size=(6, 7))
    b[0, :3] = a[0, :3]
    a[1, :2] = 0.0  # ties
    assert abs(interp.spearman(a, b) - stats.spearmanr(a.ravel(), b.ravel()).statistic) < 1e-12


def test_cascading_randomization_destroys_grad_cam_but_not_the_input_structure(trained):
    model, x, y = trained
    images, target = torch.from_numpy(x[:16])[:, None], torch.from_numpy(y[:16])
    result = interp.cascading_randomization(model, images, target, methods=("gradient x input", "Grad-CAM"))
    assert all(len(r) == 4 and r[0] == 1.0 for r in result.values())
    assert result["Grad-CAM"][-1] < 0.5
    assert result["gradient x input"][-1] > 0.8  # multiplied by the input: zero wherever the image is black
    before = [p.clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the trained model is untouched


def test_deletion_curve_endpoints_and_order(trained):
    model, x, y = trained
    images, target = torch.from_numpy(x[:16])[:, None], torch.from_numpy(y[:16])
    with torch.no_grad():
        p_full = model(images).softmax(1).gather(1, target[:, None]).mean().item()
        p_blank = model(torch.zeros_like(images)).softmax(1).gather(1, target[:, None]).mean().item()
    brightest = interp.deletion_curve(model, images, target, images, [0.0, 0.1, 1.0])
    random = interp.deletion_curve(model, images, target, None, [0.0, 0.1, 1.0])
    assert brightest[0] == pytest.approx(p_full, abs=1e-6) and random[0] == pytest.approx(p_full, abs=1e-6)
    assert brightest[-1] == pytest.approx(p_blank, abs=1e-6) and random[-1] == pytest.approx(p_blank, abs=1e-6)
    assert brightest[1] < random[1]  # removing the ink hurts more than removing random (mostly black) pixels


@pytest.mark.parametrize("call, match", [
    (lambda: interp.train_cnn(np.zeros((2, 28, 28)), [0, 1], epochs=0), r"`epochs` must be a positive integer"),
    (lambda: interp.train_cnn(np.zeros((2, 28)), [0, 1]), r"`x` must be images of shape \(N, 28, 28\). Received: x.shape=\(2, 28\)"),
    (lambda: interp.train_cnn(np.zeros((2, 28, 28)), [0, 1, 2]), r"`y` must hold one label per image"),
    (lambda: interp.attribute("lime", interp.build_cnn(), torch.zeros(1, 1, 28, 28), 0), r"`method` must be one of"),
    (lambda: interp.deletion_curve(interp.build_cnn(), torch.zeros(1, 1, 28, 28), 0, None, [0.5, 2.0]),
     r"`fractions` must be a 1-D list of numbers in \[0, 1\]"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_chapter_thresholds_are_the_measured_ones():
    """The notebook's checked accuracy bar is the thresholds script's, and below the worst seed measured."""
    import importlib.util
    import json
    import re

    from tests.notebooks import ROOT

    spec = importlib.util.spec_from_file_location("thr", ROOT / "scripts/thresholds/interpretability.py")
    thresholds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thresholds)
    cells = json.loads((ROOT / "book/outlook/interpretability.ipynb").read_text(encoding="utf-8"))["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert float(re.search(r"^ACCURACY_MIN = ([\d.]+)$", source, re.M).group(1)) == thresholds.THRESHOLDS["accuracy"][0]
    for constant, metric in (("< 0.8", "rand_cam"), ("> 0.9", "rand_gxi"), ("< 0.05", "gap_gl64")):
        assert constant in source and float(constant[2:]) == thresholds.THRESHOLDS[metric][0], metric
    table = (ROOT / "benchmarks/interpretability_thresholds.md").read_text(encoding="utf-8")
    for metric, (threshold, kind) in thresholds.THRESHOLDS.items():
        row = re.search(rf"^\| interpretability \| {metric} \| \d+ \| (-?[\d.]+) \| -?[\d.]+ \| (-?[\d.]+) \|", table, re.M)
        low, high = float(row.group(1)), float(row.group(2))
        assert (threshold < low) if kind == "min" else (threshold > high), metric
