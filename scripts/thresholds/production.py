"""Thresholds of *From notebook to production* (book/faq/production.ipynb).

The chapter checks the classifier's test accuracy, that every float32 copy (ONNX, SavedModel,
LiteRT; torch.export and ONNX for the LSTM) reproduces the original within its tolerance and
predicts the same class everywhere, and that the static int8 ONNX model is at least 3 times
smaller and loses at most 0.5 points of accuracy. ``measure`` runs the chapter's own code cells
(by cell id, see ``frameworks.run_cells``) after ``dlnotes.seed_everything(seed)``, with every
``seed=0`` replaced by ``seed``; the timing cells are left out. Keep ``THRESHOLDS`` equal to
the constants of the chapter's checked cells.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from frameworks import run_cells  # noqa: E402  (the one helper that runs a chapter's cells by id)
NOTEBOOK = HERE.parents[1] / "book" / "faq" / "production.ipynb"

THRESHOLDS = {
    "test_accuracy": (0.91, "min"),
    "classifier_max_abs_diff": (1e-5, "max"),
    "classifier_min_agreement": (1.0, "min"),
    "lstm_max_abs_diff": (1e-4, "max"),
    "lstm_min_agreement": (1.0, "min"),
    "int8_static_shrink": (3.0, "min"),
    "int8_static_loss_points": (0.5, "max"),
}

CELLS = ("imports", "train", "onnx", "tf", "parity", "lstm-train", "lstm-export", "lstm-parity", "variants")


def measure(seed: int) -> dict[str, float]:
    ns = run_cells(NOTEBOOK, CELLS, seed, seed_arguments=2)
    production, files = ns["production"], ns["onnx_files"]
    int8 = production.OnnxModel(files["ONNX int8 static"])(ns["x_test"])
    return {
        "test_accuracy": ns["test_accuracy"],
        "classifier_max_abs_diff": max(p["max_abs_diff"] for p in ns["parities"].values()),
        "classifier_min_agreement": min(p["argmax_agreement"] for p in ns["parities"].values()),
        "lstm_max_abs_diff": max(max(p["max_abs_diff"], p["state_diff"]) for p in ns["lstm_parities"].values()),
        "lstm_min_agreement": min(p["argmax_agreement"] for p in ns["lstm_parities"].values()),
        "int8_static_shrink": production.file_size(files["ONNX float32"]) / production.file_size(files["ONNX int8 static"]),
        "int8_static_loss_points": 100 * (ns["test_accuracy"] - float((int8.argmax(axis=1) == ns["y_test"]).mean())),
    }
