"""Thresholds of *Image classification with Keras* (book/projects/image_classifier.ipynb).

The chapter checks the test accuracy of the seed CNN trained with ``image_classifier.train_keras``,
that the centred drawing of a 7 is read as a 7, and the test accuracy of the outline's
TensorFlow listing (``framework_bench.run_listing``). ``measure`` runs the chapter's own code
cells (read by cell id, see ``frameworks.run_cells``) after ``dlnotes.seed_everything(seed)``,
with every ``seed=0`` replaced by ``seed``. Keep ``THRESHOLDS`` equal to ``THRESHOLD`` in the
chapter's checked cells.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parents[1] / "book" / "projects" / "image_classifier.ipynb"

THRESHOLDS = {"test_accuracy": (0.92, "min"), "listing_accuracy": (0.92, "min"), "centred_read_as_7": (0.5, "min")}

# imports, data, prepare, build, split, train, evaluate, draw, centre + predict, the TF listing.
CELLS = ("9a642ce9", "9250ece5", "cb7d67b6", "067805c8", "e5c1d9a0", "bcf18e20", "5b003a67",
         "ff7bdd8a", "bf9733a9", "688224ba")


def _run_cells():
    spec = importlib.util.spec_from_file_location("thresholds_frameworks_helper", HERE / "frameworks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_cells


def measure(seed: int) -> dict[str, float]:
    namespace = _run_cells()(NOTEBOOK, CELLS, seed, seed_arguments=2)
    return {"test_accuracy": float(namespace["test_accuracy"]),
            "listing_accuracy": float(namespace["seed_run"]["test_accuracy"]),
            "centred_read_as_7": float(namespace["new_probs"][1].argmax() == 7)}
