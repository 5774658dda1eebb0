"""Benchmark dlnotes.scratch.conv.conv2d against torch.nn.functional.conv2d (CPU) and against conv2d_naive.

The main case is the first layer of a small MNIST network: a batch of 64 images of 1 x 28 x 28,
32 filters of 3 x 3, stride 1, no padding, with bias; forward pass only. A second case, a deeper
layer with 32 -> 64 channels on 14 x 14 maps (padding 1), shows where the framework pulls ahead. Every variant runs
in this one process, on the same arrays, at the same dtype (float32, the framework default,
and float64, the dtype of the unit tests) and with the same number of threads (1, and torch's
default; NumPy's BLAS threads are set with threadpoolctl). Each number is the median of several
runs, in wall-clock and in process CPU seconds (all threads). conv2d_naive is timed on a batch
of 4 and scaled to 64 (its cost is linear in the batch). The goal: conv2d within 3x torch's time.
On a machine shared with other busy processes, multi-threaded timings of both libraries are
inflated unpredictably (threads wait for each other); the one-thread rows stay meaningful.

Usage (from the repository root)::

    python scripts/bench_conv.py                              # print the table
    python scripts/bench_conv.py --markdown benchmarks/conv.md  # and write it
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn()`` over ``repeats`` runs, after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


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
        torch.set_num_threads(threads)
        with torch.inference_mode():
            rows["torch", threads] = median_time(
                lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=padding), repeats)
        with threadpool_limits(limits=threads, user_api="blas"):
            rows["conv2d", threads] = median_time(lambda: conv.conv2d(x, w, b, padding=padding), repeats)
    torch.set_num_threads(DEFAULT_THREADS)
    small = x[:NAIVE_BATCH]
    with threadpool_limits(limits=1, user_api="blas"):
        naive_wall, naive_cpu = median_time(lambda: conv.conv2d_naive(small, w, b, padding=padding), 3)
    scale = BATCH / NAIVE_BATCH
    rows["conv2d_naive"] = (naive_wall * scale, naive_cpu * scale)
    return rows


def table(results: dict, repeats: int) -> str:
    lines = [
        f"Forward pass of one convolution layer (3 x 3 filters, stride 1, with bias) on a batch of "
        f"{BATCH}, on the CPU: {os.cpu_count()} CPU(s) ({platform.machine()}), torch {torch.__version__}, "
        f"NumPy {np.__version__} (OpenBLAS). Both sides run in one process on the same arrays, at the "
        f"same dtype and with the same number of threads (torch's intra-op threads, NumPy's BLAS "
        f"threads). Medians of {repeats} runs; CPU ms count all threads. `conv2d_naive` ran 3 times "
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
    lines += ["", f"Goal for the first layer, `conv2d` within {GOAL:.0f}x torch's time at the same dtype "
              f"and thread count: {ok} (worst ratio {worst:.2f})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    results = {(name, dtype.__name__): measure(case, dtype, args.repeats)
               for name, case in CASES.items() for dtype in (np.float32, np.float64)}
    text = table(results, args.repeats)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
