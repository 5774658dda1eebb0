r"""Canvases of several MNIST digits with their boxes and per-class masks (a deterministic generator).

Taught in: *Seeing more than one label: detection and segmentation* (``book/applications/detection.ipynb``).

The digits come from the official MNIST test file (``dlnotes.data.fetch("mnist-test-images")``):
images ``0..7999`` feed the training canvases, ``8000..9999`` the held-out canvases, so no digit
image is ever on both sides. Each canvas is ``size x size`` grayscale in ``[0, 1]`` with 1 to
``max_digits`` digits, each rescaled to a side of ``scale`` pixels and placed at random so that its
box overlaps no earlier box by more than ``max_overlap`` IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlnotes.data import fetch, read_idx
from dlnotes.runtime import _check_seed
from dlnotes.scratch.detection import box_iou

__all__ = ["Canvases", "load_digits", "resize", "make_canvases", "INK"]

#: A digit pixel belongs to the digit's mask (and box) when its intensity is above this.
INK = 0.3
_SPLITS = {"train": (0, 8000), "heldout": (8000, 10000)}


@dataclass
class Canvases:
    """``images (n, S, S)`` float32, ``masks (n, S, S)`` int64 (0 = background, 1 + digit), and per
    canvas ``boxes[i] (k, 4)`` float64 ``(x1, y1, x2, y2)`` and ``labels[i] (k,)`` int64 digits."""

    images: np.ndarray
    masks: np.ndarray
    boxes: list
    labels: list

    def __len__(self) -> int:
        return len(self.images)

    def targets(self) -> list:
        """``[(boxes, labels), ...]`` as :func:`dlnotes.scratch.detection.coco_ap` takes them."""
        return list(zip(self.boxes, self.labels))


def load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images of one side: ``"train"`` (8,000) or ``"heldout"`` (2,000); float32 ``(n, 28, 28)``."""
    if split not in _SPLITS:
        raise ValueError(f"`split` must be 'train' or 'heldout'. Received: split={split!r}")
    lo, hi = _SPLITS[split]
    images = read_idx(fetch("mnist-test-images"))[lo:hi].astype(np.float32) / np.float32(255)
    labels = read_idx(fetch("mnist-test-labels"))[lo:hi].astype(np.int64)
    return images, labels


def resize(image: np.ndarray, side: int) -> np.ndarray:
    r"""Bilinear resize of a square image to ``side x side`` (pixel centres aligned:
    :math:`u = (i + \tfrac12)\,s_\text{in}/s_\text{out} - \tfrac12`)."""
    n = image.shape[0]
    u = np.clip((np.arange(side) + 0.5) * n / side - 0.5, 0, n - 1)
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    f = (u - i0).astype(np.float32)
    rows = image[i0] * (1 - f)[:, None] + image[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def make_canvases(n: int, split: str, *, seed: int, size: int = 64, max_digits: int = 3,
                  scale: tuple[int, int] = (18, 30), max_overlap: float = 0.15) -> Canvases:
    """``n`` canvases drawn by ``np.random.default_rng(seed)`` from the digits of ``split``.

    Raises:
        ValueError: ``n`` or ``max_digits`` not a positive integer, a bad ``split``, or ``scale`` not
            ``(low, high)`` with ``8 <= low <= high <= size``.
    """
    for name, value in (("n", n), ("max_digits", max_digits), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    if not (isinstance(scale, tuple) and len(scale) == 2 and 8 <= scale[0] <= scale[1] <= size):
        raise ValueError(f"`scale` must be (low, high) with 8 <= low <= high <= size={size}. Received: scale={scale!r}")
    seed = _check_seed(seed)
    digits, digit_labels = load_digits(split)
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.int64)
    all_boxes, all_labels = [], []
    for i in range(n):
        boxes, labels = [], []
        for _ in range(int(rng.integers(1, max_digits + 1))):
            k = int(rng.integers(len(digits)))
            patch = resize(digits[k], int(rng.integers(scale[0], scale[1] + 1)))
            ink = patch > INK
            ys, xs = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
            patch, ink = patch[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1], ink[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
            h, w = patch.shape
            for _attempt in range(20):
                y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
                box = np.array([[x, y, x + w, y + h]], dtype=np.float64)
                if not boxes or box_iou(box, np.array(boxes)).max() <= max_overlap:
                    break
            else:
                continue
            region = images[i, y:y + h, x:x + w]
            np.maximum(region, patch, out=region)
            masks[i, y:y + h, x:x + w][ink] = 1 + digit_labels[k]
            boxes.append(box[0])
            labels.append(digit_labels[k])
        all_boxes.append(np.array(boxes, dtype=np.float64).reshape(-1, 4))
        all_labels.append(np.array(labels, dtype=np.int64))
    return Canvases(images, masks, all_boxes, all_labels)
