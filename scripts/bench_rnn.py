"""Benchmark: our NumPy LSTM forward pass against ``torch.nn.LSTM`` on the CPU.

One process, same inputs and weights, same dtype, same thread count (set for torch and for
NumPy's BLAS before timing), runs interleaved with a short pause before each so that one
library's idle worker threads do not run during the other's timing; the table reports the
machine's load average at start, the median wall-clock time of several runs and the CPU
seconds, and checks CPU <= wall x threads in every row (the script fails when one does not).
Writes a Markdown table (shown in ``book/architectures/rnn.ipynb``).

Usage (from the repository root)::

    python scripts/bench_rnn.py                            # prints the table
    python scripts/bench_rnn.py --markdown benchmarks/rnn.md
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import blas_name, cpu_fits_threads, limit_threads, load_report, median_time, settle  # noqa: E402

from dlnotes.scratch import rnn  # noqa: E402

BATCH, LENGTH, INPUT, HIDDEN = 64, 50, 64, 128
GOAL = 3.0


def bench(dtype: str, repeats: int) -> dict:
    torch.manual_seed(0)
    layer = torch.nn.LSTM(INPUT, HIDDEN).to(getattr(torch, dtype))
    weights = [p.detach().numpy().copy() for p in
               (layer.weight_ih_l0, layer.weight_hh_l0, layer.bias_ih_l0, layer.bias_hh_l0)]
    x = np.random.default_rng(0).standard_normal((LENGTH, BATCH, INPUT)).astype(dtype)
    x_t = torch.from_numpy(x)
    ours_out = rnn.lstm_forward(x, None, *weights)[0]
    with torch.no_grad():
        torch_out = layer(x_t)[0].numpy()
    assert np.allclose(ours_out, torch_out, rtol=1e-4, atol=1e-5), "the two LSTMs disagree"

    def ours():
        rnn.lstm_forward(x, None, *weights)

    def theirs():
        with torch.no_grad():
            layer(x_t)

    results = {"ours": [], "torch": []}
    for _ in range(3):  # interleave, so both see the same machine load
        for name, fn in (("ours", ours), ("torch", theirs)):
            settle()
            results[name].append(median_time(fn, repeats))
    return {name: tuple(np.median(np.array(runs), axis=0)) for name, runs in results.items()}


def cpu_violations(rows: dict, threads: int) -> list[str]:
    """The timings whose CPU time exceeds wall time x threads: a thread limit that did not hold."""
    return [f"{dtype} {name}: {cpu * 1e3:.1f} CPU ms > {wall * 1e3:.1f} ms x {threads}"
            for dtype, r in rows.items() for name, (wall, cpu) in r.items()
            if not cpu_fits_threads(wall, cpu, threads)]


def table(rows: dict, threads: int, report: str) -> str:
    lines = [
        report,
        "",
        f"LSTM forward pass, batch {BATCH}, length {LENGTH}, input size {INPUT}, hidden size {HIDDEN}, "
        f"no gradient; median of several runs on {platform.machine()} with {threads} thread(s) for both, "
        f"NumPy {np.__version__} ({blas_name()}), torch {torch.__version__}.",
        "",
        "| dtype | dlnotes.scratch.rnn.lstm_forward (ms) | torch.nn.LSTM (ms) | ratio (ours / torch) "
        "| CPU ms, ours / torch | CPU ratio | goal ≤ 3× |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for dtype, r in rows.items():
        (ow, oc), (tw, tc) = r["ours"], r["torch"]
        lines.append(f"| {dtype} | {ow * 1e3:.2f} | {tw * 1e3:.2f} | {ow / tw:.2f} | "
                     f"{oc * 1e3:.1f} / {tc * 1e3:.1f} | {oc / tc:.2f} | {'yes' if ow / tw <= GOAL else 'no'} |")
    bad = cpu_violations(rows, threads)
    cpu_check = ("yes" if not bad else
                 f"**no, the thread limit did not hold in {len(bad)} timing(s); these timings are not valid**")
    lines += ["", f"Check: in every timing, CPU time <= wall time x threads (within 10%): {cpu_check}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads for torch and for NumPy's BLAS alike (default: torch's default)")
    args = parser.parse_args(argv)
    report = load_report()
    with limit_threads(args.threads):
        rows = {dtype: bench(dtype, args.repeats) for dtype in args.dtypes}
    text = table(rows, args.threads, report)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    bad = cpu_violations(rows, args.threads)
    for row in bad:
        print(f"thread limit not applied: {row}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
