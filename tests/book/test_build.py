"""The website builds from the stored outputs with no warnings (-n -W --keep-going)."""

import subprocess
import sys
from pathlib import Path

from tests.notebooks import ROOT


def test_site_builds_without_warnings(tmp_path):
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--path-output", str(tmp_path), "-n", "-W", "--keep-going"],
        capture_output=True, text=True, timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    assert "WARNING" not in log, f"the build printed warnings:\n{log[-6000:]}"
    assert (tmp_path / "_build" / "html" / "index.html").is_file()
