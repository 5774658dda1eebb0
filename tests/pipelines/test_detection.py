"""dlnotes.pipelines.detection(_data): canvases are deterministic and consistent, targets decode back
to the boxes, masks from boxes are exact on single digits, training lowers the loss, bad arguments raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlnotes
from dlnotes.pipelines import detection, detection_data
from dlnotes.scratch.detection import box_iou, coco_ap, dice_score


@pytest.fixture(scope="module")
def canvases():
    return detection_data.make_canvases(40, "train", seed=3)


def test_generator_is_deterministic_and_seeded(canvases):
    again = detection_data.make_canvases(40, "train", seed=3)
    other = detection_data.make_canvases(40, "train", seed=4)
    assert np.array_equal(canvases.images, again.images) and np.array_equal(canvases.masks, again.masks)
    assert not np.array_equal(canvases.images, other.images)


def test_train_and_heldout_digits_are_disjoint():
    train, _ = detection_data.load_digits("train")
    heldout, _ = detection_data.load_digits("heldout")
    assert len(train) == 8000 and len(heldout) == 2000
    train_keys = {im.tobytes() for im in train}
    assert sum(im.tobytes() in train_keys for im in heldout) <= 2      # MNIST has a few duplicate images


def test_masks_lie_in_their_boxes_and_labels_match(canvases):
    for image, mask, boxes, labels in zip(canvases.images, canvases.masks, canvases.boxes, canvases.labels):
        assert 1 <= len(boxes) <= 3 and boxes.shape == (len(labels), 4)
        inside = np.zeros(mask.shape, dtype=bool)
        for (x1, y1, x2, y2), c in zip(boxes.astype(int), labels):
            inside[y1:y2, x1:x2] = True
            assert np.any(mask[y1:y2, x1:x2] == 1 + c)
        assert np.all(mask[~inside] == 0)
        assert np.array_equal(mask > 0, image > detection_data.INK) or len(boxes) > 1
        iou = box_iou(boxes, boxes)
        np.fill_diagonal(iou, 0)
        assert iou.max(initial=0) <= 0.15


def test_targets_decode_back_to_the_boxes(canvases):
    heat, reg, _ = detection.center_targets(canvases)
    logits = torch.from_numpy(np.log(np.clip(heat, 1e-6, 1 - 1e-6) / (1 - np.clip(heat, 1e-6, 1 - 1e-6))))
    out = torch.cat([logits, torch.from_numpy(reg)], 1)
    preds = detection.decode(out, min_score=0.99)
    assert coco_ap(preds, canvases.targets(), iou_thresholds=[0.95]) == pytest.approx(1.0, abs=1e-12)


def test_masks_from_true_boxes_are_exact_on_single_digits():
    single = detection_data.make_canvases(20, "heldout", seed=0, max_digits=1)
    preds = [(b, np.ones(len(b)), l) for b, l in single.targets()]
    masks = detection.masks_from_boxes(single, preds)
    assert np.array_equal(masks, single.masks)
    assert dice_score(masks, single.masks, 11) == 1.0


def test_baseline_finds_single_digits(canvases):
    means = detection.fit_class_means(*detection_data.load_digits("train"))
    single = detection_data.make_canvases(30, "heldout", seed=0, max_digits=1)
    preds = detection.baseline_predict(single, means)
    assert all(len(b) >= 1 for b, _, _ in preds)
    assert coco_ap(preds, single.targets(), iou_thresholds=[0.5]) > 0.5


def test_training_lowers_the_loss(canvases):
    dlnotes.seed_everything(0)
    model = detection.build_detector(width=8)
    history = detection.train_detector(model, canvases, epochs=3, batch_size=10, learning_rate=5e-3, seed=0)
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 14, 16, 16)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`split` must be 'train' or 'heldout'. Received: split='test'"):
        detection_data.load_digits("test")
    with pytest.raises(ValueError, match="`n` must be a positive integer. Received: n=0"):
        detection_data.make_canvases(0, "train", seed=0)
    with pytest.raises(ValueError, match=r"`scale` must be \(low, high\)"):
        detection_data.make_canvases(2, "train", seed=0, scale=(4, 90))
    with pytest.raises(TypeError, match="`canvases` must be a non-empty Canvases"):
        detection.train_detector(detection.build_detector(8), np.zeros((2, 64, 64)), epochs=1)
    small = detection_data.make_canvases(2, "train", seed=0)
    with pytest.raises(ValueError, match="`epochs` must be"):
        detection.train_detector(detection.build_detector(8), small, epochs=0)
    with pytest.raises(ValueError, match="`predictions` must have one entry per canvas"):
        detection.masks_from_boxes(small, [])


def test_chapter_thresholds_and_seed_ranges_are_the_measured_ones():
    """The notebook's thresholds are scripts/thresholds/detection.py's, below the worst of the measured
    seeds, and its stored seed ranges are benchmarks/detection_thresholds.md's min and max."""
    import ast
    import importlib.util
    import json
    import re

    from tests.notebooks import ROOT

    spec = importlib.util.spec_from_file_location("thr_detection", ROOT / "scripts/thresholds/detection.py")
    thresholds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(thresholds)
    cells = json.loads((ROOT / "book/applications/detection.ipynb").read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    ap50, ap = ast.literal_eval(re.search(r"^AP50_MIN, AP_MIN = ([\d.]+, [\d.]+)", code, re.M).group(1))
    dice, miou = ast.literal_eval(re.search(r"^DICE_MIN, MIOU_MIN = ([\d.]+, [\d.]+)", code, re.M).group(1))
    assert {"ap50": ap50, "ap": ap, "dice": dice, "miou": miou} == {k: v for k, (v, _) in thresholds.THRESHOLDS.items()}
    table = (ROOT / "benchmarks/detection_thresholds.md").read_text(encoding="utf-8")
    stored = ast.literal_eval(re.search(r"^STORED = (\{.*?\})$", code, re.M).group(1))
    for metric, (threshold, _) in thresholds.THRESHOLDS.items():
        row = re.search(rf"^\| detection \| {metric} \| 5 \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", table, re.M)
        low, high = float(row.group(1)), float(row.group(2))
        assert threshold < low, (metric, threshold, low)
        assert stored[metric] == (low, high), metric
