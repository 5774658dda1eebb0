"""Shared fixtures for the site tests: one build of the book per session, a local web
server for it, and a headless Chromium driven by Playwright.

- ``site_build`` builds the book once (``jupyter-book build -n -W --keep-going`` into a
  session temp folder, about a minute); ``test_build.py`` checks its log, the link,
  browser and offline tests read its HTML. ``DLNOTES_SITE_HTML=/path/to/_build/html``
  reuses an existing build instead (for quick local iteration; the build test is then
  skipped).
- ``browser`` is Debian's ``chromium`` (``apt-get install -y chromium``; Playwright
  cannot download its own browsers here), found on PATH or named by
  ``DLNOTES_CHROMIUM``. A missing browser is a skip that says how to install it, and a
  failure under ``CI=true``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.notebooks import ROOT

BUILD_TIMEOUT_S = 900
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "install Debian's Chromium (as root: apt-get update && apt-get install -y chromium), "
    "or point DLNOTES_CHROMIUM at a Chromium/Chrome binary"
)

# Figures the browser tests collect, printed at the end of the run (pytest_terminal_summary).
BROWSER_FIGURES: dict[str, object] = {}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str):
    """Skip locally; fail under CI=true, where every prerequisite must be installed."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@dataclass
class SiteBuild:
    html: Path
    returncode: int | None  # None: an existing build named by DLNOTES_SITE_HTML
    log: str


@pytest.fixture(scope="session")
def site_build(tmp_path_factory) -> SiteBuild:
    existing = os.environ.get("DLNOTES_SITE_HTML")
    if existing:
        html = Path(existing).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"DLNOTES_SITE_HTML={existing} holds no index.html", pytrace=False)
        return SiteBuild(html=html, returncode=None, log="")
    out = tmp_path_factory.mktemp("site")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "-n", "-W", "--keep-going"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    return SiteBuild(html=out / "_build" / "html", returncode=result.returncode, log=result.stdout + result.stderr)


@pytest.fixture(scope="session")
def site_html(site_build) -> Path:
    """The built site's folder; fails (once per test) if the build produced no site."""
    if not (site_build.html / "index.html").is_file():
        pytest.fail(f"the site build produced no index.html:\n{site_build.log[-4000:]}", pytrace=False)
    return site_build.html


def site_pages(html: Path) -> list[Path]:
    """Every HTML page of the site, relative to its root (not the theme's or MathJax's assets)."""
    skip = {"_static", "_sources", "_images"}
    return sorted(p.relative_to(html) for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def site_url(site_html):
    """The built site served over HTTP from 127.0.0.1 on a free port; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def find_chromium() -> str | None:
    named = os.environ.get("DLNOTES_CHROMIUM")
    if named:
        return named if Path(named).is_file() else shutil.which(named)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Playwright's sync API), closed at the end of the session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright is not installed: run the README's setup command (pip install -c constraints.txt -e '.[all]')")
    executable = find_chromium()
    if executable is None:
        skip_or_fail(f"no Chromium found for the browser tests: {INSTALL_HINT}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--no-default-browser-check"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def pytest_terminal_summary(terminalreporter):
    if BROWSER_FIGURES:
        terminalreporter.write_sep("-", "site in the browser")
        for key, value in BROWSER_FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
