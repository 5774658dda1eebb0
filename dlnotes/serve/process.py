"""The service in a subprocess: start ``python -m dlnotes.serve`` on a free loopback port, wait, stop.

One helper for everything that needs a real server: the production chapter, ``tests/test_serve.py``
and ``scripts/serve_load.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

__all__ = ["free_port", "Service"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Service:
    """``python -m dlnotes.serve --model MODEL_DIR --port PORT [args]`` on ``127.0.0.1``.

    ``with Service(model_dir) as service:`` starts the server on a free port and waits until
    ``GET /healthz`` answers; on exit it sends SIGTERM (a graceful shutdown: requests in flight
    finish) and waits for the process to end. :meth:`start`, :meth:`stop` and :meth:`kill` do the
    same by hand.

    Args:
        model_dir: a model base directory as :func:`dlnotes.serve.write_model` lays it out.
        args: further command-line options, e.g. ``["--max-concurrency", "2"]``.
        timeout: seconds to wait for the server to answer, and to stop.
        log: a file for the server's output (kept); ``None``: a temporary file, read into
            :attr:`log_text` when the server stops and then deleted.

    Attributes:
        url: ``http://127.0.0.1:PORT``; port: ``PORT``; process: the ``subprocess.Popen``.
        returncode: the exit status once stopped (0 after a graceful shutdown).

    Raises:
        TypeError, ValueError: bad arguments, named.
        RuntimeError: the server exited or did not answer within ``timeout``; the message holds
            the end of its output.
    """

    def __init__(self, model_dir, *, args: Sequence[str] = (), timeout: float = 60, log=None):
        if not isinstance(model_dir, (str, os.PathLike)) or not Path(model_dir).is_dir():
            raise ValueError(f"`model_dir` must name an existing directory. Received: model_dir={str(model_dir)!r}")
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise TypeError(f"`args` must be a list of strings. Received: args={args!r}")
        self.model_dir, self.args, self.timeout = Path(model_dir), list(args), float(timeout)
        self._keep_log = log is not None
        self.log = Path(log) if log is not None else None
        self.port = self.url = self.process = self.returncode = None
        self.log_text = ""

    def start(self) -> "Service":
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if self.log is None:
            handle, name = tempfile.mkstemp(prefix="dlnotes-serve-", suffix=".log")
            os.close(handle)
            self.log = Path(name)
        command = [sys.executable, "-m", "dlnotes.serve", "--model", str(self.model_dir), "--port", str(self.port),
                   *self.args]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The service exited with code {self.process.returncode} before answering "
                                   f"/healthz:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"The service did not answer /healthz within {self.timeout} s:\n{self.output()}")

    def output(self) -> str:
        """The end of what the server printed (so far)."""
        if self.log is not None and self.log.exists():
            return self.log.read_text(errors="replace")[-4000:]
        return self.log_text

    def stop(self) -> int:
        """SIGTERM, then wait: the graceful shutdown. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._finish()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, for a server that must not linger (a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
        self.returncode = self.process.wait(timeout=10)
        self._finish()

    def _finish(self) -> None:
        if not self._keep_log and self.log is not None and self.log.exists():
            self.log_text = self.output()
            self.log.unlink()

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
