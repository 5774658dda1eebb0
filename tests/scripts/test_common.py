"""The scripts' shared helpers (scripts/common.py) and the status table of execute_notebooks.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scripts import common, execute_notebooks


def test_toc_lists_this_book_in_order():
    files = common.toc_files()
    assert files[0] == common.ROOT / "book" / "intro.md"
    chapters = common.toc_notebooks()
    assert chapters and all(p.suffix == ".ipynb" and p.is_relative_to(common.BOOK) for p in chapters)
    assert chapters == [p for p in files if p.suffix == ".ipynb"]


def test_toc_entry_without_a_file_is_an_error(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: missing\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    with pytest.raises(FileNotFoundError, match="'missing' matches 0 files"):
        common.toc_files(tmp_path)


def test_cpu_fits_threads():
    assert common.cpu_fits_threads(wall=0.010, cpu=0.0105, threads=1)
    assert not common.cpu_fits_threads(wall=0.00561, cpu=0.00941, threads=1)  # the old bench_conv row
    assert common.cpu_fits_threads(wall=0.00490, cpu=0.00894, threads=2)


def test_median_time_counts_cpu_and_wall():
    wall, cpu = common.median_time(lambda: sum(range(200_000)), repeats=5)
    assert 0 < cpu <= wall * 1.1


def test_limit_threads_applies_and_restores():
    before = torch.get_num_threads()
    with common.limit_threads(1, settle_s=0.0):
        assert torch.get_num_threads() == 1
        from threadpoolctl import threadpool_info
        assert {p["num_threads"] for p in threadpool_info()} == {1}
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads=0"):
        with common.limit_threads(0):
            pass


def test_one_thread_timing_after_a_multithreaded_numpy_call_fits_one_thread():
    """The bench_conv bug: OpenBLAS workers still spinning after a NumPy call were counted."""
    a = np.random.default_rng(0).standard_normal((400, 400))
    x, w = torch.randn(16, 8, 28, 28), torch.randn(16, 8, 3, 3)
    a @ a  # NumPy at its default thread count, just before the timing
    with common.limit_threads(1), torch.inference_mode():
        wall, cpu = common.median_time(lambda: torch.nn.functional.conv2d(x, w), repeats=9)
    assert common.cpu_fits_threads(wall, cpu, 1), (wall, cpu)


def test_load_report_warns_when_busy(monkeypatch):
    monkeypatch.setattr(common.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(common.os, "getloadavg", lambda: (0.1, 0.2, 0.3))
    assert "Warning" not in common.load_report() and "0.10 / 0.20 / 0.30" in common.load_report()
    monkeypatch.setattr(common.os, "getloadavg", lambda: (1.5, 0.2, 0.3))
    assert "**Warning: the machine was busy (load 1.50 on 2 cores)" in common.load_report()


def test_versions_are_read_without_importing():
    found = common.versions()
    assert list(found) == ["Python", "NumPy", "torch", "Keras", "TensorFlow", "JAX"]
    assert found["torch"] == torch.__version__ and found["NumPy"] == np.__version__


def test_cpu_model_and_busy_seconds():
    assert common.cpu_model().endswith(")")
    first = common.busy_cpu_seconds()
    if first is not None:  # Linux
        sum(range(2_000_000))
        assert common.busy_cpu_seconds() >= first


# --- the status table -------------------------------------------------------------------------

ENV = {"cpu": "Example CPU (x86_64)", "cpus": 2, "memory_gib": 8.0, "gpu": None, "threads": 2,
       "threads_from": "`torch.get_num_threads()` in a fresh interpreter",
       "versions": {"Python": "3.11.7", "NumPy": "2.4.6", "torch": "2.13.0", "Keras": "3.15.1",
                    "TensorFlow": "2.21.0", "JAX": "0.10.2"}}


def record(seconds, other=0.05, env=ENV):
    return {"seconds": seconds, "cpu_seconds": seconds * 1.2, "peak_rss_mib": 512.0, "started": "2026-11-26T15:00:00+00:00",
            "load_at_start": 0.1, "other_load": other, "saved": True, "threads_at_end": 1, "environment": env}


def test_status_table_rows_budgets_and_environment():
    order = ["book/a.ipynb", "book/projects/text_generation.ipynb", "book/c.ipynb"]
    rows = {"book/a.ipynb": record(61.0), "book/projects/text_generation.ipynb": record(120.0, other=0.9)}
    text = execute_notebooks.table(rows, order, "Machine: load 0.10.", links=True)
    lines = text.splitlines()
    assert ("**Environment.** CPU: Example CPU (x86_64), 2 logical CPU(s), 8.0 GiB memory, no GPU; 2 thread(s) "
            "(`torch.get_num_threads()` in a fresh interpreter)") in text
    assert "Python 3.11.7, NumPy 2.4.6, torch 2.13.0, Keras 3.15.1, TensorFlow 2.21.0, JAX 0.10.2." in text
    row_a = next(line for line in lines if line.startswith("| {doc}`/book/a`"))
    assert "| 61.0 | 73.2 | 512 | 60 | **no** | 1 | 2026-11-26 15:00 |" in row_a
    row_t = next(line for line in lines if "text_generation" in line)
    assert "| 150 | yes |" in row_t and "0.90 **busy**" in row_t
    assert "| {doc}`/book/c` | not measured |" in text
    assert "| **total** | **181.0** | | | 900 | incomplete: 1 chapter(s) not measured | | | | |" in text
    assert "1 row(s) marked **busy**" in text


def test_status_table_numbers_environments_when_they_differ():
    other = dict(ENV, threads=1)
    rows = {"a.ipynb": record(1.0), "b.ipynb": record(2.0, env=other)}
    text = execute_notebooks.table(rows, list(rows), "load")
    assert "**Environment 1.**" in text and "**Environment 2.** CPU: Example CPU (x86_64), 2 logical CPU(s), 8.0 GiB memory, no GPU; 1 thread(s)" in text
    assert text.splitlines()[-4].endswith("| 2 |")  # b's row names environment 2
    assert "| **total** | **3.0** | | | 900 | yes |" in text


def test_stored_run_reads_the_notebooks_cell_timings(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# t"},
                    {"cell_type": "code", "metadata": {"execution": {"iopub.execute_input": "2026-11-26T15:13:43.092181Z"}}}]}
    path = tmp_path / "t.ipynb"
    path.write_text(json.dumps(nb))
    assert execute_notebooks.stored_run(path) == "2026-11-26 15:13"
    path.write_text(json.dumps({"cells": []}))
    assert execute_notebooks.stored_run(path) == "unknown"


def test_worker_executes_saves_and_probes_the_kernel(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("import os\nprint(os.getcwd())"),
                nbformat.v4.new_code_cell("21 * 2")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    result = execute_notebooks.run_worker(path, save=True, timeout=120)
    assert "error" not in result, result
    assert result["seconds"] > 0 and result["cpu_seconds"] > 0 and result["peak_rss_mib"] > 10
    env = result["environment"]  # from the kernel, after the last cell
    assert "torch.get_num_threads()" in env["threads_from"] and env["threads"] == torch.get_num_threads()
    assert result["threads_at_end"] == torch.get_num_threads()
    assert execute_notebooks.fresh_threads() == (torch.get_num_threads(), "`torch.get_num_threads()` in a fresh "
                                                 "interpreter, as each kernel starts")
    assert env["versions"] == common.versions()
    saved = nbformat.read(path, as_version=4)
    outputs = [c.outputs for c in saved.cells if c.cell_type == "code"]
    assert outputs[0][0]["text"].strip() == str(tmp_path)  # the kernel starts in the notebook's folder
    assert outputs[1][0]["data"]["text/plain"] == "42"
    assert [c.execution_count for c in saved.cells if c.cell_type == "code"] == [1, 2]
    assert execute_notebooks.stored_run(path)[:10] == result["started"][:10]


def test_worker_reports_a_failing_cell(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    result = execute_notebooks.run_worker(path, save=False, timeout=120)
    assert result["error"] == "ValueError: boom" and "started" in result
