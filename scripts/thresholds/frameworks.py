"""Thresholds of *Frameworks: TensorFlow, PyTorch, Keras* (book/projects/frameworks.ipynb).

The chapter checks the test accuracy of the MLP trained with ``frameworks.train_torch`` and
``frameworks.train_keras``. ``measure`` runs the chapter's own code cells up to that training
(read from the notebook by cell id, so the code cannot drift from the chapter) after
``dlnotes.seed_everything(seed)``, with every ``seed=0`` argument replaced by ``seed``.
Keep ``THRESHOLDS`` equal to ``THRESHOLD`` in the chapter's checked cell.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "book" / "projects" / "frameworks.ipynb"

THRESHOLDS = {"torch_test_accuracy": (0.87, "min"), "keras_test_accuracy": (0.87, "min")}

# imports, the Keras probe model, data + models, weight copy, the training cell: in order,
# because each model built draws from the seeded generators.
CELLS = ("0176063f", "17bfa750", "c9d75535", "18ce9faa", "76b6bed1")


def run_cells(notebook: Path, cell_ids, seed: int, seed_arguments: int) -> dict:
    """Execute the code cells ``cell_ids`` of ``notebook`` in one namespace, as the chapter would
    after ``dlnotes.seed_everything(seed)``, with each ``seed=0`` replaced by ``seed=<seed>``.

    Raises:
        ValueError: a cell id is missing, or ``seed=0`` does not occur ``seed_arguments`` times
            (the chapter changed: update the script).
    """
    import dlnotes

    cells = {c.get("id"): "".join(c["source"]) for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"]}
    missing = [cid for cid in cell_ids if cid not in cells]
    if missing:
        raise ValueError(f"{notebook.name} has no cells {missing}: update the thresholds script")
    sources = [cells[cid] for cid in cell_ids]
    found = sum(source.count("seed=0") for source in sources)
    if found != seed_arguments:
        raise ValueError(f"expected {seed_arguments} `seed=0` in the cells of {notebook.name}, found {found}")
    dlnotes.seed_everything(seed)
    namespace = {"dlnotes": dlnotes, "__name__": "chapter"}
    with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints; the worker prints JSON
        for source in sources:
            exec(compile(source.replace("seed=0", f"seed={seed}"), notebook.name, "exec"), namespace)
    return namespace


def measure(seed: int) -> dict[str, float]:
    namespace = run_cells(NOTEBOOK, CELLS, seed, seed_arguments=1)
    test = namespace["test"]
    return {"torch_test_accuracy": test["PyTorch"]["accuracy"], "keras_test_accuracy": test["Keras"]["accuracy"]}
