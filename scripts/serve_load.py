"""Load test of dlnotes.serve on loopback: requests/s, instances/s and latency at a few concurrencies and batch sizes.

The service runs in a subprocess on a free loopback port (``python -m dlnotes.serve``), serving
the MNIST classifier of ``dlnotes.pipelines.image_classifier.build_torch_model()`` (untrained
weights, seed 0: the cost of a prediction does not depend on them), exported with
``torch.onnx.export(..., dynamo=True)`` with a dynamic batch dimension; the model is channels
first, so its signature is ``[null, 1, 28, 28]`` float32. ``--model PATH`` serves an existing
model base directory instead (its first model, default version). The exported model is
checked against torch before anything is timed (to 1e-5).

For each concurrency (1, 8, 32) and batch size (1, 32), an async httpx client keeps that many
requests in flight until it has sent ``--requests`` (1000) or ``--seconds`` (10) have passed,
whichever comes first, after a few warm-up requests. Each request is TF Serving's row format,
``{"instances": [...]}``, encoded once beforehand, so the client spends its CPU on HTTP and on
decoding the answers. Latency is per request, from send to the parsed answer; p50 and p99 are
over all requests of the row. The server runs ``--server-concurrency`` predictions at once
(default: one per core, one onnxruntime thread each) with a queue of ``--server-queue`` (64),
large enough that 32 clients are queued, never refused: a 503 would be counted in its own
column, and any answer other than 200 makes the script exit 1.

Client and server share the machine's cores, so the numbers are a lower bound on what the
server alone could do; the table starts with the load average, as the other benchmarks do.

Usage (from the repository root)::

    python scripts/serve_load.py                                       # print the table
    python scripts/serve_load.py --markdown benchmarks/serve_load.md   # and write it
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import json
import os
import shlex
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from common import cpu_model, load_report  # noqa: E402

CONCURRENCY, BATCHES = (1, 8, 32), (1, 32)
WARMUP = 5
EXPORT_ATOL = 1e-5
PACKAGES = ("numpy", "torch", "onnx", "onnxruntime", "fastapi", "uvicorn", "httpx")


def export_mnist(base: Path) -> Path:
    """Export the chapter's classifier to ONNX (dynamic batch), check it against torch, publish it in ``base``."""
    import torch

    from dlnotes.pipelines.image_classifier import build_torch_model
    from dlnotes.serve import make_session, write_model

    torch.manual_seed(0)
    model = build_torch_model().eval()
    path = base.parent / "mnist.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=True, input_names=["pixels"],
                      output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    x = np.random.default_rng(0).random((32, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = make_session(str(path)).run(["logits"], {"pixels": x})[0]
    if not np.allclose(got, want, rtol=0, atol=EXPORT_ATOL):
        raise SystemExit(f"the exported model differs from torch by {np.abs(got - want).max():.2e} > {EXPORT_ATOL}")
    write_model(base, "mnist", 1, path, input_shape=(None, 1, 28, 28), labels=[str(d) for d in range(10)])
    return base


async def load(url: str, body: bytes, batch: int, concurrency: int, requests: int, seconds: float) -> dict:
    """Keep ``concurrency`` requests in flight until ``requests`` are sent or ``seconds`` pass."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for _ in range(WARMUP):
            (await client.post(url, content=body)).raise_for_status()
        latencies, statuses, sent = [], Counter(), 0
        start = time.perf_counter()
        deadline = start + seconds

        async def worker():
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                t0 = time.perf_counter()
                response = await client.post(url, content=body)
                ok = response.status_code == 200 and len(response.json()["predictions"]) == batch
                latencies.append(time.perf_counter() - t0)
                statuses["200" if ok else str(response.status_code) if response.status_code != 200 else "bad"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    return {"requests": len(latencies), "wall": wall, "rps": len(latencies) / wall, "ips": len(latencies) * batch / wall,
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "503": statuses["503"],
            "errors": sum(n for s, n in statuses.items() if s not in ("200", "503"))}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def versions() -> str:
    found = [f"Python {sys.version.split()[0]}"]
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def table(rows: list[dict], args, report: str, model: str, command: str) -> str:
    lines = [
        report, "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. CPU: {cpu_model()}, "
        f"{os.cpu_count()} cores. Versions: {versions()}.", "",
        f"Command: `{command}`", "",
        f"`dlnotes.serve` on loopback, serving {model}; server: `--max-concurrency {args.server_concurrency} "
        f"--max-queue {args.server_queue} --intra-op-threads 1` (uvicorn, one worker process). Client: one async "
        f"httpx client in another process on the same cores, at most {args.requests} requests or {args.seconds:g} s "
        f"per row after {WARMUP} warm-up requests; TF Serving's row format, `{{\"instances\": [...]}}`, float32 "
        "pixels in [0, 1). Latency: send to parsed answer, per request. 503: refused by the server's concurrency "
        "limit (the queue is sized so that there are none); errors: any other answer than 200. Server CPU: the "
        "server process's CPU time over the row's wall time (100% is one core; the rest of the cores' time went "
        "to the client and to other processes).", "",
        "| concurrency | batch | requests | seconds | requests/s | instances/s | p50 ms | p99 ms | server CPU | 503 "
        "| errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['batch']} | {r['requests']} | {r['wall']:.2f} | {r['rps']:.1f} | "
                     f"{r['ips']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['server_cpu']:.0%} | {r['503']} | "
                     f"{r['errors']} |")
    bad = sum(r["errors"] + r["503"] for r in rows)
    lines += ["", f"Every answer a 200 with one prediction per instance: {'yes' if not bad else f'**no: {bad} were not**'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an existing model base directory (default: export the MNIST model)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--requests", type=int, default=1000, help="requests per row (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per row (default: %(default)s)")
    parser.add_argument("--server-concurrency", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--server-queue", type=int, default=64)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.seconds <= 0:
        parser.error(f"`--requests` and `--seconds` must be positive. Received: {args.requests}, {args.seconds}")
    command = "python scripts/serve_load.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    report = load_report()
    from dlnotes.serve import Service, load_models

    with tempfile.TemporaryDirectory() as tmp:
        base = args.model or export_mnist(Path(tmp) / "models")
        name, versions_ = next(iter(load_models(base).items()))
        signature = versions_[max(versions_)].signature
        model = (f"`{name}` version {max(versions_)} (input {json.dumps(list(signature.shape))} {signature.dtype})"
                 + ("" if args.model else ", `build_torch_model()` exported with `torch.onnx.export(dynamo=True)`"))
        rng = np.random.default_rng(0)
        rows = []
        service = Service(base, log=Path(tmp) / "server.log",
                          args=["--max-concurrency", str(args.server_concurrency), "--max-queue", str(args.server_queue),
                                "--max-batch", str(max(BATCHES)), "--intra-op-threads", "1", "--log-level", "warning",
                                "--no-access-log"]).start()
        url = f"{service.url}/v1/models/{name}:predict"
        proc = service.process
        try:
            for concurrency in CONCURRENCY:
                for batch in BATCHES:
                    x = rng.random((batch, *signature.instance_shape)).astype(signature.dtype)
                    body = json.dumps({"instances": x.tolist()}).encode()
                    cpu = cpu_seconds(proc.pid)
                    row = asyncio.run(load(url, body, batch, concurrency, args.requests, args.seconds))
                    row["server_cpu"] = (cpu_seconds(proc.pid) - cpu) / row["wall"]  # includes the warm-up
                    rows.append({"concurrency": concurrency, "batch": batch, **row})
                    print(f"concurrency {concurrency:2d}, batch {batch:2d}: {row['rps']:7.1f} requests/s, "
                          f"p50 {row['p50']:6.1f} ms, p99 {row['p99']:6.1f} ms", file=sys.stderr)
        finally:
            code = service.stop()
        if code != 0:
            print(service.output()[-2000:], file=sys.stderr)
    text = table(rows, args, report, model, command)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text, encoding="utf-8")
    if code != 0:
        print(f"the server exited with {code} after SIGTERM", file=sys.stderr)
    return 1 if code != 0 or any(r["errors"] or r["503"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
