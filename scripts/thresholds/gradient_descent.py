"""Thresholds of *Gradient descent* (book/math/gradient_descent.ipynb).

``measure(seed)`` runs the chapter's own calls with ``seed`` in place of the notebook's 0: draw
the linear-regression data with ``np.random.default_rng(seed)``, solve it in closed form, and run
batch, mini-batch (32) and stochastic gradient descent for 5 epochs at ``lr=0.05`` with
``minibatch_sgd(..., seed=seed)``. Every argument below is the notebook's; keep the two in step.
Everything is float64 NumPy, so the thread count should not matter (the script checks it).
"""

from __future__ import annotations

import numpy as np

N = 1000
SCALES = [1.0, 2.0, 0.5, 1.5]
W_TRUE = [1.0, -2.0, 3.0, 0.5, 4.0]
NOISE = 0.5
SGD_LR, SGD_EPOCHS = 0.05, 5
BATCH_SIZES = {"batch": N, "mini": 32, "sgd": 1}

THRESHOLDS = {
    "weight_error": (0.2, "max"),          # max |w* - w_true| of the closed-form estimate
    "mini_final_gap": (0.05, "max"),       # J(w) - J* of mini-batch SGD after 5 epochs
    "batch_noise": (0.0, "max"),           # share of updates that raised the loss, batch GD
    "noise_gap_sgd_minus_mini": (0.0, "min"),  # noise grows as the batch shrinks
    "mini_advantage": (0.0, "min"),        # min(batch, sgd final gap) - mini-batch final gap
}


def fraction_of_increases(out: dict) -> float:
    losses = out["losses"]
    after_first_epoch = out["examples"] > N
    return float(np.mean(np.diff(losses)[after_first_epoch[1:]] > 0))


def measure(seed: int) -> dict[str, float]:
    from dlnotes.scratch import gradient_descent as gd

    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.standard_normal((N, 4)) * SCALES, np.ones(N)])
    w_true = np.array(W_TRUE)
    y = X @ w_true + NOISE * rng.standard_normal(N)
    w_lstsq = gd.linear_regression_closed_form(X, y, method="lstsq")
    J_star = gd.mse(w_lstsq, X, y)
    runs = {name: gd.minibatch_sgd(X, y, np.zeros(5), lr=SGD_LR, epochs=SGD_EPOCHS, batch_size=B, seed=seed)
            for name, B in BATCH_SIZES.items()}
    noise = {name: fraction_of_increases(out) for name, out in runs.items()}
    gap = {name: float(out["losses"][-1] - J_star) for name, out in runs.items()}
    return {
        "weight_error": float(np.max(np.abs(w_lstsq - w_true))),
        "mini_final_gap": gap["mini"],
        "batch_noise": noise["batch"],
        "noise_gap_sgd_minus_mini": noise["sgd"] - noise["mini"],
        "mini_advantage": min(gap["batch"], gap["sgd"]) - gap["mini"],
    }
