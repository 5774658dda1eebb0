"""Optimization-algorithms chapter: what the learning-rate schedules gain (book/math/optimizers.ipynb).

``schedule_experiment`` is the notebook's function, unchanged: mini-batch SGD on a noisy
linear regression drawn with ``seed`` (shuffled with ``seed + 1``), 30 epochs from lr=0.05,
with a constant rate, ``StepLR(10, 0.3)`` and ``CosineAnnealingLR(30)``. The gain of a
schedule is the constant rate's final excess loss divided by the schedule's; the notebook
checks that both gains reach the threshold (it runs seed 0).
"""

from __future__ import annotations

import numpy as np

from dlnotes.scratch import gradient_descent as gd
from dlnotes.scratch import optim

THRESHOLDS = {"gain_steplr": (100.0, "min"), "gain_cosine": (100.0, "min")}


def schedule_experiment(seed):
    "Excess loss J(w) - J* after each of 30 epochs, for a constant lr and for each schedule."
    rng = np.random.default_rng(seed)
    n = 500
    X = np.column_stack([rng.standard_normal((n, 3)), np.ones(n)])
    y = X @ np.array([2.0, -1.0, 0.5, 1.0]) + 0.5 * rng.standard_normal(n)
    J_opt = gd.mse(gd.linear_regression_closed_form(X, y), X, y)
    schedule_runs = {
        "constant lr": None,
        "StepLR(10, 0.3)": lambda o: optim.StepLR(o, step_size=10, gamma=0.3),
        "CosineAnnealingLR(30)": lambda o: optim.CosineAnnealingLR(o, T_max=30),
    }
    excess = {}
    for name, make_scheduler in schedule_runs.items():
        w = np.zeros(4)
        opt = optim.SGD([w], lr=0.05)
        scheduler = make_scheduler(opt) if make_scheduler else None
        shuffle = np.random.default_rng(seed + 1)
        history = []
        for epoch in range(30):
            order = shuffle.permutation(n)
            for start in range(0, n, 10):
                batch = order[start:start + 10]
                opt.step([gd.mse_grad(w, X[batch], y[batch])])
            history.append(gd.mse(w, X, y) - J_opt)
            if scheduler:
                scheduler.step()
        excess[name] = np.array(history)
    return excess


def measure(seed: int) -> dict:
    excess = schedule_experiment(seed)
    constant = excess["constant lr"][-1]
    return {"gain_steplr": float(constant / excess["StepLR(10, 0.3)"][-1]),
            "gain_cosine": float(constant / excess["CosineAnnealingLR(30)"][-1])}
