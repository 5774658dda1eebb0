"""What the tests need to know about the book: the chapters listed in ``_toc.yml``."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def toc_files() -> list[Path]:
    """Every file the table of contents lists, resolved to its path on disk (with suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    resolved = []
    for entry in entries:
        matches = [ROOT / f"{entry}{suffix}" for suffix in (".ipynb", ".md") if (ROOT / f"{entry}{suffix}").exists()]
        if len(matches) != 1:
            raise FileNotFoundError(f"_toc.yml entry {entry!r} matches {len(matches)} files (expected one .ipynb or .md)")
        resolved.append(matches[0])
    return resolved


def toc_notebooks() -> list[Path]:
    return [p for p in toc_files() if p.suffix == ".ipynb"]
