"""``python -m dlnotes.serve`` / ``dlnotes-serve``: load the models, then run uvicorn until SIGTERM.

Bad options and a bad model base directory stop it before it listens, with argparse's usage and
a message naming the option and echoing its value (exit status 2); a port already in use stops
it with uvicorn's startup-failure status, 3. SIGTERM (and Ctrl+C) shut it
down gracefully: uvicorn stops accepting connections, lets the requests in flight finish (for
at most ``--graceful-timeout`` seconds), and the process exits 0 (130 after Ctrl+C).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from dlnotes._checks import check_positive_float, check_positive_int

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlnotes-serve", description="Serve ONNX models over TensorFlow Serving's REST API.")
    parser.add_argument("--model", "--model-base-path", dest="model", type=Path, required=True, metavar="PATH",
                        help="the model base directory: PATH/<name>/<version>/{model.onnx, signature.json}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8501, help="TCP port (default: %(default)s, TF Serving's REST port)")
    parser.add_argument("--max-concurrency", type=int, default=4,
                        help="predictions running at once, in a thread pool (default: %(default)s)")
    parser.add_argument("--max-queue", type=int, default=8,
                        help="predictions waiting for a thread; beyond that, 503 (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=64, help="instances per request (default: %(default)s)")
    parser.add_argument("--max-body-bytes", type=int, default=4 * 2**20,
                        help="request body size limit, 413 beyond it (default: %(default)s)")
    parser.add_argument("--retry-after", type=int, default=1, help="seconds in a 503's Retry-After (default: 1)")
    parser.add_argument("--intra-op-threads", type=int, default=1,
                        help="onnxruntime threads per prediction (default: %(default)s)")
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="seconds to let requests in flight finish after SIGTERM (default: %(default)s)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.add_argument("--no-access-log", dest="access_log", action="store_false", help="no line per request")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if not 1 <= args.port <= 65535:
        raise ValueError(f"`--port` must be an integer in [1, 65535]. Received: --port={args.port}")
    for option in ("max_concurrency", "max_batch", "max_body_bytes", "retry_after", "intra_op_threads"):
        check_positive_int("--" + option.replace("_", "-"), getattr(args, option))
    if args.max_queue < 0:
        raise ValueError(f"`--max-queue` must be a non-negative integer. Received: --max-queue={args.max_queue}")
    check_positive_float("--graceful-timeout", args.graceful_timeout)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, load every model once, serve until a signal; the exit status."""
    import uvicorn

    from dlnotes.serve.app import create_app
    from dlnotes.serve.repository import load_models

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_args(args)
        models = load_models(args.model, intra_op_threads=args.intra_op_threads)
    except (TypeError, ValueError) as error:
        parser.error(str(error))  # exits 2
    app = create_app(models, max_concurrency=args.max_concurrency, max_queue=args.max_queue,
                     max_batch=args.max_batch, max_body_bytes=args.max_body_bytes, retry_after=args.retry_after)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                            timeout_graceful_shutdown=args.graceful_timeout, http="h11", loop="asyncio",
                            lifespan="on", timeout_keep_alive=5)
    # uvicorn handles SIGTERM/SIGINT itself, then restores the handlers it found and raises the signal
    # again; these handlers receive it, so the process ends with our status, not killed by the signal.
    received: list[int] = []
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in handled}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 130 if signal.SIGINT in received else 0


if __name__ == "__main__":
    sys.exit(main())
