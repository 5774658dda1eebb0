"""Benchmark dlnotes.scratch.conv.conv2d against torch.nn.functional.conv2d (CPU) and against conv2d_naive.

The main case is the first layer of a small MNIST network: a batch of 64 images of 1 x 28 x 28,
32 filters of 3 x 3, stride 1, no padding, with bias; forward pass only. A second case, a deeper
layer with 32 -> 64 channels on 14 x 14 maps (padding 1), shows where the framework pulls ahead. Every variant runs
in this one process, on the same arrays, at the same dtype (float32, the framework default,
and float64, the dtype of the unit tests) and with the same number of threads (1, and torch's
default). The thread count is set for torch (``torch.set_num_threads``) and for every native
thread pool (NumPy's BLAS, OpenMP, with threadpoolctl) before each block of timings, and the
script sleeps briefly before each timing so that the previous library's idle worker threads
have stopped spinning (OpenBLAS's workers spin for about 0.1 s after each call, and were
counted in torch's one-thread CPU time before this was done). Each number is the median of
several runs, in wall-clock and in process CPU seconds (all threads); every row is checked
to satisfy CPU <= wall x threads, and the script fails when one does not. conv2d_naive is
timed on a batch of 4 and scaled to 64 (its cost is linear in the batch). The goal: conv2d
within 3x torch's time. The table starts with the load average: on a machine shared with
other busy processes, multi-threaded timings are inflated unpredictably (threads wait for
each other) and the table says so.

Usage (from the repository root)::

    python scripts/bench_conv.py                              # print the table
    python scripts/bench_conv.py --markdown benchmarks/conv.md  # and write it
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import blas_name, cpu_fits_threads, limit_threads, load_report, median_time, settle  # noqa: E402

from dlnotes.scratch import conv  # noqa: E402

BATCH, NAIVE_BATCH = 64, 4
DEFAULT_THREADS = torch.get_num_threads()
THREADS = sorted({1, DEFAULT_THREADS})
GOAL = 3.0
# name -> (C_in, H = W, C_out, k, padding); the goal applies to the first.
CASES = {
    "first layer, 1 -> 32 channels, 28 x 28": (1, 28, 32, 3, 0),
    "deeper layer, 32 -> 64 channels, 14 x 14": (32, 14, 64, 3, 1),
}


def measure(case: tuple, dtype, repeats: int) -> dict:
    """Times in seconds: ``{("torch" | "conv2d", threads): (wall, cpu), "conv2d_naive": (wall, cpu)}``."""
    c_in, size, c_out, k, padding = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, c_in, size, size)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    expected = torch.nn.functional.conv2d(xt, wt, bt, padding=padding).numpy()
    assert np.allclose(conv.conv2d(x, w, b, padding=padding), expected, rtol=1e-3, atol=1e-3), "conv2d != torch"
    rows = {}
    for threads in THREADS:
        with limit_threads(threads):  # torch's and NumPy's threads, then a pause
            with torch.inference_mode():
                rows["torch", threads] = median_time(
                    lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=padding), repeats)
            settle()
            rows["conv2d", threads] = median_time(lambda: conv.conv2d(x, w, b, padding=padding), repeats)
    small = x[:NAIVE_BATCH]
    with limit_threads(1):
        naive_wall, naive_cpu = median_time(lambda: conv.conv2d_naive(small, w, b, padding=padding), 3)
    scale = BATCH / NAIVE_BATCH
    rows["conv2d_naive"] = (naive_wall * scale, naive_cpu * scale)
    return rows


def cpu_violations(results: dict) -> list[str]:
    """The rows whose CPU time exceeds wall time x threads: a thread limit that did not hold."""
    bad = []
    for (case, dtype), rows in results.items():
        for key, (wall, cpu) in rows.items():
            threads = key[1] if isinstance(key, tuple) else 1
            if not cpu_fits_threads(wall, cpu, threads):
                bad.append(f"{case}, {dtype}, {key}: {cpu * 1e3:.2f} CPU ms > {wall * 1e3:.2f} ms x {threads}")
    return bad


def table(results: dict, repeats: int, report: str) -> str:
    lines = [
        report,
        "",
        f"Forward pass of one convolution layer (3 x 3 filters, stride 1, with bias) on a batch of "
        f"{BATCH}, on the CPU: torch {torch.__version__}, "
        f"NumPy {np.__version__} ({blas_name()}). Both sides run in one process on the same arrays, at the "
        f"same dtype and with the same number of threads (torch's intra-op threads, NumPy's BLAS "
        f"threads), set before each block of timings. Medians of {repeats} runs; CPU ms count all threads. `conv2d_naive` ran 3 times "
        f"on a batch of {NAIVE_BATCH} and is scaled by {BATCH // NAIVE_BATCH}; the speed-up compares "
        f"it with `conv2d` on one thread.",
        "",
        "| layer | dtype | threads | torch ms (CPU ms) | `conv2d` ms (CPU ms) | `conv2d` / torch | "
        "`conv2d_naive` ms | `conv2d` speed-up over naive |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = {}
    for (case, dtype), rows in results.items():
        naive = rows["conv2d_naive"][0]
        for threads in THREADS:
            (tw, tc), (ow, oc) = rows["torch", threads], rows["conv2d", threads]
            ratios[case, dtype, threads] = ow / tw
            speedup = f"{naive / rows['conv2d', 1][0]:,.0f}x" if threads == 1 else ""
            naive_ms = f"{naive * 1e3:,.0f}" if threads == 1 else ""
            lines.append(f"| {case} | {dtype} | {threads} | {tw * 1e3:.2f} ({tc * 1e3:.2f}) | "
                         f"{ow * 1e3:.2f} ({oc * 1e3:.2f}) | {ow / tw:.2f} | {naive_ms} | {speedup} |")
    first = next(iter(CASES))
    goal = {key: r for key, r in ratios.items() if key[0] == first}
    ok = "met" if all(r <= GOAL for r in goal.values()) else "**not met**"
    worst = max(goal.values())
    bad = cpu_violations(results)
    cpu_check = ("yes" if not bad else
                 f"**no, the thread limit did not hold in {len(bad)} row(s); these timings are not valid**")
    lines += ["", f"Goal for the first layer, `conv2d` within {GOAL:.0f}x torch's time at the same dtype "
              f"and thread count: {ok} (worst ratio {worst:.2f}).",
              "", f"Check: in every row, CPU time <= wall time x threads (within 10%): {cpu_check}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    report = load_report()
    results = {(name, dtype.__name__): measure(case, dtype, args.repeats)
               for name, case in CASES.items() for dtype in (np.float32, np.float64)}
    text = table(results, args.repeats, report)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    bad = cpu_violations(results)
    for row in bad:
        print(f"thread limit not applied: {row}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
