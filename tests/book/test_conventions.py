"""The book as a whole keeps its promises: prerequisite order, real links, glued numbers,
executable exercise solutions, citations.

Chapters are the notebooks of ``_toc.yml`` in toc order. These tests read the Markdown of
each notebook; the site build (``tests/book/test_build.py``, ``-n -W``) checks that every
``{doc}``/``{ref}``/``{term}``/``{cite}`` target exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.notebooks import ROOT, toc_files, toc_notebooks

TOC = toc_files()
CHAPTERS = toc_notebooks()
IDS = [p.relative_to(ROOT / "book").as_posix() for p in CHAPTERS]

DOC_ROLE = re.compile(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`")
# Decimal numbers and percentages that prose may state without glue: definitional constants
# (hyperparameter defaults the code sets, famous constants). Keep this list short.
ALLOWED_NUMBERS = {"0.5", "0.9", "0.99", "0.999", "0.1", "0.01", "0.001", "0.2", "0.3", "1.0", "0.0"}
VERSION = re.compile(r"\b(?:Python|TensorFlow|PyTorch|torch|Keras|JAX|NumPy|Torch7?|CUDA|Lua|version|v|release)\s+\d+(?:\.\d+)+\b")
MEASURED = re.compile(r"(?<![\w.\\])\d+\.\d+(?!\w|\.\d)|(?<![\w.])\d+(?:\.\d+)?\s?%")


def markdown_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def section(path: Path, heading: str) -> str:
    """The Markdown under ``## heading`` up to the next ``## `` heading."""
    text = "\n".join(markdown_cells(path))
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"missing '## {heading}' section"
    return match.group(1)


def resolve_doc(path: Path, target: str) -> Path:
    """The file a ``{doc}`` target names: absolute from the repository root or relative to ``path``."""
    target = target.strip()
    base = ROOT / target.lstrip("/") if target.startswith("/") else path.parent / target
    for suffix in (".ipynb", ".md"):
        candidate = base.parent / (base.name + suffix)
        if candidate.exists():
            return candidate.resolve()
    raise AssertionError(f"{{doc}}`{target}` names no chapter")


def doc_links(path: Path, text: str) -> list[Path]:
    return [resolve_doc(path, t) for t in DOC_ROLE.findall(text)]


def prose(text: str) -> str:
    """Markdown with code, roles, URLs, directive options and display math removed."""
    text = re.sub(r"^(```+|~~~+)(?!\{)[^\n]*\n.*?^\1\s*$", "", text, flags=re.M | re.S)  # code fences
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    text = re.sub(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", "", text, flags=re.S)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", "", text)  # {glue:text}`x:.2f`, {cite}`k`, {doc}`p`
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"^:[\w-]+:.*$", "", text, flags=re.M)  # directive options
    return VERSION.sub("", text)


def unglued_numbers(path: Path) -> list[str]:
    found = []
    for text in markdown_cells(path):
        found += [m for m in MEASURED.findall(prose(text)) if m.strip() not in ALLOWED_NUMBERS]
    return found


# --- order and links ------------------------------------------------------------------------


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_prerequisites_link_only_to_earlier_chapters(path):
    position = TOC.index(path)
    for target in doc_links(path, section(path, "Prerequisites")):
        assert target in TOC, f"Prerequisites link to {target.name}, which is not in _toc.yml"
        assert TOC.index(target) < position, (
            f"Prerequisites link to {target.relative_to(ROOT)}, which comes after this chapter in _toc.yml")


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_whats_next_links_to_the_next_chapter(path):
    following = TOC[TOC.index(path) + 1:]
    links = doc_links(path, section(path, "What's next"))
    assert links, "What's next must link to the next chapter with {doc}"
    assert following, "the last toc entry should not be a chapter"
    assert links[0] == following[0], (
        f"What's next first links to {links[0].relative_to(ROOT)}; the next in _toc.yml is "
        f"{following[0].relative_to(ROOT)}")


PROMISE = re.compile(r"[^.\n]*\b(?:later|future|coming|upcoming|next|following|forthcoming)\s+(?:chapter|lesson|part)s?\b[^.\n]*",
                     re.I)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_no_promise_without_a_link(path):
    for text in markdown_cells(path):
        for sentence in PROMISE.findall(text):
            assert "{doc}" in sentence or "{ref}" in sentence, (
                f"a sentence promises another chapter without linking it: {sentence.strip()!r}")


def test_links_cover_the_book():
    """Every chapter links somewhere; the count is reported in the closing note."""
    counts = {p.name: len(DOC_ROLE.findall("\n".join(markdown_cells(p)))) for p in CHAPTERS}
    assert all(counts.values()), f"chapters without a single {{doc}} link: {[k for k, v in counts.items() if not v]}"


# --- numbers come from cells -------------------------------------------------------------


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_measured_numbers_in_prose_are_glued(path):
    found = unglued_numbers(path)
    assert not found, (
        f"numbers typed into Markdown: {found}. Insert them with {{glue:text}} from the cell that "
        f"computes them, or say it without the number (allowed constants: {sorted(ALLOWED_NUMBERS)})")


def test_the_number_check_catches_a_typed_number(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [
        "Accuracy reached 0.941 ($\\alpha = 0.01$, `lr=0.37`, {glue:text}`acc:.3f`, TensorFlow 2.16), 93% of it. The gap was 0.004."]}]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert unglued_numbers(path) == ["0.941", "93%", "0.004"]


# --- exercises and citations ------------------------------------------------------------------


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_exercises_have_an_executed_code_solution(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = "\n".join(markdown_cells(path))
    assert re.search(r"^```+\{exercise\}", text, re.M), "no {exercise} directive"
    inside, solved = False, 0
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if re.search(r"\{solution-start\}", source):
                inside = True
            if re.search(r"\{solution-end\}", source):
                inside = False
        elif inside and source.strip():
            ignored = "nbval-ignore-output" in cell.get("metadata", {}).get("tags", [])
            if cell["outputs"] and not ignored:
                solved += 1
    assert not inside, "a {solution-start} has no {solution-end}"
    assert solved, "no solution code cell with a checked output between {solution-start} and {solution-end}"


CITED_NAMES = re.compile(r"\bet al\.|\b(?:Goodfellow|Rumelhart|LeCun|Hochreiter|Schmidhuber|Kingma|Loshchilov|Glorot|Cybenko)\b")


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_works_named_are_cited(path):
    for text in markdown_cells(path):
        for paragraph in re.split(r"\n\s*\n", text):
            if CITED_NAMES.search(prose(paragraph)):
                assert "{cite" in paragraph, f"a work is named without {{cite}}: {paragraph.strip()[:160]!r}"


def test_bibliography_keys_are_used():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.M))
    used = set()
    for path in CHAPTERS:
        for role in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", "\n".join(markdown_cells(path))):
            used |= {k.strip() for k in role.split(",")}
    assert used, "no chapter cites anything"
    assert used <= keys, f"cited but not in references.bib: {sorted(used - keys)}"
