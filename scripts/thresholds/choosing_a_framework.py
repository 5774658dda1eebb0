"""Thresholds of *Choosing a framework* (book/faq/choosing_a_framework.ipynb).

The chapter checks that every implementation (Keras on torch, TensorFlow and JAX, and plain
PyTorch) reaches a minimum test accuracy after two epochs, and that the spread between them
is small. ``measure`` runs the chapter's own benchmark cell (read by cell id, see
``frameworks.run_cells``) with ``seed=0`` replaced by ``seed``; each backend trains in its
own child process, which inherits the thread limits (``OMP_NUM_THREADS``) of the worker.
Keep ``THRESHOLDS`` equal to ``MIN_ACCURACY`` and ``MAX_SPREAD`` in the chapter's checked cell.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parents[1] / "book" / "faq" / "choosing_a_framework.ipynb"

THRESHOLDS = {"min_accuracy": (0.88, "min"), "spread": (0.05, "max")}

CELLS = ("7adfb14e", "d3c2dc66")  # imports, the four benchmark runs


def measure(seed: int) -> dict[str, float]:
    spec = importlib.util.spec_from_file_location("thresholds_frameworks_helper", HERE / "frameworks.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    namespace = helper.run_cells(NOTEBOOK, CELLS, seed, seed_arguments=1)
    accuracies = {backend: r["test_accuracy"] for backend, r in namespace["results"].items()}
    result = {"min_accuracy": min(accuracies.values()), "spread": max(accuracies.values()) - min(accuracies.values())}
    return result | {f"{backend}_accuracy": value for backend, value in accuracies.items()}
