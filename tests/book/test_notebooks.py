"""Notebook hygiene and the table of contents: the conventions every chapter follows.

See README.md, "Writing a chapter". nbval itself (the outputs) runs over book/ in the
same pytest session; these tests check what nbval does not.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.notebooks import BOOK, ROOT, toc_files, toc_notebooks

# Every notebook on disk (the toc test below checks they are exactly the toc's notebooks).
NOTEBOOKS = sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
IDS = [str(p.relative_to(BOOK)) for p in NOTEBOOKS]
MACHINE_PATHS = re.compile(r"(/work/|/home/|/root/|/Users/|/tmp/|[A-Z]:\\Users|site-packages|/private/var/)")
# Keras's verbose=1 bar: "━━━━━━ 0s 3ms/step" or " 12/125 ━━━━━━"; model.summary() also draws with ━.
KERAS_PROGRESS_BAR = re.compile(r"━+\s+\d+(\.\d+)?m?s\b|\d+/\d+\s+━")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colour codes
IGNORED = {"nbval-ignore-output"}
FORBIDDEN_TAGS = {"nbval-skip", "skip-execution"}
SKELETON = ("Overview", "Prerequisites", "Summary", "What's next")


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def output_text(out) -> str:
    """The text of a stream or the text/plain of a result, as one string."""
    def joined(value):
        return "".join(value) if isinstance(value, list) else value
    return joined(out.get("text", "")) + joined(out.get("data", {}).get("text/plain", ""))


def tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def test_toc_and_book_folder_agree():
    on_disk = {p for p in BOOK.rglob("*") if p.suffix in (".ipynb", ".md") and ".ipynb_checkpoints" not in p.parts}
    listed = set(toc_files())
    assert on_disk - listed == set(), f"chapters on disk but not in _toc.yml: {sorted(on_disk - listed)}"
    assert listed - on_disk == set(), f"_toc.yml lists files outside book/: {sorted(listed - on_disk)}"
    assert toc_notebooks(), "the table of contents lists no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_first_cell_sets_up_backend_colab_seed_and_report(path):
    first = code_cells(load(path))[0]
    src = "".join(first["source"])
    backend = re.search(r'os\.environ\["KERAS_BACKEND"\]\s*=\s*"torch"', src)
    assert backend, "first code cell must set os.environ['KERAS_BACKEND'] = 'torch'"
    keras_import = re.search(r"^\s*(import|from)\s+(keras|tensorflow)", src, re.M)
    assert keras_import is None or keras_import.start() > backend.start(), "KERAS_BACKEND must be set before importing keras"
    assert re.search(r'if\s+"google\.colab"\s+in\s+sys\.modules:\s*\n\s+%pip install', src), (
        "first code cell must install dlnotes only on Colab: if \"google.colab\" in sys.modules: %pip install ..."
    )
    assert "seed_everything(" in src and "env_report(" in src, "first code cell must seed and print env_report()"
    assert "nbval-ignore-output" in tags(first), "the environment report varies by machine: tag the cell nbval-ignore-output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executed_in_order_with_clean_outputs(path):
    nb = load(path)
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", "kernelspec must be python3"
    assert "allow_errors" not in json.dumps(nb["metadata"]), "never allow_errors: tag the cell raises-exception"
    cells = code_cells(nb)
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"run top to bottom in a fresh kernel; counts are {counts}"
    for i, cell in enumerate(cells, 1):
        where = f"code cell {i}"
        assert not tags(cell) & FORBIDDEN_TAGS, f"{where}: skipped cells are not allowed ({tags(cell) & FORBIDDEN_TAGS})"
        for out in cell["outputs"]:
            text = output_text(out)
            if out["output_type"] == "error":
                assert "raises-exception" in tags(cell), f"{where}: stored error {out['ename']} without raises-exception"
            assert not MACHINE_PATHS.search(text), f"{where}: machine-specific path in output: {MACHINE_PATHS.search(text)[0]}"
            assert not KERAS_PROGRESS_BAR.search(ANSI.sub("", text)), f"{where}: Keras progress bar in output: use verbose=2 or verbose=0"
            if not tags(cell) & IGNORED:
                assert out.get("name") != "stderr", f"{where}: stderr in a checked cell (warnings vary by machine): {text[:200]}"
                assert "\r" not in text, f"{where}: carriage returns (a progress bar) in a checked cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_skeleton_and_size(path):
    nb = load(path)
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.match(r"# \S", "".join(nb["cells"][0]["source"])), "first cell must be the chapter's # title"
    for heading in SKELETON:
        assert re.search(rf"^## {re.escape(heading)}\s*$", markdown, re.M), f"missing '## {heading}' section"
    size = path.stat().st_size
    assert size < 2_000_000, f"{size / 1e6:.1f} MB is too heavy for a web page: shrink figures or outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_literalincludes_point_at_the_package(path):
    nb = load(path)
    for cell in nb["cells"]:
        for target in re.findall(r"```\{literalinclude\}\s+(\S+)", "".join(cell["source"])):
            resolved = (path.parent / target).resolve()
            assert resolved.is_file(), f"literalinclude target {target} does not exist"
            assert resolved.is_relative_to(ROOT / "dlnotes"), f"show the package's source, not {target}"
