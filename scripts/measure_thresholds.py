"""Measure every threshold a chapter checks, over seeds and thread counts.

Each ``scripts/thresholds/<chapter>.py`` defines

* ``THRESHOLDS = {"metric": (threshold, "min")}`` -- the value the chapter's checked cell
  compares with, and whether the metric must stay above (``"min"``) or below (``"max"``) it;
* ``measure(seed: int) -> dict[str, float]`` -- the chapter's own training run with that seed
  (the same functions and arguments as the notebook), returning each metric.

This script runs ``measure`` in a fresh process for every seed and thread count, and writes a
Markdown table: min / median / max per metric, the threshold, and the worst-case margin.

Usage::

    python scripts/measure_thresholds.py                          # every chapter, seeds 0-4, threads 1 and 2
    python scripts/measure_thresholds.py rnn --seeds 0 1 2 3 4 --threads 1 2
    python scripts/measure_thresholds.py --markdown benchmarks/thresholds.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHAPTERS = HERE / "thresholds"
sys.path.insert(0, str(HERE))

from common import load_report  # noqa: E402


def load(chapter: str):
    spec = importlib.util.spec_from_file_location(f"thresholds_{chapter}", CHAPTERS / f"{chapter}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_one(chapter: str, seed: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), KERAS_BACKEND="torch")
    cmd = [sys.executable, __file__, "--worker", chapter, "--seeds", str(seed), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{chapter} seed={seed} threads={threads} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker(chapter: str, seed: int, threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    print(json.dumps(load(chapter).measure(seed)))


def table(results: dict) -> str:
    lines = ["| chapter | metric | runs | min | median | max | threshold | worst-case margin |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for chapter, (thresholds, runs) in results.items():
        for metric, (threshold, kind) in thresholds.items():
            values = [r[metric] for r in runs]
            worst = min(values) if kind == "min" else max(values)
            margin = worst - threshold if kind == "min" else threshold - worst
            sign = ">=" if kind == "min" else "<="
            lines.append(f"| {chapter} | {metric} | {len(values)} | {min(values):.4g} | {statistics.median(values):.4g} "
                         f"| {max(values):.4g} | {sign} {threshold:g} | {margin:+.3g} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="default: every scripts/thresholds/*.py")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seeds[0], args.threads[0])
        return 0
    chapters = args.chapters or sorted(p.stem for p in CHAPTERS.glob("*.py"))
    report = load_report()
    results, failed = {}, False
    for chapter in chapters:
        thresholds = load(chapter).THRESHOLDS
        runs = []
        for threads in args.threads:
            for seed in args.seeds:
                runs.append(run_one(chapter, seed, threads))
                print(f"{chapter} seed={seed} threads={threads}: {runs[-1]}", file=sys.stderr, flush=True)
        results[chapter] = (thresholds, runs)
        for metric, (threshold, kind) in thresholds.items():
            values = [r[metric] for r in runs]
            failed |= (min(values) < threshold) if kind == "min" else (max(values) > threshold)
    text = (f"{report}\n\nSeeds {args.seeds}, threads {args.threads}; each run in a fresh process.\n\n"
            + table(results))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
