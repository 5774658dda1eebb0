"""Thresholds of *Neural networks* (``book/foundations/neural_networks.ipynb``).

The chapter trains two kinds of network with the ``dlnotes.scratch`` engine and checks:

* the 2-8-2 tanh MLP on the noisy XOR clouds reaches a training accuracy ``>= 0.97``;
* the 1-h-1 curve fits of sin(2x) + 0.3x get better with width, MSE(2) > MSE(8) > MSE(32),
  that is both ratios ``> 1``, and the 32-unit fit reaches an MSE ``<= 0.01``.

``measure(seed)`` repeats the notebook's calls with ``seed`` in place of the notebook's 0 (the
data generator, the initial weights and the shuffling), so the notebook is the ``seed=0`` run.
"""

from __future__ import annotations

import numpy as np

from dlnotes.scratch import nn, optim

THRESHOLDS = {
    "xor_mlp_accuracy": (0.97, "min"),
    "mse_2_over_mse_8": (1.0, "min"),
    "mse_8_over_mse_32": (1.0, "min"),
    "mse_32": (0.01, "max"),
}


def xor_data(rng):
    """The notebook's separable set is drawn first from the same generator, then the XOR clouds."""
    rng.uniform(-3, 3, (400, 2))  # X_sep: drawn first in the notebook, so the XOR clouds come second
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    xor_label = np.array([0, 1, 1, 0])
    which = rng.integers(0, 4, 200)
    X_xor = corners[which] + 0.15 * rng.standard_normal((200, 2))
    return X_xor, xor_label[which]


def measure(seed: int) -> dict:
    X_xor, y_xor = xor_data(np.random.default_rng(seed))
    mlp = nn.MLP([2, 8, 2], activation="tanh", seed=seed)
    sgd = optim.SGD([p.data for p in mlp.parameters()], lr=0.1, momentum=0.9)
    nn.fit(mlp, X_xor, y_xor, sgd, epochs=100, batch_size=20, seed=seed)
    result = {"xor_mlp_accuracy": float(np.mean(mlp(X_xor).data.argmax(axis=1) == y_xor))}

    x_fit = np.linspace(-3, 3, 200)[:, None]
    y_fit = np.sin(2 * x_fit) + 0.3 * x_fit
    final_mse, turns = {}, {}
    for hidden in (2, 8, 32):
        model = nn.MLP([1, hidden, 1], activation="tanh", seed=seed)
        adam = optim.Adam([p.data for p in model.parameters()], lr=0.02)
        nn.fit(model, x_fit, y_fit, adam, loss="mse", epochs=600, batch_size=50, seed=seed)
        prediction = model(x_fit).data
        final_mse[hidden] = float(np.mean((prediction - y_fit) ** 2))
        slope = np.sign(np.diff(prediction[:, 0]))
        turns[hidden] = int(np.sum(slope[1:] != slope[:-1]))
    result.update(mse_2_over_mse_8=final_mse[2] / final_mse[8], mse_8_over_mse_32=final_mse[8] / final_mse[32],
                  mse_2=final_mse[2], mse_8=final_mse[8], mse_32=final_mse[32],
                  turns_2=float(turns[2]), turns_8=float(turns[8]), turns_32=float(turns[32]))
    return result
