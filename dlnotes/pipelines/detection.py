r"""A centre-point detector, a small U-Net and a classical baseline for canvases of MNIST digits.

Taught in: *Seeing more than one label: detection and segmentation* (``book/applications/detection.ipynb``).
Data: :mod:`dlnotes.pipelines.detection_data`; metrics: :mod:`dlnotes.scratch.detection`.

- :class:`CenterNet` predicts, on a grid of stride :data:`STRIDE`, a heatmap per class (a peak at
  each object's centre), the box size and the centre's sub-cell offset, after Zhou et al.
  (*Objects as points*, 2019). :func:`decode` turns the maps into scored boxes.
- :func:`masks_from_boxes` turns boxes into per-class masks: the ink pixels (found by a threshold,
  exact for digits on black) take the class of the best box around them.
- :func:`baseline_predict`: threshold, connected components, and a nearest-class-mean classifier
  on each component.
"""

from __future__ import annotations

import numpy as np

from dlnotes.pipelines.common import check_training_args
from dlnotes.pipelines.detection_data import INK, Canvases, resize

__all__ = ["STRIDE", "N_CLASSES", "center_targets", "build_detector", "focal_loss",
           "train_detector", "decode", "predict_boxes", "masks_from_boxes",
           "fit_class_means", "baseline_predict", "baseline_masks"]

#: Output stride of the detector: a 64x64 canvas gives 16x16 maps.
STRIDE = 4
#: Digit classes.
N_CLASSES = 10


def center_targets(canvases: Canvases, sigma: float = 1.0):
    r"""CenterNet targets on the stride-4 grid of ``canvases``.

    For an object of class :math:`c` with centre :math:`(u, v) = ((x_1+x_2)/2, (y_1+y_2)/2)/s`:
    heatmap :math:`Y_{c,yx} = \max \exp(-((x - \lfloor u\rfloor)^2 + (y - \lfloor v\rfloor)^2)/2\sigma^2)`,
    and at the cell :math:`(\lfloor v\rfloor, \lfloor u\rfloor)` the size :math:`((x_2-x_1)/s, (y_2-y_1)/s)`
    and offset :math:`(u - \lfloor u\rfloor, v - \lfloor v\rfloor)`.

    Returns:
        ``heat (n, 10, G, G)`` float32, ``reg (n, 4, G, G)`` float32 (w, h, dx, dy), ``where (n, G, G)`` bool.
    """
    n, size = len(canvases), canvases.images.shape[-1]
    g = size // STRIDE
    heat = np.zeros((n, N_CLASSES, g, g), dtype=np.float32)
    reg = np.zeros((n, 4, g, g), dtype=np.float32)
    where = np.zeros((n, g, g), dtype=bool)
    yy, xx = np.mgrid[0:g, 0:g]
    for i, (boxes, labels) in enumerate(canvases.targets()):
        for (x1, y1, x2, y2), c in zip(boxes, labels):
            u, v = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
            cx, cy = min(int(u), g - 1), min(int(v), g - 1)
            gauss = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2)).astype(np.float32)
            np.maximum(heat[i, c], gauss, out=heat[i, c])
            reg[i, :, cy, cx] = ((x2 - x1) / STRIDE, (y2 - y1) / STRIDE, u - cx, v - cy)
            where[i, cy, cx] = True
    return heat, reg, where


def _block(nn, c_in, c_out, dilation=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(c_out), nn.ReLU())


def build_detector(width: int = 32):
    """Two stride-2 blocks (64 -> 16), three blocks at stride 4 (dilations 1, 2, 4), heads
    ``heat (10)`` and ``reg (4)``; returns a ``torch.nn.Module`` mapping ``(b, 1, S, S)`` to ``(b, 14, S/4, S/4)``."""
    import torch
    from torch import nn

    class CenterNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, width // 2, 3, stride=2, padding=1), nn.BatchNorm2d(width // 2), nn.ReLU(),
                nn.Conv2d(width // 2, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                _block(nn, width, width), _block(nn, width, width, 2), _block(nn, width, width, 4))
            self.head = nn.Conv2d(width, N_CLASSES + 4, 1)
            with torch.no_grad():
                self.head.bias[:N_CLASSES].fill_(-2.19)      # sigmoid = 0.1, the prior of CenterNet

        def forward(self, x):
            return self.head(self.body(x))

    return CenterNet()


def focal_loss(logits, heat):
    r"""CenterNet's penalty-reduced focal loss, summed and divided by the number of centres:
    :math:`-\frac1N\sum (1-p)^2\log p` at :math:`Y=1`, :math:`-\frac1N\sum (1-Y)^4 p^2 \log(1-p)` elsewhere."""
    import torch
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def _batches(n, batch_size, seed, epoch):
    import torch
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _check_canvases(canvases):
    if not isinstance(canvases, Canvases) or len(canvases) == 0:
        raise TypeError(f"`canvases` must be a non-empty Canvases. Received: canvases of type {type(canvases).__name__}")


def train_detector(model, canvases: Canvases, *, epochs: int = 8, batch_size: int = 32,
                   learning_rate: float = 3e-3, seed: int = 0) -> dict[str, list[float]]:
    """Adam on ``focal_loss + L1(size) * 0.1 + L1(offset)`` (L1 at the centre cells); cosine decay of
    the learning rate. Returns ``{"loss": [...]}``, one mean loss per epoch."""
    import torch
    _check_canvases(canvases)
    epochs, batch_size, learning_rate, seed = check_training_args(epochs=epochs, batch_size=batch_size,
                                                                  learning_rate=learning_rate, seed=seed)
    heat, reg, where = (torch.from_numpy(a) for a in center_targets(canvases))
    x = torch.from_numpy(canvases.images)[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * len(_batches(len(x), batch_size, seed, 0))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=steps, pct_start=0.15)
    history = {"loss": []}
    model.train()
    for epoch in range(epochs):
        total = []
        for idx in _batches(len(x), batch_size, seed, epoch):
            out = model(x[idx])
            m = where[idx][:, None].float()
            l1 = (out[:, N_CLASSES:] - reg[idx]).abs() * m
            loss = focal_loss(out[:, :N_CLASSES], heat[idx]) + \
                (0.1 * l1[:, :2].sum() + l1[:, 2:].sum()) / m.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total.append(loss.item())
        history["loss"].append(float(np.mean(total)))
    model.eval()
    return history


def decode(out, k: int = 20, min_score: float = 0.05) -> list:
    """Peaks of the heatmaps (a 3x3 max-pool keeps local maxima) to boxes: the ``k`` best per
    image with score at least ``min_score``; returns ``[(boxes (m, 4), scores (m,), labels (m,)), ...]``."""
    import torch
    heat = torch.sigmoid(out[:, :N_CLASSES])
    peaks = heat * (torch.nn.functional.max_pool2d(heat, 3, 1, 1) == heat)
    b, _, g, _ = heat.shape
    results = []
    for i in range(b):
        scores, flat = peaks[i].reshape(-1).topk(k)
        keep = scores >= min_score
        scores, flat = scores[keep], flat[keep]
        labels, cell = flat // (g * g), flat % (g * g)
        cy, cx = cell // g, cell % g
        w, h, dx, dy = (out[i, N_CLASSES + j].reshape(-1)[cell] for j in range(4))
        u, v = (cx + dx) * STRIDE, (cy + dy) * STRIDE
        w, h = w.clamp(min=0) * STRIDE, h.clamp(min=0) * STRIDE
        boxes = torch.stack([u - w / 2, v - h / 2, u + w / 2, v + h / 2], 1)
        results.append((boxes.numpy().astype(np.float64), scores.numpy().astype(np.float64), labels.numpy().astype(np.int64)))
    return results


def predict_boxes(model, canvases: Canvases, batch_size: int = 256) -> list:
    """:func:`decode` of the detector's maps on every canvas."""
    import torch
    _check_canvases(canvases)
    x = torch.from_numpy(canvases.images)[:, None]
    results = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            results += decode(model(x[i:i + batch_size]))
    return results


def masks_from_boxes(canvases: Canvases, predictions: list, min_score: float = 0.3) -> np.ndarray:
    """Per-pixel classes from boxes: an ink pixel (intensity above :data:`INK`) takes ``1 + label`` of the
    highest-scoring box (score at least ``min_score``) that contains it, else background; int64 ``(n, S, S)``."""
    _check_canvases(canvases)
    if len(predictions) != len(canvases):
        raise ValueError(f"`predictions` must have one entry per canvas. Received: {len(predictions)} for {len(canvases)} canvases")
    out = np.zeros(canvases.masks.shape, dtype=np.int64)
    for i, (boxes, scores, labels) in enumerate(predictions):
        ink = canvases.images[i] > INK
        for j in np.argsort(scores, kind="mergesort"):       # lowest first: the best box is painted last
            if scores[j] < min_score:
                continue
            x1, y1, x2, y2 = np.round(boxes[j]).astype(int).clip(0, ink.shape[0])
            region = out[i, y1:y2, x1:x2]
            region[ink[y1:y2, x1:x2]] = 1 + labels[j]
    return out


def _normalise(crop: np.ndarray) -> np.ndarray:
    """A component's crop as MNIST frames digits: longest side 20, centred on a 28x28 canvas, flattened."""
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = crop
    out = np.zeros((28, 28), dtype=np.float32)
    out[4:24, 4:24] = resize(square, 20)
    return out.ravel()


def fit_class_means(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean of each digit class's normalised training images, ``(10, 784)`` (the baseline's classifier)."""
    crops = []
    for im in images:
        ys, xs = np.flatnonzero((im > INK).any(1)), np.flatnonzero((im > INK).any(0))
        crops.append(_normalise(im[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]))
    crops = np.array(crops)
    return np.array([crops[labels == c].mean(0) for c in range(N_CLASSES)])


def _components(image):
    from scipy import ndimage
    comp, n = ndimage.label(image > INK, structure=np.ones((3, 3)))
    return comp, ndimage.find_objects(comp)


def baseline_predict(canvases: Canvases, means: np.ndarray, min_pixels: int = 10) -> list:
    """Threshold at :data:`INK`, 8-connected components (at least ``min_pixels``), one box per component,
    class = nearest class mean, score = the softmax of minus the squared distances at that class."""
    _check_canvases(canvases)
    results = []
    for image in canvases.images:
        comp, slices = _components(image)
        boxes, scores, labels = [], [], []
        for j, sl in enumerate(slices):
            if (comp[sl] == j + 1).sum() < min_pixels:
                continue
            d = ((means - _normalise(image[sl] * (comp[sl] == j + 1))) ** 2).sum(1)
            p = np.exp(-(d - d.min()) / 10.0)
            p /= p.sum()
            boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
            scores.append(p.max())
            labels.append(int(p.argmax()))
        results.append((np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(scores), np.array(labels, dtype=np.int64)))
    return results


def baseline_masks(canvases: Canvases, means: np.ndarray) -> np.ndarray:
    """Per-pixel classes of the baseline: every pixel of a component takes the component's class."""
    out = np.zeros(canvases.masks.shape, dtype=np.int64)
    for i, image in enumerate(canvases.images):
        comp, slices = _components(image)
        for j, sl in enumerate(slices):
            d = ((means - _normalise(image[sl] * (comp[sl] == j + 1))) ** 2).sum(1)
            out[i][comp == j + 1] = 1 + int(d.argmin())
    return out
