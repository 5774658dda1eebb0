"""Links and assets of the built site (static checks, no browser).

- Every internal link (``<a href>``) leads to a file of the build, and every ``#anchor``
  to an element with that id there.
- Every asset a page loads (scripts, stylesheets, images, fonts, frames) is a local file;
  no page, stylesheet or MathJax setting refers to the internet.

External links are not checked here (the suite runs offline): the weekly workflow lists
and checks them with Sphinx's linkcheck builder. To list them from a build::

    python -m tests.book.test_links _build/html
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from tests.book.conftest import site_pages

# Attributes through which a page loads something (the browser fetches these by itself).
ASSET_ATTRS = {
    "script": ("src",), "img": ("src", "srcset"), "source": ("src", "srcset"), "iframe": ("src",),
    "video": ("src", "poster"), "audio": ("src",), "embed": ("src",), "object": ("data",),
    "input": ("src",), "track": ("src",),
}
LOADING_LINK_RELS = {"stylesheet", "icon", "shortcut", "preload", "modulepreload", "prefetch", "manifest", "apple-touch-icon"}
NON_LINK_SCHEMES = ("mailto:", "tel:", "javascript:", "data:")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


class _PageParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []   # <a href>
        self.assets: list[str] = []  # what the page loads
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href") is not None:
            self.links.append(attrs["href"])
        if tag == "link" and attrs.get("href"):
            rels = set((attrs.get("rel") or "").lower().split())
            if rels & LOADING_LINK_RELS:
                self.assets.append(attrs["href"])
        for attr in ASSET_ATTRS.get(tag, ()):
            value = attrs.get(attr)
            if value:
                if attr == "srcset":
                    self.assets += [part.strip().split()[0] for part in value.split(",") if part.strip()]
                else:
                    self.assets.append(value)
        self._in_script = tag == "script" and not attrs.get("src")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


@lru_cache(maxsize=None)
def parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def is_external(url: str) -> bool:
    return urlsplit(url).scheme in {"http", "https", "ws", "wss", "ftp"} or url.startswith("//")


def resolve(html: Path, page: Path, url: str) -> tuple[Path, str]:
    """The file under ``html`` that ``url`` on ``page`` points at, and its fragment."""
    base = "file:///" + page.as_posix()
    parts = urlsplit(urljoin(base, url))
    path = unquote(parts.path).lstrip("/")
    target = html / path
    if not path or path.endswith("/"):
        target = target / "index.html"
    return target, unquote(parts.fragment)


def test_every_internal_link_and_anchor_resolves(site_html):
    broken = []
    checked = 0
    for page in site_pages(site_html):
        for href in parse(site_html / page).links:
            if not href or href.startswith(NON_LINK_SCHEMES) or is_external(href):
                continue
            checked += 1
            target, fragment = resolve(site_html, page, href)
            if not target.resolve().is_relative_to(site_html.resolve()):
                broken.append(f"{page}: {href!r} leaves the site")
            elif not target.is_file():
                broken.append(f"{page}: {href!r} -> missing {target.relative_to(site_html)}")
            elif fragment and target.suffix == ".html" and fragment not in parse(target).ids:
                broken.append(f"{page}: {href!r} -> no id {fragment!r} in {target.relative_to(site_html)}")
    assert checked > 100, f"only {checked} internal links found: is the parser broken?"
    assert not broken, f"{len(broken)} broken internal link(s) of {checked}:\n" + "\n".join(broken)


def test_pages_load_nothing_from_the_internet(site_html):
    """Scripts, stylesheets, images and fonts are local files of the build (offline site)."""
    problems = []
    for page in site_pages(site_html):
        parsed = parse(site_html / page)
        for url in parsed.assets:
            if url.startswith("data:"):
                continue
            if is_external(url):
                problems.append(f"{page}: loads {url}")
                continue
            target, _ = resolve(site_html, page, url.split("?")[0])
            if not target.is_file():
                problems.append(f"{page}: loads missing local file {url}")
        for script in parsed.inline_scripts:
            for found in re.findall(r"""["'](https?://[^"']+\.(?:js|css|woff2?|ttf|otf))["']""", script):
                problems.append(f"{page}: an inline script loads {found}")
    assert not problems, "\n".join(problems)


def test_stylesheets_load_nothing_from_the_internet(site_html):
    """No ``url(https://...)`` or ``@import`` of a web font or stylesheet in the CSS we ship."""
    problems = []
    for css in sorted((site_html / "_static").rglob("*.css")):
        text = re.sub(r"/\*.*?\*/", "", css.read_text(encoding="utf-8", errors="replace"), flags=re.S)
        for match in CSS_URL.finditer(text):
            url = match.group(1) or match.group(2)
            if is_external(url):
                problems.append(f"{css.relative_to(site_html)}: {url}")
    assert not problems, "\n".join(problems)


def external_links(html: Path) -> dict[str, list[str]]:
    """Every external ``<a href>`` of the build, with the pages that carry it."""
    found: dict[str, list[str]] = defaultdict(list)
    for page in site_pages(html):
        for href in parse(html / page).links:
            if is_external(href):
                found[href].append(page.as_posix())
    return dict(sorted(found.items()))


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
    for url, pages in external_links(root).items():
        print(f"{url}\t{len(pages)} page(s): {', '.join(sorted(set(pages))[:3])}")
