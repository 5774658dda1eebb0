"""dlnotes.scratch.detection against pycocotools (box IoU, COCO AP) and torchmetrics (Dice, mean IoU).

AP is compared with ``COCOeval`` on the same random predictions to 1e-12 (the same arithmetic in
float64); IoU with ``pycocotools.mask.iou`` to 1e-12; Dice and mean IoU with torchmetrics'
functional ``dice_score`` / ``mean_iou`` (float32 there, so to 1e-6). Hypothesis checks the IoU
and NMS properties; bad arguments raise errors that name them.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchmetrics.functional.segmentation import dice_score as tm_dice, mean_iou as tm_miou

from dlnotes.scratch import detection as det


def _random_boxes(rng, n, size=64.0):
    xy = rng.uniform(0, size * 0.8, (n, 2))
    wh = rng.uniform(2, size * 0.4, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def _xywh(b):
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)


def _problem(seed, n_images=12, n_classes=3):
    """Ground truth and noisy detections (jittered copies, false positives, misses, tied scores)."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n_images):
        g = int(rng.integers(0, 5))
        gb, gl = _random_boxes(rng, g), rng.integers(0, n_classes, g)
        keep = rng.random(g) < 0.8
        jitter = gb[keep] + rng.normal(0, 2.5, (keep.sum(), 4))
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 0.5)
        extra = int(rng.integers(0, 4))
        db = np.concatenate([jitter, _random_boxes(rng, extra)])
        dl = np.concatenate([np.where(rng.random(keep.sum()) < 0.85, gl[keep], rng.integers(0, n_classes, keep.sum())),
                             rng.integers(0, n_classes, extra)])
        ds = np.round(rng.random(len(db)), 1)                    # ties across images on purpose
        preds.append((db, ds, dl.astype(np.int64)))
        targets.append((gb, gl.astype(np.int64)))
    return preds, targets


def _pycocotools_ap(preds, targets, n_classes=3):
    images, annotations, results = [], [], []
    for i, ((db, ds, dl), (gb, gl)) in enumerate(zip(preds, targets)):
        images.append({"id": i, "width": 64, "height": 64})
        for b, c in zip(_xywh(gb), gl):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c), "bbox": b.tolist(),
                                "area": float(b[2] * b[3]), "iscrowd": 0})
        for b, s, c in zip(_xywh(db), ds, dl):
            results.append({"image_id": i, "category_id": int(c), "bbox": b.tolist(), "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": c} for c in range(n_classes)]}
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0], ev.stats[1]


@pytest.mark.parametrize("seed", range(6))
def test_ap_equals_pycocotools(seed):
    preds, targets = _problem(seed)
    ap, ap50 = _pycocotools_ap(preds, targets)
    assert abs(det.coco_ap(preds, targets) - ap) <= 1e-12
    assert abs(det.coco_ap(preds, targets, iou_thresholds=[0.5]) - ap50) <= 1e-12


def test_ap_is_one_for_perfect_and_zero_for_wrong_classes():
    _, targets = _problem(0)
    perfect = [(b, np.ones(len(b)), l) for b, l in targets]
    assert det.coco_ap(perfect, targets) == pytest.approx(1.0, abs=1e-12)
    wrong = [(b, np.ones(len(b)), (l + 1) % 3) for b, l in targets]
    classes = {int(c) for _, l in targets for c in l}
    assert det.coco_ap(wrong, targets) < 1.0 and len(classes) > 1


def test_box_iou_equals_pycocotools():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 30), _random_boxes(rng, 20)
    ref = mask_utils.iou(_xywh(a).tolist(), _xywh(b).tolist(), [0] * len(b))
    assert np.max(np.abs(det.box_iou(a, b) - ref)) <= 1e-12


def test_box_iou_hand_example():
    # two 2x2 boxes overlapping in a 1x2 strip: 2 / (4 + 4 - 2)
    assert det.box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]])[0, 0] == pytest.approx(1 / 3)


box = st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 30), st.floats(0.5, 30)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(st.lists(box, min_size=1, max_size=8), st.lists(box, min_size=1, max_size=8))
def test_iou_symmetric_bounded_and_one_on_itself(a, b):
    ab, ba = det.box_iou(a, b), det.box_iou(b, a)
    assert np.allclose(ab, ba.T, rtol=0, atol=1e-12)
    assert np.all((ab >= 0) & (ab <= 1 + 1e-12))
    assert np.allclose(np.diag(det.box_iou(a, a)), 1.0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(box, min_size=1, max_size=12), st.floats(0.1, 1.0), st.randoms(use_true_random=False))
def test_nms_subset_sorted_and_no_overlap_above_threshold(boxes, threshold, random):
    scores = np.array([random.random() for _ in boxes])
    keep = det.nms(boxes, scores, threshold)
    assert len(set(keep.tolist())) == len(keep) and set(keep.tolist()) <= set(range(len(boxes)))
    assert np.all(np.diff(scores[keep]) <= 0)
    iou = det.box_iou(np.array(boxes)[keep], np.array(boxes)[keep])
    np.fill_diagonal(iou, 0)
    assert np.all(iou <= threshold)
    assert scores.argmax() in keep.tolist() or np.sum(scores == scores.max()) > 1


def test_nms_hand_example():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]]
    assert det.nms(boxes, [0.9, 0.8, 0.7], 0.5).tolist() == [0, 2]
    assert det.nms(boxes, [0.9, 0.8, 0.7], 0.9).tolist() == [0, 1, 2]


@pytest.mark.parametrize("include_background", [False, True])
def test_dice_and_mean_iou_equal_torchmetrics(include_background):
    rng = np.random.default_rng(1)
    target = rng.integers(0, 5, (6, 16, 16))
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 5, target.shape))
    pred[pred == 3] = 0                                     # a class never predicted
    t, p = torch.from_numpy(target).reshape(1, -1, 16), torch.from_numpy(pred).reshape(1, -1, 16)
    ref_dice = tm_dice(p, t, num_classes=5, include_background=include_background, average="macro", input_format="index")
    ref_iou = tm_miou(p, t, num_classes=5, include_background=include_background, input_format="index")
    assert abs(det.dice_score(pred, target, 5, include_background) - float(ref_dice[0])) <= 1e-6
    assert abs(det.mean_iou(pred, target, 5, include_background) - float(ref_iou[0])) <= 1e-6


def test_dice_perfect_and_disjoint():
    target = np.array([[0, 1, 1, 2]])
    assert det.dice_score(target, target, 3) == 1.0
    assert det.mean_iou(np.array([[0, 2, 2, 1]]), target, 3) == pytest.approx(0.0)


@pytest.mark.parametrize("call, match", [
    (lambda: det.box_iou(np.zeros((3, 3)), np.zeros((1, 4))), r"`a` must have shape \(n, 4\)"),
    (lambda: det.box_iou([[2, 0, 1, 1]], [[0, 0, 1, 1]]), "`a` must hold finite boxes with x1 <= x2"),
    (lambda: det.nms([[0, 0, 1, 1]], [0.5], iou_threshold=1.5), r"`iou_threshold` must be in \(0, 1\]. Received: iou_threshold=1.5"),
    (lambda: det.nms([[0, 0, 1, 1]], [0.5, 0.2]), r"`scores` must be finite with shape \(1,\)"),
    (lambda: det.coco_ap([], [([], [])]), "`predictions` and `targets` must be lists"),
    (lambda: det.coco_ap([], [], max_dets=0), "`max_dets` must be a positive integer. Received: max_dets=0"),
    (lambda: det.coco_ap([], [], iou_thresholds=[0.0]), r"`iou_thresholds` must be in \(0, 1\]"),
    (lambda: det.dice_score(np.zeros((2, 2), int), np.zeros((2, 3), int), 3), "`pred` and `target` must have the same shape"),
    (lambda: det.dice_score(np.zeros(4, int), np.zeros(4, int), 1), "`num_classes` must be an integer >= 2. Received: num_classes=1"),
    (lambda: det.mean_iou(np.full(4, 5), np.zeros(4, int), 3), r"`pred` must hold classes in \[0, 3\)"),
])
def test_bad_arguments_raise_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_float_masks_raise_type_error():
    with pytest.raises(TypeError, match="`pred` and `target` must be integer class maps"):
        det.dice_score(np.zeros(4), np.zeros(4, int), 3)
