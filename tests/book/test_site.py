"""The built site in a real browser: headless Chromium (Playwright) on a local server.

Every page of ``_build/html`` is opened from ``127.0.0.1`` at desktop width and at a
390 px phone width, and must show: no console error, no failed request, no request
leaving localhost (they are blocked and counted), every image loaded, every formula
typeset by the local MathJax (no raw ``\\(``, ``\\[``, ``$$`` left, no TeX error), the
sidebar listing every entry of ``_toc.yml``, no horizontal scrolling on the phone.
Search for "LSTM" finds the RNN chapter, each chapter's Colab button opens that
chapter's notebook, and a page read from ``file://`` typesets its math too.

``DLNOTES_SCREENSHOTS=/some/folder`` saves a desktop and a phone screenshot of the RNN
chapter there. Figures (pages, errors, formulas) are printed at the end of the run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import yaml

from tests.book.conftest import BROWSER_FIGURES, site_pages
from tests.notebooks import ROOT, toc_files

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
PAGE_TIMEOUT_MS = 60_000
SEARCH_TERM, SEARCH_PAGE = "LSTM", "book/architectures/rnn"
SCREENSHOT_PAGE = "book/architectures/rnn.html"
REFRESH = re.compile(r'<meta[^>]+http-equiv="refresh"[^>]+content="\d+;\s*url=([^"]+)"', re.I)

# Runs in the page once it has loaded: waits for images and MathJax, then measures.
MEASURE_JS = r"""
async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 15000);
  })));
  const mathScript = document.querySelector('script[src*="mathjax"]');
  let mathjaxError = null;
  if (mathScript) {
    const start = Date.now();
    while (!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) && Date.now() - start < 30000) {
      await new Promise(r => setTimeout(r, 50));
    }
    try { await window.MathJax.startup.promise; } catch (e) { mathjaxError = String(e); }
  }
  const mathElements = Array.from(document.querySelectorAll('.math'));
  const untypeset = mathElements.filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.slice(0, 80));
  // Raw TeX left in the text a reader sees (code, scripts and typeset math excluded).
  const skip = 'pre, code, script, style, textarea, mjx-container';
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement && node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    if (/\\\(|\\\[|\$\$|\\begin\{/.test(text)) raw.push(text.trim().slice(0, 80));
  }
  const sidebar = Array.from(document.querySelectorAll('.bd-sidebar-primary nav.bd-links a[href]'))
    .map(a => a.href.split('#')[0]);
  const colab = Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href);
  const article = document.querySelector('.bd-article, main');
  return {
    title: document.title,
    brokenImages: imgs.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.currentSrc || img.src),
    images: imgs.length,
    mathScript: mathScript ? mathScript.getAttribute('src') : null,
    mathjaxError,
    mathElements: mathElements.length,
    typeset: document.querySelectorAll('mjx-container').length,
    texErrors: document.querySelectorAll('mjx-merror').length,
    untypeset, raw, sidebar, colab,
    scrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
    innerWidth: window.innerWidth,
    articleWidth: article ? article.getBoundingClientRect().width : 0,
  };
}
"""


@dataclass
class PageReport:
    page: str
    width: int
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"data", "blob", "about", "file"} or parts.hostname in LOCAL_HOSTS


def redirect_target(html_file: Path) -> str | None:
    """Where a ``<meta http-equiv="refresh">`` page (the site's index.html) sends the reader."""
    match = REFRESH.search(html_file.read_text(encoding="utf-8"))
    return match.group(1) if match else None


def open_page(context, url: str, report: PageReport, screenshot: Path | None = None,
              redirect: str | None = None) -> dict:
    """Open ``url`` in a fresh tab, record errors and requests, return the measurements."""
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and report.console_errors.append(f"{msg.text} ({msg.location.get('url', '')})"))
    page.on("pageerror", lambda err: report.console_errors.append(f"uncaught: {err}"))
    page.on("request", lambda req: None if _is_local(req.url) else report.external.append(req.url))
    page.on("requestfailed", lambda req: _is_local(req.url) and report.failed.append(f"{req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and report.failed.append(f"{resp.url} (HTTP {resp.status})"))
    try:
        page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        if redirect:
            page.wait_for_url(urljoin(url, redirect), wait_until="load", timeout=PAGE_TIMEOUT_MS)
        data = page.evaluate(MEASURE_JS)
        data["url"] = page.url
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=False)
        return data
    finally:
        page.close()


def new_context(browser, viewport: dict):
    phone = viewport["width"] < 600
    context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone,
                                  device_scale_factor=2 if phone else 1, service_workers="block")
    context.set_default_timeout(PAGE_TIMEOUT_MS)

    def block_outside(route):
        if _is_local(route.request.url):
            route.continue_()
        else:  # counted by the "request" listener; never sent
            route.abort("blockedbyclient")

    context.route("**/*", block_outside)
    return context


@pytest.fixture(scope="session")
def crawl(browser, site_url, site_html) -> list[PageReport]:
    """Every page of the site, opened at desktop width and at 390 px."""
    shots = os.environ.get("DLNOTES_SCREENSHOTS")
    reports = []
    for viewport in (DESKTOP, PHONE):
        context = new_context(browser, viewport)
        try:
            for rel in site_pages(site_html):
                report = PageReport(page=rel.as_posix(), width=viewport["width"])
                shot = None
                if shots and rel.as_posix() == SCREENSHOT_PAGE:
                    shot = Path(shots) / f"rnn-{'phone' if viewport is PHONE else 'desktop'}-{viewport['width']}px.png"
                report.data = open_page(context, site_url + rel.as_posix(), report, shot,
                                        redirect=redirect_target(site_html / rel))
                reports.append(report)
        finally:
            context.close()
    desktop = [r for r in reports if r.width == DESKTOP["width"]]
    with_math = [r for r in desktop if r.data["mathElements"]]
    BROWSER_FIGURES.update({
        "pages opened": f"{len(desktop)} pages x 2 widths ({DESKTOP['width']} px, {PHONE['width']} px) = {len(reports)} loads",
        "console errors": sum(len(r.console_errors) for r in reports),
        "failed requests": sum(len(r.failed) for r in reports),
        "requests leaving localhost": sum(len(r.external) for r in reports),
        "images loaded": f"{sum(r.data['images'] - len(r.data['brokenImages']) for r in desktop)} of {sum(r.data['images'] for r in desktop)}",
        "pages with math": f"{len(with_math)}, formulas typeset: {sum(r.data['typeset'] for r in with_math)} "
                           f"(of {sum(r.data['mathElements'] for r in with_math)} math elements)",
    })
    return reports


def _problems(reports, attribute) -> list[str]:
    return [f"{r.page} @{r.width}px: {item}" for r in reports for item in getattr(r, attribute)]


def test_every_page_was_opened(crawl, site_html):
    pages = {r.page for r in crawl}
    expected = {f.relative_to(ROOT).with_suffix(".html").as_posix() for f in toc_files()}
    assert expected <= pages, f"toc pages not opened: {sorted(expected - pages)}"
    assert {"index.html", "search.html", "genindex.html"} <= pages
    assert len(crawl) == 2 * len(site_pages(site_html))


def test_no_console_errors(crawl):
    problems = _problems(crawl, "console_errors")
    assert not problems, "\n".join(problems)


def test_no_failed_requests(crawl):
    problems = _problems(crawl, "failed")
    assert not problems, "\n".join(problems)


def test_no_request_leaves_localhost(crawl):
    problems = _problems(crawl, "external")
    assert not problems, "\n".join(problems)


def test_every_image_loads(crawl):
    problems = [f"{r.page} @{r.width}px: {src}" for r in crawl for src in r.data["brokenImages"]]
    assert not problems, "images that did not load (naturalWidth 0):\n" + "\n".join(problems)
    assert sum(r.data["images"] for r in crawl) > 0, "no image on any page: is the check looking at the right thing?"


def test_math_is_typeset_on_every_page_with_math(crawl):
    problems = []
    pages_with_math = 0
    for r in crawl:
        d = r.data
        if d["mathElements"] or d["raw"]:
            pages_with_math += 1
            if d["mathScript"] is None or "://" in d["mathScript"]:
                problems.append(f"{r.page}: math, but MathJax is loaded from {d['mathScript']!r} (must be _static/mathjax)")
        if d["mathjaxError"]:
            problems.append(f"{r.page}: MathJax failed: {d['mathjaxError']}")
        problems += [f"{r.page} @{r.width}px: not typeset: {t!r}" for t in d["untypeset"]]
        problems += [f"{r.page} @{r.width}px: raw TeX in the text: {t!r}" for t in d["raw"]]
        if d["texErrors"]:
            problems.append(f"{r.page} @{r.width}px: {d['texErrors']} TeX error(s) (red formulas)")
    assert not problems, "\n".join(problems)
    assert pages_with_math >= 5, f"only {pages_with_math} page loads with math: is the check looking at the right thing?"


def test_sidebar_lists_every_chapter(crawl, site_url):
    expected = {site_url + f.relative_to(ROOT).with_suffix(".html").as_posix() for f in toc_files()}
    problems = []
    for r in crawl:
        if r.page in {"index.html"}:
            continue  # a redirect to the first page, which is checked itself
        missing = expected - set(r.data["sidebar"])
        if missing:
            problems.append(f"{r.page} @{r.width}px: sidebar lacks {sorted(m[len(site_url):] for m in missing)}")
    assert not problems, "\n".join(problems)


def test_colab_button_points_at_each_chapter_notebook(crawl):
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = urlsplit(config["repository"]["url"]).path.strip("/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    branch = config["repository"].get("branch", "main")
    by_page = {r.page: r for r in crawl if r.width == DESKTOP["width"]}
    problems = []
    for source in toc_files():
        rel = source.relative_to(ROOT)
        links = set(by_page[rel.with_suffix(".html").as_posix()].data["colab"])
        expected = {f"{colab}/github/{repo}/blob/{branch}/{rel.as_posix()}"} if source.suffix == ".ipynb" else set()
        if links != expected:
            problems.append(f"{rel}: Colab links {sorted(links)}, expected {sorted(expected)}")
    assert not problems, "\n".join(problems)


def test_usable_at_phone_width(crawl):
    """At 390 px nothing makes the page scroll sideways, and the text takes the width."""
    problems = []
    for r in crawl:
        if r.width != PHONE["width"]:
            continue
        d = r.data
        if d["scrollWidth"] > PHONE["width"] or d["innerWidth"] != PHONE["width"]:
            problems.append(f"{r.page}: scrollWidth {d['scrollWidth']} px, innerWidth {d['innerWidth']} px at {PHONE['width']} px")
        if d["articleWidth"] < 0.8 * PHONE["width"]:
            problems.append(f"{r.page}: the text column is only {d['articleWidth']:.0f} px wide")
    assert not problems, "\n".join(problems)


def test_search_finds_the_rnn_chapter(browser, site_url):
    """Type "LSTM" into the site's search box, as a reader would, and get the RNN chapter."""
    context = new_context(browser, DESKTOP)
    report = PageReport(page="search", width=DESKTOP["width"])
    try:
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and report.console_errors.append(msg.text))
        page.on("request", lambda req: None if _is_local(req.url) else report.external.append(req.url))
        page.goto(site_url + "book/intro.html", wait_until="load")
        page.locator("button.search-button__button:visible").first.click()
        box = page.locator("#pst-search-dialog input[name=q]")
        box.fill(SEARCH_TERM)
        box.press("Enter")
        page.wait_for_url("**/search.html?q=*")
        page.wait_for_function(
            "() => document.querySelectorAll('#search-results ul.search li').length > 0"
            " || /found/i.test((document.querySelector('#search-results') || {}).textContent || '')",
            timeout=PAGE_TIMEOUT_MS,
        )
        hits = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
    finally:
        context.close()
    assert any(urlsplit(h).path.endswith(f"/{SEARCH_PAGE}.html") for h in hits), f"search for {SEARCH_TERM!r} found {hits}"
    assert not report.console_errors and not report.external, (report.console_errors, report.external)
    BROWSER_FIGURES["search"] = f"{SEARCH_TERM!r}: {len(hits)} result(s), {SEARCH_PAGE} among them"


def test_math_renders_from_file_url(browser, site_html):
    """Opened straight from disk (``file://``), a page with math still typesets it offline."""
    context = new_context(browser, DESKTOP)
    checked = []
    try:
        for rel in ("book/math/backprop.html", "book/architectures/rnn.html"):
            report = PageReport(page=rel, width=DESKTOP["width"])
            data = open_page(context, (site_html / rel).resolve().as_uri(), report)
            assert data["mathElements"] > 0 and not data["untypeset"] and not data["raw"], (rel, data["untypeset"], data["raw"])
            assert data["typeset"] >= data["mathElements"]
            assert not report.console_errors and not report.failed and not report.external, report
            checked.append(f"{rel} ({data['typeset']} formulas)")
    finally:
        context.close()
    BROWSER_FIGURES["file:// pages"] = ", ".join(checked)
