"""Benchmark: our NumPy LSTM forward pass against ``torch.nn.LSTM`` on the CPU.

One process, same inputs and weights, same dtype, same thread count, runs interleaved;
the table reports the median wall-clock time of several runs and the CPU seconds.
Writes a Markdown table (shown in ``book/architectures/rnn.ipynb``).

Usage (from the repository root)::

    python scripts/bench_rnn.py                            # prints the table
    python scripts/bench_rnn.py --markdown benchmarks/rnn.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlnotes.scratch import rnn  # noqa: E402

BATCH, LENGTH, INPUT, HIDDEN = 64, 50, 64, 128
GOAL = 3.0


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of ``repeats`` calls (after one warm-up)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus))


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
        results["ours"].append(timed(ours, repeats))
        results["torch"].append(timed(theirs, repeats))
    return {name: tuple(np.median(np.array(runs), axis=0)) for name, runs in results.items()}


def table(rows: dict, threads: int) -> str:
    lines = [
        f"LSTM forward pass, batch {BATCH}, length {LENGTH}, input size {INPUT}, hidden size {HIDDEN}, "
        f"no gradient; median of several runs on {platform.machine()} with {threads} thread(s) for both, "
        f"NumPy {np.__version__}, torch {torch.__version__}.",
        "",
        "| dtype | dlnotes.scratch.rnn.lstm_forward (ms) | torch.nn.LSTM (ms) | ratio (ours / torch) "
        "| CPU ms, ours / torch | CPU ratio | goal ≤ 3× |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for dtype, r in rows.items():
        (ow, oc), (tw, tc) = r["ours"], r["torch"]
        lines.append(f"| {dtype} | {ow * 1e3:.2f} | {tw * 1e3:.2f} | {ow / tw:.2f} | "
                     f"{oc * 1e3:.1f} / {tc * 1e3:.1f} | {oc / tc:.2f} | {'yes' if ow / tw <= GOAL else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads for torch and for NumPy's BLAS alike (default: torch's default)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        rows = {dtype: bench(dtype, args.repeats) for dtype in args.dtypes}
    text = table(rows, args.threads)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
