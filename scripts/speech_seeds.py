"""Five seeds of *Speech: recognising spoken digits* (book/applications/speech.ipynb).

Runs ``scripts/thresholds/speech.py``'s ``measure(seed)`` (the chapter's exact calls; the split and
the sequence generator seeds stay fixed, the seed changes initial weights and batch order) for each
seed, and writes ``benchmarks/speech.json`` (every run, and mean/std/min/max per metric) and
``benchmarks/speech.md``. ``--from-log`` instead reads the per-seed lines that
``scripts/measure_thresholds.py speech`` prints (the same runs), to avoid training twice.

Usage::

    OMP_NUM_THREADS=1 python scripts/speech_seeds.py --seeds 0 1 2 3 4
    python scripts/speech_seeds.py --from-log /tmp/speech_thr.log
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import platform
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _measure():
    spec = importlib.util.spec_from_file_location("thresholds_speech", ROOT / "scripts" / "thresholds" / "speech.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.measure


def summarise(runs: dict[int, dict[str, float]]) -> dict:
    keys = next(iter(runs.values())).keys()
    summary = {}
    for k in keys:
        vals = [r[k] for r in runs.values()]
        summary[k] = {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                      "min": min(vals), "max": max(vals)}
    return summary


def write(runs: dict[int, dict[str, float]], note: str) -> None:
    summary = summarise(runs)
    (ROOT / "benchmarks" / "speech.json").write_text(json.dumps(
        {"seeds": sorted(runs), "machine": platform.platform(), "note": note,
         "runs": {str(k): v for k, v in runs.items()}, "summary": summary}, indent=1) + "\n")
    lines = [f"# Speech: seeds {sorted(runs)} ({note})", "", "| metric | mean | std | min | max |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {v['mean']:.4f} | {v['std']:.4f} | {v['min']:.4f} | {v['max']:.4f} |" for k, v in summary.items()]
    (ROOT / "benchmarks" / "speech.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--from-log", type=Path, default=None)
    args = parser.parse_args()
    if args.from_log is not None:
        runs = {int(m.group(1)): ast.literal_eval(m.group(2))
                for m in re.finditer(r"speech seed=(\d+) threads=1: (\{.*\})", args.from_log.read_text())}
        write(runs, "from scripts/measure_thresholds.py speech --threads 1")
        return
    measure, runs = _measure(), {}
    for seed in args.seeds:
        start = time.perf_counter()
        runs[seed] = measure(seed)
        runs[seed]["seconds"] = time.perf_counter() - start
    write(runs, "1 thread")


if __name__ == "__main__":
    main()
