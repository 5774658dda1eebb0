"""The install name: ``dlnotes`` on PyPI is an unrelated 2022 project, so nothing installs it.

The repository URL lives in ``_config.yml`` (``repository.url``, which the launch buttons use);
every Colab install cell and every GitHub URL in the README and the chapters must match it.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.notebooks import ROOT, toc_notebooks

REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"].rstrip("/")
# "pip install dlnotes", "pip install -q dlnotes[book]", "pip install 'dlnotes>=0.1'": a PyPI install.
PYPI_INSTALL = re.compile(r"pip\s+install\s+(?:-\S+\s+)*[\"']?dlnotes(?:\[[^\]]*\])?(?:[<>=!~][^\s\"']*)?[\"']?(?=\s|$)(?!\s*@)")
# A GitHub URL of this course (a repository called dlnotes, or anything under the dlnotes owner).
GITHUB = re.compile(r"https://github\.com/(?:dlnotes/[\w.-]+|[\w.-]+/dlnotes\b)")


def texts():
    yield "README.md", (ROOT / "README.md").read_text(encoding="utf-8")
    yield "environment.yml", (ROOT / "environment.yml").read_text(encoding="utf-8")
    for path in toc_notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        yield path.relative_to(ROOT).as_posix(), "\n".join("".join(c["source"]) for c in nb["cells"])


@pytest.mark.parametrize("name,text", list(texts()), ids=[n for n, _ in texts()])
def test_nothing_installs_the_unrelated_pypi_project(name, text):
    assert not PYPI_INSTALL.search(text), f"{name} installs `dlnotes` from PyPI: {PYPI_INSTALL.search(text)[0]!r}"


@pytest.mark.parametrize("name,text", list(texts()), ids=[n for n, _ in texts()])
def test_github_urls_are_the_configured_repository(name, text):
    for url in GITHUB.findall(text):
        assert url.rstrip("/").removesuffix(".git") == REPO_URL, (
            f"{name} names {url}; the repository URL lives in _config.yml ({REPO_URL})")


@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda p: p.stem)
def test_colab_cell_installs_from_the_configured_repository(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    install = re.search(r"%pip install[^\n]*", first)
    assert install, "the first code cell has no Colab %pip install"
    assert f"git+{REPO_URL}" in install[0], f"the Colab install must use git+{REPO_URL}: {install[0]!r}"


def test_the_pypi_pattern_catches_a_bare_install():
    assert PYPI_INSTALL.search("!pip install -q dlnotes[book]\n")
    assert PYPI_INSTALL.search("pip install dlnotes")
    assert not PYPI_INSTALL.search('%pip install -q "dlnotes[book] @ git+https://github.com/x/y"')
    assert not PYPI_INSTALL.search('pip install -e ".[all]"')
