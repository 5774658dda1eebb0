"""Thresholds of the *Convolutional networks* chapter (book/architectures/convolution.ipynb).

The chapter checks the test accuracy of the LeNet-style network that ``train_lenet(seed)``
trains on the offline MNIST split. ``measure`` runs the chapter's own cells (read from the
notebook by cell id, so the code cannot drift from the chapter) and then ``train_lenet`` with
the given seed. Keep ``THRESHOLDS`` equal to ``THRESHOLD`` in the chapter's checked cell.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "book" / "architectures" / "convolution.ipynb"

THRESHOLDS = {"test_accuracy": (0.94, "min")}

# The cells that define the data, the model, the accuracy and the training function, in order.
CELLS = ("imports", "load_mnist", "lenet", "tensors", "train_lenet")
MARKERS = {  # a line that identifies each cell, so the script fails loudly if the chapter changes
    "imports": "from dlnotes.scratch import conv, pooling",
    "load_mnist": "data.load_mnist()",
    "lenet": "def lenet():",
    "tensors": "def accuracy(net, X, Y):",
    "train_lenet": "def train_lenet(seed",
}


def chapter_cells() -> dict[str, str]:
    """The source of each cell in ``CELLS``, found by its marker line."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    found = {}
    for name in CELLS:
        matches = [s for s in sources if MARKERS[name] in s]
        if len(matches) != 1:
            raise RuntimeError(f"expected one code cell with {MARKERS[name]!r} in {NOTEBOOK.name}, found {len(matches)}")
        found[name] = matches[0]
    return found


def measure(seed: int) -> dict[str, float]:
    import dlnotes

    namespace = {"dlnotes": dlnotes, "__name__": "chapter"}
    with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints; the worker prints JSON
        for source in chapter_cells().values():
            exec(compile(source, f"{NOTEBOOK.name}", "exec"), namespace)
        model = namespace["train_lenet"](seed)
        accuracy = namespace["accuracy"](model, namespace["X_test"], namespace["Y_test"])
    return {"test_accuracy": float(accuracy)}
