"""Execute chapters in fresh kernels: the benchmark, and the way to store outputs.

Each notebook runs in its own worker process with a fresh kernel, started in the
notebook's folder, exactly as nbval runs it. The script prints a table of wall-clock
seconds and the kernel's peak resident memory, plus the total, and flags chapters over
budget (60 s each unless a per-chapter budget below says otherwise; 10 minutes in all).

Usage (from the repository root, inside the virtual environment)::

    python scripts/execute_notebooks.py                     # benchmark every chapter in _toc.yml
    python scripts/execute_notebooks.py book/x/y.ipynb      # just these
    python scripts/execute_notebooks.py --save book/x/y.ipynb   # execute and store the outputs
    python scripts/execute_notebooks.py --markdown benchmarks/execution_times.md

Timings only mean something on an otherwise idle machine; the budgets are for 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_S = 60.0
TOTAL_BUDGET_S = 600.0
# Chapters whose issue grants a larger budget.
BUDGETS_S = {"book/projects/text_generation.ipynb": 150.0}


def execute_one(path: Path, save: bool, timeout: int) -> dict:
    """Run in the worker: execute ``path`` in a fresh kernel, optionally save it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if save:
        nbformat.write(nb, path)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the kernel, once reaped
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024}


def run_worker(path: Path, save: bool, timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(path), "--timeout", str(timeout)] + (["--save"] if save else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[tuple[str, dict]]) -> str:
    total = sum(r.get("seconds", 0.0) for _, r in rows)
    lines = [
        f"Executed on {platform.machine()} with {os.cpu_count()} CPU(s), Python {platform.python_version()}.",
        "",
        "| notebook | wall seconds | kernel CPU seconds | peak RSS (MiB) | budget (s) | within budget |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, r in rows:
        budget = BUDGETS_S.get(name, BUDGET_S)
        if "error" in r:
            lines.append(f"| {name} | failed | | | {budget:.0f} | no: {r['error'][:120]} |")
        else:
            ok = "yes" if r["seconds"] <= budget else "**no**"
            lines.append(f"| {name} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_mib']:.0f} | {budget:.0f} | {ok} |")
    ok = "yes" if total <= TOTAL_BUDGET_S else "**no**"
    lines.append(f"| **total** | **{total:.1f}** | | | {TOTAL_BUDGET_S:.0f} | {ok} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in _toc.yml")
    parser.add_argument("--save", action="store_true", help="store the fresh outputs in the notebooks")
    parser.add_argument("--markdown", type=Path, help="also write the table to this Markdown file")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(execute_one(args.worker.resolve(), args.save, args.timeout)))
        return 0

    if args.notebooks:
        paths = [p.resolve() for p in args.notebooks]
    else:
        from tests.notebooks import toc_notebooks
        paths = toc_notebooks()
    rows = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix()
        result = run_worker(path, args.save, args.timeout)
        rows.append((name, result))
        status = result.get("error") or (
            f"{result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s CPU, {result['peak_rss_mib']:.0f} MiB")
        print(f"{name}: {status}", file=sys.stderr, flush=True)
    report = table(rows)
    print(report)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report + "\n", encoding="utf-8")
    return 1 if any("error" in r for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
