"""What the tests need to know about the book: the chapters listed in ``_toc.yml``.

The table of contents is read by ``scripts/common.py`` (the scripts never import ``tests``);
this module re-exports it under the names the tests use.
"""

from __future__ import annotations

from scripts.common import BOOK, ROOT, toc_files, toc_notebooks

__all__ = ["BOOK", "ROOT", "toc_files", "toc_notebooks"]
