"""Backpropagation chapter: the engine-trained MLP's MNIST test accuracy (book/math/backprop.ipynb).

The same calls as the notebook's training cells, with ``seed`` for the initialisation and the
shuffling (the notebook uses seed 0); the data split is the notebook's (``load_mnist()``).
"""

from __future__ import annotations

import numpy as np

from dlnotes import data
from dlnotes.scratch import nn, optim

THRESHOLDS = {"test_accuracy": (0.90, "min")}


def measure(seed: int) -> dict:
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x_train = x_train.reshape(len(x_train), -1).astype(np.float64)
    x_test = x_test.reshape(len(x_test), -1).astype(np.float64)
    model = nn.MLP([784, 128, 10], activation="relu", seed=seed)
    sgd = optim.SGD([p.data for p in model.parameters()], lr=0.1, momentum=0.9)
    nn.fit(model, x_train, y_train, sgd, epochs=8, batch_size=100, seed=seed)
    return {"test_accuracy": float(np.mean(model(x_test).data.argmax(axis=1) == y_test))}
