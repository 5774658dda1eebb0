"""The website builds from the stored outputs with no warnings (-n -W --keep-going).

The build itself is the session fixture ``site_build`` (tests/book/conftest.py), so the
link, offline and browser tests read the same HTML and the book is built once per run.
"""

import pytest


def test_site_builds_without_warnings(site_build):
    if site_build.returncode is None:
        pytest.skip("DLNOTES_SITE_HTML names an existing build; the build itself was not run")
    log = site_build.log
    assert site_build.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    assert "WARNING" not in log, f"the build printed warnings:\n{log[-6000:]}"
    assert (site_build.html / "index.html").is_file()


def test_math_is_served_locally(site_html):
    """The offline MathJax (``_ext/offline_mathjax.py``) is in the build, with its fonts."""
    mathjax = site_html / "_static" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").is_file()
    fonts = list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20, fonts
    assert (mathjax / "input" / "tex" / "extensions" / "boldsymbol.js").is_file()
