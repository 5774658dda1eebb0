"""Run a chapter the way a learner does locally: in JupyterLab, in a browser.

The README's setup command installs JupyterLab. This test starts it headless on a free
loopback port (a random token, no browser of its own, isolated config/runtime/settings
folders), opens a copy of a cheap chapter in Chromium, runs its first cell with
Shift+Enter and waits for ``dlnotes.env_report()`` to print, which proves the notebook's
kernel is the environment that has ``dlnotes``. The ``python3`` kernel the chapter names is
pinned to this interpreter (a kernel spec in a temporary ``JUPYTER_PATH``, and a temporary
user data folder), so a ``python3`` kernel spec installed elsewhere on the machine, for
another Python, cannot be picked instead. The server and its kernel are always
stopped at the end, whatever happened. The chapter is copied to a temporary folder, so
JupyterLab's autosave never touches the repository.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.book.conftest import BROWSER_FIGURES, skip_or_fail
from tests.notebooks import ROOT

CHAPTER = "book/foundations/why_frameworks.ipynb"
START_TIMEOUT_S = 120
KERNEL_TIMEOUT_MS = 120_000
CELL_TIMEOUT_MS = 240_000  # importing torch and Keras on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5.0):
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        body = response.read()
    return json.loads(body) if body else None


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - best effort: psutil missing or the process gone
        return []


def _stop(proc: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels and the server down politely, then make sure nothing is left."""
    children = _descendants(proc.pid)
    if proc.poll() is None:
        try:
            for kernel in _api(base, token, "api/kernels") or []:
                _api(base, token, f"api/kernels/{kernel['id']}", method="DELETE", timeout=15)
            _api(base, token, "api/shutdown", method="POST")
        except (OSError, urllib.error.URLError, ValueError):
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
    for child in children:  # kernels run in sessions of their own
        try:
            if child.is_running():
                child.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of ``CHAPTER``; yields (base URL, token)."""
    lab = Path(sys.executable).parent / "jupyter-lab"
    if not lab.exists():
        skip_or_fail("JupyterLab is not installed: run the README's setup command (pip install -c constraints.txt -e '.[all]')")
    work = tmp_path / "work"
    (work / CHAPTER).parent.mkdir(parents=True)
    shutil.copy(ROOT / CHAPTER, work / CHAPTER)
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTER_DATA_DIR", "data"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")):
        env[var] = str(tmp_path / sub)
    # JUPYTER_PATH is searched first: its python3 kernel runs this interpreter, whatever
    # other python3 kernel specs the machine has (~/.local/share/jupyter, /usr/local/share/jupyter).
    spec_dir = tmp_path / "kernels-path" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python",
    }))
    env["JUPYTER_PATH"] = str(tmp_path / "kernels-path")
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "jupyterlab.log"
    cmd = [
        str(lab), "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=",
    ]
    if os.geteuid() == 0:  # CI runs as root, where Jupyter refuses to start without this
        cmd.append("--allow-root")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=work, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}", pytrace=False)
            try:
                _api(base, token, "api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}", pytrace=False)
                time.sleep(0.5)
        yield base, token, log_path
    finally:
        _stop(proc, base, token)


def _wait_for_kernel_connection(page, base: str, token: str, timeout_s: float) -> None:
    """Poll the server until the page's kernel is idle with an open connection.

    It waits with ``page.wait_for_timeout``, never ``time.sleep``: the context's request
    route is answered by this thread, so a sleeping thread would hold every request of the
    page, the one that starts the kernel among them.
    """
    deadline = time.monotonic() + timeout_s
    kernels = []
    while time.monotonic() < deadline:
        kernels = _api(base, token, "api/kernels") or []
        if any(k.get("connections", 0) >= 1 and k.get("execution_state") == "idle" for k in kernels):
            return
        page.wait_for_timeout(250)
    sessions = _api(base, token, "api/sessions")
    pytest.fail(f"no idle kernel with an open connection within {timeout_s:.0f} s: kernels {kernels}, sessions {sessions}", pytrace=False)


def test_kernel_is_this_environment(jupyterlab):
    base, token, _ = jupyterlab
    specs = _api(base, token, "api/kernelspecs")
    python3 = specs["kernelspecs"]["python3"]["spec"]
    assert python3["argv"][0] == sys.executable, (
        f"JupyterLab's python3 kernel runs {python3['argv'][0]!r}, not this environment's {sys.executable!r}")


def test_first_cell_runs_in_jupyterlab(browser, jupyterlab):
    base, token, log_path = jupyterlab
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    console_errors, external = [], []
    try:
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
        page.on("request", lambda req: req.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
                or external.append(req.url))
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1"))
                      else route.abort("blockedbyclient"))
        page.goto(f"{base}lab/tree/{CHAPTER}?token={token}", wait_until="domcontentloaded", timeout=KERNEL_TIMEOUT_MS)
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=KERNEL_TIMEOUT_MS)
        # The kernel named in the notebook (python3) starts by itself: no "Select Kernel" dialog.
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=KERNEL_TIMEOUT_MS)
        assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").inner_text()
        # The indicator reads "idle" while the page still shows "No Kernel | Initializing"; a cell
        # run then is lost. The server knows: wait until its kernel has a connection.
        _wait_for_kernel_connection(page, base, token, timeout_s=KERNEL_TIMEOUT_MS / 1000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=KERNEL_TIMEOUT_MS)
        first = page.locator(".jp-Notebook .jp-CodeCell").first
        first.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        # Wait for the report's last line ("device ..."), or for a traceback, so that a failure
        # shows what the cell printed.
        output = first.locator(".jp-OutputArea-output")
        try:
            output.filter(has_text=re.compile(r"device\s|Error|Traceback")).first.wait_for(timeout=CELL_TIMEOUT_MS)
        except Exception as exc:  # noqa: BLE001 - re-raised with what the page and the server showed
            shown = first.locator(".jp-OutputArea").inner_text() if first.locator(".jp-OutputArea").count() else ""
            status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
            status = f"{status}, prompt {first.locator('.jp-InputPrompt').inner_text()!r}"
            if os.environ.get("DLNOTES_SCREENSHOTS"):
                page.screenshot(path=str(Path(os.environ["DLNOTES_SCREENSHOTS"]) / "jupyterlab-failure.png"))
            pytest.fail(f"the first cell printed no environment report within {CELL_TIMEOUT_MS / 1000:.0f} s "
                        f"(kernel status {status!r}); its output area shows {shown!r}; "
                        f"JupyterLab's log ends:\n{log_path.read_text()[-3000:]}\n({exc})", pytrace=False)
        text = first.locator(".jp-OutputArea").inner_text()
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=CELL_TIMEOUT_MS)
        prompt = first.locator(".jp-InputPrompt").inner_text()
    finally:
        context.close()
    assert "Python" in text and "KERAS_BACKEND=torch" in text and "device" in text, text
    assert "Traceback" not in text and "Error" not in text, text
    assert "[1]" in prompt, f"the first cell did not run (prompt {prompt!r})"
    assert not external, f"JupyterLab requested outside addresses: {external}"
    BROWSER_FIGURES["JupyterLab"] = f"{CHAPTER}: first cell ran, environment report shown ({len(text.splitlines())} lines)"
