"""Thresholds of the *Recurrent networks, LSTM and GRU* chapter (book/architectures/rnn.ipynb).

The chapter trains an RNN, an LSTM and a GRU on the adding problem (T = 50) and checks the
ordering: the gated cells' final test MSE far below the constant baseline, the vanilla RNN's
near it, and the RNN far worse than either gated cell. ``measure`` runs the chapter's own
cells (read from the notebook, so the code cannot drift from the chapter) and then
``train(cell, seed)`` for each cell. The chapter pins training to one thread
(``torch.set_num_threads(1)``), so the thread count of the worker does not change the result.
Keep ``THRESHOLDS`` equal to ``THRESHOLDS`` in the chapter's checked cell.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "book" / "architectures" / "rnn.ipynb"

THRESHOLDS = {
    "lstm_mse_over_baseline": (0.1, "max"),
    "gru_mse_over_baseline": (0.1, "max"),
    "rnn_mse_over_baseline": (0.5, "min"),
    "rnn_mse_over_worst_gated": (10.0, "min"),
}

# A line that identifies each needed cell, in execution order; the script fails if one is missing.
MARKERS = ("from dlnotes.scratch import rnn", "def adding_batch(", "def train(cell, seed=0):")


def chapter_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    found = []
    for marker in MARKERS:
        matches = [s for s in sources if marker in s]
        if len(matches) != 1:
            raise RuntimeError(f"expected one code cell with {marker!r} in {NOTEBOOK.name}, found {len(matches)}")
        found.append(matches[0])
    return found


def measure(seed: int) -> dict[str, float]:
    import dlnotes

    namespace = {"dlnotes": dlnotes, "__name__": "chapter"}
    with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints; the worker prints JSON
        for source in chapter_cells():
            exec(compile(source, NOTEBOOK.name, "exec"), namespace)
        final = {cell: namespace["train"](cell, seed)[-1] for cell in ("RNN", "LSTM", "GRU")}
    baseline = namespace["baseline"]
    return {
        "lstm_mse_over_baseline": final["LSTM"] / baseline,
        "gru_mse_over_baseline": final["GRU"] / baseline,
        "rnn_mse_over_baseline": final["RNN"] / baseline,
        "rnn_mse_over_worst_gated": final["RNN"] / max(final["LSTM"], final["GRU"]),
    }
