r"""Detection and segmentation metrics from scratch: box IoU, non-maximum suppression, COCO-style AP,
Dice and mean IoU.

Taught in: *Seeing more than one label: detection and segmentation*
(``book/applications/detection.ipynb``). Checked against ``pycocotools`` (IoU and AP) and
``torchmetrics`` (Dice and mean IoU) in ``tests/scratch/test_detection.py``.

Boxes are ``(x1, y1, x2, y2)`` in pixels with ``x1 <= x2`` and ``y1 <= y2``; a box's area is
:math:`(x_2 - x_1)(y_2 - y_1)`. Masks are integer class maps ``(n, H, W)`` (``0`` = background).
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "nms", "IOU_THRESHOLDS", "RECALL_THRESHOLDS", "average_precision", "coco_ap",
           "dice_score", "mean_iou"]

#: COCO's ten IoU thresholds :math:`0.5, 0.55, \dots, 0.95` (as ``pycocotools`` builds them).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
#: COCO's 101 recall levels :math:`0, 0.01, \dots, 1` of the interpolated precision.
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)


def _boxes(name: str, value) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64) if not isinstance(value, np.ndarray) else value.astype(np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"`{name}` must have shape (n, 4) of (x1, y1, x2, y2). Received: {name}.shape={boxes.shape}")
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise ValueError(f"`{name}` must hold finite boxes with x1 <= x2 and y1 <= y2. Received: {name}={boxes[:3].tolist()}...")
    return boxes


def _threshold(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 < value <= 1:
        raise ValueError(f"`{name}` must be in (0, 1]. Received: {name}={value!r}")
    return float(value)


def box_iou(a, b) -> np.ndarray:
    r"""Pairwise intersection over union :math:`|A \cap B| / |A \cup B|` of two sets of boxes.

    Args:
        a: ``(n, 4)`` boxes; b: ``(m, 4)`` boxes.

    Returns:
        ``(n, m)`` float64 in ``[0, 1]``; ``0`` where the union is empty (two zero-area boxes).
    """
    a, b = _boxes("a", a), _boxes("b", b)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes, scores, iou_threshold: float = 0.5) -> np.ndarray:
    r"""Greedy non-maximum suppression: keep the best-scoring box, drop every box whose IoU with it
    exceeds ``iou_threshold``, repeat on the rest.

    Args:
        boxes: ``(n, 4)``; scores: ``(n,)`` finite; iou_threshold: in ``(0, 1]``.

    Returns:
        int64 indices of the kept boxes, highest score first (ties: lower index first).
    """
    boxes = _boxes("boxes", boxes)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(boxes),) or not np.all(np.isfinite(scores)):
        raise ValueError(f"`scores` must be finite with shape ({len(boxes)},). Received: scores.shape={scores.shape}")
    iou_threshold = _threshold("iou_threshold", iou_threshold)
    order = np.argsort(-scores, kind="mergesort")
    iou = box_iou(boxes, boxes)
    keep, alive = [], np.ones(len(boxes), dtype=bool)
    for i in order:
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= iou_threshold
    return np.asarray(keep, dtype=np.int64)


def _match(det_boxes, gt_boxes, threshold: float) -> np.ndarray:
    """True positives of one image and class: detections (sorted by score) greedily take the unmatched
    ground truth with the highest IoU, if it is at least ``threshold`` (COCO's rule, ties to the later box)."""
    tp = np.zeros(len(det_boxes), dtype=bool)
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = box_iou(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for d in range(len(det_boxes)):
        best, m = min(threshold, 1 - 1e-10), -1
        for g in range(len(gt_boxes)):
            if not taken[g] and iou[d, g] >= best:
                best, m = iou[d, g], g
        if m >= 0:
            taken[m], tp[d] = True, True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    r"""101-point interpolated AP of one class: sort detections by score, precision
    :math:`p_k = TP_k / k`, recall :math:`r_k = TP_k / n_{gt}`, make precision non-increasing from the
    right, and average it at the recall levels :math:`0, 0.01, \dots, 1` (zero past the last recall)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    tp = np.asarray(tp, dtype=bool)[order]
    tps, fps = np.cumsum(tp, dtype=np.float64), np.cumsum(~tp, dtype=np.float64)
    recall = tps / n_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    q = np.zeros(len(RECALL_THRESHOLDS))
    q[idx < len(precision)] = precision[idx[idx < len(precision)]]
    return float(np.mean(q))


def coco_ap(predictions, targets, iou_thresholds=None, max_dets: int = 100) -> float:
    r"""COCO-style mean average precision over classes and IoU thresholds.

    :math:`\mathrm{AP} = \frac{1}{|T|\,|C|}\sum_{t\in T}\sum_{c\in C} \mathrm{AP}_{c,t}` over the
    classes :math:`C` that have ground truth, with :func:`average_precision` per class and threshold.
    ``iou_thresholds=[0.5]`` gives AP@0.5; the default :data:`IOU_THRESHOLDS` gives AP@[.5:.95].
    Per image and class only the ``max_dets`` best detections count, as in ``pycocotools``.

    Args:
        predictions: one ``(boxes (k, 4), scores (k,), labels (k,))`` per image.
        targets: one ``(boxes (g, 4), labels (g,))`` per image, same length.

    Returns:
        The AP in ``[0, 1]``; ``nan`` if no image has a ground-truth box.
    """
    if not isinstance(predictions, (list, tuple)) or not isinstance(targets, (list, tuple)) or len(predictions) != len(targets):
        raise ValueError("`predictions` and `targets` must be lists with one entry per image. "
                         f"Received: predictions of type {type(predictions).__name__}, targets of type {type(targets).__name__}")
    thresholds = IOU_THRESHOLDS if iou_thresholds is None else np.atleast_1d(np.asarray(iou_thresholds, dtype=np.float64))
    for t in thresholds:
        _threshold("iou_thresholds", float(t))
    if isinstance(max_dets, bool) or not isinstance(max_dets, (int, np.integer)) or max_dets < 1:
        raise ValueError(f"`max_dets` must be a positive integer. Received: max_dets={max_dets!r}")
    preds = [(_boxes("predictions boxes", b), np.asarray(s, dtype=np.float64), np.asarray(l)) for b, s, l in predictions]
    gts = [(_boxes("targets boxes", b), np.asarray(l)) for b, l in targets]
    classes = sorted({int(c) for _, labels in gts for c in labels})
    if not classes:
        return float("nan")
    aps = np.zeros((len(thresholds), len(classes)))
    for j, c in enumerate(classes):
        per_image = []
        for (db, ds, dl), (gb, gl) in zip(preds, gts):
            sel = np.flatnonzero(dl == c)
            sel = sel[np.argsort(-ds[sel], kind="mergesort")][:max_dets]
            per_image.append((db[sel], ds[sel], gb[gl == c]))
        n_gt = sum(len(g) for _, _, g in per_image)
        scores = np.concatenate([s for _, s, _ in per_image])
        for i, t in enumerate(thresholds):
            tp = np.concatenate([_match(b, g, t) for b, _, g in per_image])
            aps[i, j] = average_precision(tp, scores, n_gt)
    return float(aps.mean())


def _masks(pred, target, num_classes) -> tuple[np.ndarray, np.ndarray, int]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape or pred.ndim < 1:
        raise ValueError(f"`pred` and `target` must have the same shape. Received: pred.shape={pred.shape}, target.shape={target.shape}")
    if not np.issubdtype(pred.dtype, np.integer) or not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"`pred` and `target` must be integer class maps. Received: dtypes {pred.dtype}, {target.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
    for name, m in (("pred", pred), ("target", target)):
        if m.size and (m.min() < 0 or m.max() >= num_classes):
            raise ValueError(f"`{name}` must hold classes in [0, {num_classes}). Received: {name}.min()={m.min()}, {name}.max()={m.max()}")
    return pred.ravel(), target.ravel(), int(num_classes)


def _counts(pred, target, num_classes, include_background):
    first = 0 if include_background else 1
    cls = np.arange(first, num_classes)
    inter = np.array([np.sum((pred == c) & (target == c)) for c in cls], dtype=np.float64)
    p = np.array([np.sum(pred == c) for c in cls], dtype=np.float64)
    t = np.array([np.sum(target == c) for c in cls], dtype=np.float64)
    return inter, p, t


def dice_score(pred, target, num_classes: int, include_background: bool = False) -> float:
    r"""Macro Dice over the whole set: :math:`\frac{1}{|C|}\sum_c \frac{2|P_c \cap T_c|}{|P_c| + |T_c|}`,
    each class's pixels pooled over all images, classes absent from both ``pred`` and ``target`` skipped.

    Args:
        pred, target: integer class maps of the same shape, e.g. ``(n, H, W)``, values in ``[0, num_classes)``.
    """
    pred, target, num_classes = _masks(pred, target, num_classes)
    inter, p, t = _counts(pred, target, num_classes, include_background)
    valid = (p + t) > 0
    return float(np.mean(2 * inter[valid] / (p + t)[valid])) if valid.any() else float("nan")


def mean_iou(pred, target, num_classes: int, include_background: bool = False) -> float:
    r"""Mean IoU over the whole set: :math:`\frac{1}{|C|}\sum_c \frac{|P_c \cap T_c|}{|P_c \cup T_c|}`,
    pixels pooled over all images, classes with an empty union skipped."""
    pred, target, num_classes = _masks(pred, target, num_classes)
    inter, p, t = _counts(pred, target, num_classes, include_background)
    union = p + t - inter
    valid = union > 0
    return float(np.mean(inter[valid] / union[valid])) if valid.any() else float("nan")
