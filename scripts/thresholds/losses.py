"""Thresholds of *Loss functions* (book/foundations/losses.ipynb).

``measure(seed)`` runs the chapter's line fit with ``np.random.default_rng(seed)`` in place of
the notebook's 0: 100 points on y = 2x + 1 with noise 0.5, the 10 with the largest x pulled 30
down, and a line fitted by 3000 steps of gradient descent (``lr=0.02``) on MSE, Huber
(``delta=1``) and MAE (exercise 2). Every argument below is the notebook's; keep the two in step.
Everything is float64 NumPy, so the thread count should not matter (the script checks it).
"""

from __future__ import annotations

import numpy as np

N, N_OUTLIERS, SHIFT, NOISE = 100, 10, 30.0, 0.5
STEPS, LR, DELTA = 3000, 0.02, 1.0
LAST = 200  # exercise 2: how much the loss still moves over the last 200 steps

THRESHOLDS = {
    "mse_minus_huber_slope_error": (0.0, "min"),   # Huber's slope is closer to the true slope 2
    "mse_vs_least_squares": (1e-3, "max"),         # MSE by gradient descent = np.polyfit
    "huber_minus_mae_slope_error": (0.0, "min"),   # exercise 2: MAE's slope is closer still
    "mae_over_huber_loss_range": (1e5, "min"),     # exercise 2: MAE still jitters, Huber has settled
}


def measure(seed: int) -> dict[str, float]:
    from dlnotes.scratch import losses

    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 10, N))
    y = 2 * x + 1 + rng.normal(0, NOISE, N)
    y[-N_OUTLIERS:] -= SHIFT

    def fit_line(grad_fn, steps=STEPS, lr=LR, **kwargs):
        w, c = 0.0, 0.0
        path = [(w, c)]
        for _ in range(steps):
            g = grad_fn(w * x + c, y, **kwargs)
            w, c = w - lr * np.sum(g * x), c - lr * np.sum(g)
            path.append((w, c))
        return np.array(path)

    def loss_range(path, loss_fn, **kwargs):
        return float(np.ptp([loss_fn(w * x + c, y, **kwargs) for w, c in path[-LAST:]]))

    mse_path = fit_line(losses.mse_grad)
    huber_path = fit_line(losses.huber_grad, delta=DELTA)
    mae_path = fit_line(losses.mae_grad)
    slope_error = {name: abs(path[-1, 0] - 2) for name, path in
                   (("mse", mse_path), ("huber", huber_path), ("mae", mae_path))}
    return {
        "mse_minus_huber_slope_error": float(slope_error["mse"] - slope_error["huber"]),
        "mse_vs_least_squares": float(np.max(np.abs(mse_path[-1] - np.polyfit(x, y, 1)))),
        "huber_minus_mae_slope_error": float(slope_error["huber"] - slope_error["mae"]),
        "mae_over_huber_loss_range": loss_range(mae_path, losses.mae) / loss_range(huber_path, losses.huber, delta=DELTA),
    }
