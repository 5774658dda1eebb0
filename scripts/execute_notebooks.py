"""Execute chapters in fresh kernels: the execution status page, and the way to store outputs.

Each notebook runs in its own worker process with a fresh kernel, started in the
notebook's folder, exactly as nbval runs it. For each chapter the script measures the
wall-clock seconds (kernel start included), the CPU seconds and peak resident memory of
the kernel and of the processes it started, and how busy the rest of the machine was
meanwhile; after the last cell it asks the same kernel for the installed versions of
Python, NumPy, torch, Keras, TensorFlow and JAX and for the thread count torch then uses
(next to the count a fresh interpreter starts with, the same for every chapter). It prints
a table and flags chapters over budget (60 s each on 2 CPU cores unless ``BUDGETS_S``
says otherwise; 15 minutes in all).

Usage (from the repository root, inside the virtual environment)::

    python scripts/execute_notebooks.py                         # every chapter in _toc.yml
    python scripts/execute_notebooks.py book/x/y.ipynb          # just these
    python scripts/execute_notebooks.py --save book/x/y.ipynb   # execute and store the outputs
    python scripts/execute_notebooks.py --save --markdown benchmarks/execution_times.md  # the status page

``--markdown`` keeps the measurements in a JSON file beside the Markdown
(``benchmarks/execution_times.json``) and writes the Markdown from it, in toc order: a run
over some chapters replaces their rows and keeps the others (each row says when it was
measured); a run over every chapter replaces them all. The page also shows, from each
notebook's own metadata, when its stored outputs were executed; run with ``--save`` so
that the two agree. Timings only mean something on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import ROOT, busy_cpu_seconds, cpu_model, is_busy, load_report, memory_gib, toc_notebooks  # noqa: E402

BUDGET_S = 60.0
TOTAL_BUDGET_S = 900.0
# Chapters whose issue grants a larger budget.
BUDGETS_S = {"book/projects/text_generation.ipynb": 150.0, "book/faq/improving.ipynb": 120.0,
             "book/applications/translation.ipynb": 120.0}

# Runs in the kernel after the notebook's last cell. It measures the kernel first (CPU time,
# peak memory of the kernel and of the processes it started and waited for), then imports
# torch to read its thread count, and reads versions with importlib.metadata (scripts/common.py).
PROBE = r'''
def _dlnotes_probe(common_path):
    import importlib.util, json, os, sys
    times = os.times()
    found = {"cpu_seconds": times.user + times.system + times.children_user + times.children_system}
    try:
        import resource
        unit = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
        peaks = [resource.getrusage(who).ru_maxrss / unit for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        found["peak_rss_mib"] = max(peaks)
    except ImportError:
        found["peak_rss_mib"] = None
    spec = importlib.util.spec_from_file_location("_dlnotes_common", common_path)
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    found["versions"] = common.versions()
    try:
        import torch
        found["threads"], found["threads_from"] = torch.get_num_threads(), "`torch.get_num_threads()` after the last cell"
        found["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        found["threads"], found["threads_from"], found["gpu"] = os.cpu_count(), "`os.cpu_count()`", None
    return json.dumps(found)
'''


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def probe_kernel(client) -> dict:
    """Run :data:`PROBE` in the client's (still running) kernel; return what it found."""
    code = PROBE + f"_dlnotes_probe_result = _dlnotes_probe({str(HERE / 'common.py')!r})\n"
    msg_id = client.kc.execute(code, silent=True, store_history=False,
                               user_expressions={"found": "_dlnotes_probe_result"})
    reply = client.wait_for_reply(msg_id)
    found = reply["content"]["user_expressions"]["found"]
    if found.get("status") != "ok":
        raise RuntimeError(f"the kernel probe failed: {found.get('ename')}: {found.get('evalue')}")
    return json.loads(ast.literal_eval(found["data"]["text/plain"]))


def execute_one(path: Path, save: bool, timeout: int) -> dict:
    """Run in the worker: execute ``path`` in a fresh kernel, optionally save it, measure it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started, load_at_start = utc_now(), os.getloadavg()[0]
    busy_start, self_start = busy_cpu_seconds(), time.process_time()
    start = time.perf_counter()
    with client.setup_kernel():  # shuts the kernel down on exit
        client.execute(cleanup_kc=False)
        seconds = time.perf_counter() - start
        busy_end, self_end = busy_cpu_seconds(), time.process_time()
        found = probe_kernel(client)
    if save:
        nbformat.write(nb, path)
    other = None
    if busy_start is not None and busy_end is not None:
        # CPU the machine spent on processes other than this kernel (and its children) and this worker
        used = busy_end - busy_start - found["cpu_seconds"] - (self_end - self_start)
        other = max(used, 0.0) / seconds
    return {"seconds": seconds, "cpu_seconds": found["cpu_seconds"], "peak_rss_mib": found["peak_rss_mib"],
            "started": started, "load_at_start": load_at_start, "other_load": other, "saved": save,
            "threads_at_end": found["threads"], "environment": environment(found)}


def environment(found: dict) -> dict:
    """The machine and software a chapter ran on: hardware from here, the rest from its kernel."""
    memory = memory_gib()
    return {"cpu": cpu_model(), "cpus": os.cpu_count(),
            "memory_gib": round(memory, 1) if memory else None, "gpu": found["gpu"],
            "threads": found["threads"], "threads_from": found["threads_from"], "versions": found["versions"]}


def fresh_threads() -> tuple[int, str]:
    """The thread count a chapter starts with: torch's default in a fresh interpreter like the kernel's.

    The kernel's own count is read only after the last cell, when a chapter may have changed
    it (``torch.set_num_threads(1)`` before a benchmark); the table shows that count per row.
    """
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return int(proc.stdout.strip()), "`torch.get_num_threads()` in a fresh interpreter, as each kernel starts"
    return os.cpu_count() or 1, "`os.cpu_count()`"


def run_worker(path: Path, save: bool, timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(path), "--timeout", str(timeout)] + (["--save"] if save else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        stderr = re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr).strip()  # without terminal colours
        return {"error": stderr.splitlines()[-1] if stderr else f"exit {proc.returncode}", "started": utc_now()}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the table ------------------------------------------------------------------------------


def stored_run(path: Path) -> str:
    """When the notebook's stored outputs were executed (UTC), from nbclient's cell timings."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        stamp = next(c["metadata"]["execution"]["iopub.execute_input"] for c in cells
                     if c["cell_type"] == "code" and "execution" in c.get("metadata", {}))
    except (OSError, ValueError, KeyError, StopIteration):
        return "unknown"
    return short_date(stamp)


def short_date(stamp: str) -> str:
    """``2026-11-26T15:13:43.09Z`` -> ``2026-11-26 15:13``."""
    return stamp.replace("T", " ")[:16]


def describe(env: dict) -> str:
    memory = f", {env['memory_gib']:.1f} GiB memory" if env.get("memory_gib") else ""
    gpu = f"GPU: {env['gpu']}" if env.get("gpu") else "no GPU"
    libraries = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    return (f"CPU: {env['cpu']}, {env['cpus']} logical CPU(s){memory}, {gpu}; {env['threads']} thread(s) "
            f"({env['threads_from']}); {libraries}.")


def table(rows: dict[str, dict], order: list[str], report: str, links: bool = False) -> str:
    """The status table: one row per chapter of ``order`` (``rows`` maps notebook -> record)."""
    environments = []
    for name in order:
        env = rows.get(name, {}).get("environment")
        if env and env not in environments:
            environments.append(env)
    several = len(environments) > 1
    measured = [rows[n] for n in order if n in rows and "error" not in rows[n]]
    dates = sorted(short_date(r["started"])[:10] for r in measured)
    lines = [
        "% Generated by scripts/execute_notebooks.py --markdown: do not edit, rerun the script.",
        "",
        (f"Measured with `scripts/execute_notebooks.py` on {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
         + " (UTC), each chapter in a fresh kernel, one after another." if dates else "Nothing measured yet."),
        "",
    ]
    if several:
        for i, env in enumerate(environments, 1):
            lines += [f"**Environment {i}.** {describe(env)}", ""]
        lines.pop()
    elif environments:
        lines.append(f"**Environment.** {describe(environments[0])}")
    lines += ["", f"**Load at the start of the latest run.** {report}", "",
              "| chapter | wall s | kernel CPU s | peak memory (MiB) | budget (s) | within budget "
              "| torch threads at the end | measured (UTC) | stored outputs executed (UTC) | other processes (cores busy) |"
              + (" environment |" if several else ""),
              "|---|---:|---:|---:|---:|---|---:|---|---|---:|" + ("---:|" if several else "")]
    total, missing, busy = 0.0, 0, 0
    for name in order:
        label = "{doc}`/" + name.removesuffix(".ipynb") + "`" if links else name
        budget = BUDGETS_S.get(name, BUDGET_S)
        stored = stored_run(ROOT / name)
        r = rows.get(name)
        if r is None:
            missing += 1
            cells = ["not measured", "", "", f"{budget:.0f}", "", "", "", stored, ""]
        elif "error" in r:
            missing += 1
            cells = ["failed", "", "", f"{budget:.0f}", f"no: {r['error'][:120]}", "", short_date(r["started"]), stored, ""]
        else:
            total += r["seconds"]
            other = r.get("other_load")
            flag = other is not None and is_busy(other, r["environment"]["cpus"])
            busy += flag
            other_text = "" if other is None else f"{other:.2f}" + (" **busy**" if flag else "")
            memory = "" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}"
            cells = [f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", memory, f"{budget:.0f}",
                     "yes" if r["seconds"] <= budget else "**no**", str(r.get("threads_at_end", "")),
                     short_date(r["started"]), stored, other_text]
        if several:
            env = r.get("environment") if r else None
            cells.append(str(environments.index(env) + 1) if env in environments else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    within = "yes" if total <= TOTAL_BUDGET_S else "**no**"
    if missing:
        within = f"incomplete: {missing} chapter(s) not measured"
    lines.append(f"| **total** | **{total:.1f}** | | | {TOTAL_BUDGET_S:.0f} | {within} | | | | |" + (" |" if several else ""))
    lines += ["", "Wall seconds include starting the kernel. Kernel CPU seconds and peak memory count the "
              "kernel and the processes it started. *Torch threads at the end* is `torch.get_num_threads()` in the kernel "
              "after the last cell (a chapter may lower it, say for a benchmark). *Other processes* is the average number of cores the "
              "rest of the machine kept busy while the chapter ran, from `/proc/stat`"]
    lines[-1] += (f"; {busy} row(s) marked **busy** ran while other work used more than a quarter of the "
                  "cores, so their times are not reliable." if busy else ".")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in _toc.yml")
    parser.add_argument("--save", action="store_true", help="store the fresh outputs in the notebooks")
    parser.add_argument("--markdown", type=Path,
                        help="also write the status table to this Markdown file (and its measurements to a .json beside it)")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(execute_one(args.worker.resolve(), args.save, args.timeout)))
        return 0

    paths = [p.resolve() for p in args.notebooks] if args.notebooks else toc_notebooks()
    report = load_report()
    threads, threads_from = fresh_threads()
    rows = {}
    for path in paths:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        result = run_worker(path, args.save, args.timeout)
        if "environment" in result:
            result["environment"].update(threads=threads, threads_from=threads_from)
        rows[name] = result
        status = result.get("error") or (
            f"{result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s CPU, {result['peak_rss_mib']:.0f} MiB")
        print(f"{name}: {status}", file=sys.stderr, flush=True)
    print(table(rows, list(rows), report))
    if args.markdown:
        store = args.markdown.with_suffix(".json")
        kept = {}
        if args.notebooks and store.exists():  # a partial run keeps the other chapters' rows
            kept = json.loads(store.read_text(encoding="utf-8"))["rows"]
        kept.update(rows)
        order = [p.relative_to(ROOT).as_posix() for p in toc_notebooks()]
        kept = {name: kept[name] for name in order if name in kept}
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps({"load_report": report, "rows": kept}, indent=1) + "\n", encoding="utf-8")
        args.markdown.write_text(table(kept, order, report, links=True), encoding="utf-8")
    return 1 if any("error" in r for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
