"""Sphinx extension: a site that needs no internet. Math is typeset by a local MathJax 3.

The MathJax files come from the PyPI package ``django-static-mathjax`` (MathJax
3.2.2, Apache-2.0; it has no Django dependency and imports as ``mathjax``), which the
README's setup command installs with the ``book`` extra. At the end of an HTML build
this copies the bundle named by ``mathjax_path`` and the components it loads on
demand (TeX extensions, CHTML fonts, the menu, accessibility, speech rules) into
``_build/html/_static/mathjax/``, so every page typesets its formulas offline, from
``file://`` as well as from a web server.

``_config.yml`` sets ``mathjax_path: mathjax/tex-mml-chtml.js`` (a path relative to
``_static``); the build fails if it names a URL or a file the package does not ship.

It adds ``dlnotes-site.css`` (phone-width fixes: long inline code wraps), and it
also leaves out sphinx-thebe's loader (an inline script naming thebe on unpkg.com
and ``sphinx-thebe.js``), which Jupyter Book adds to every page although this book
offers no live-code (thebe) button: no page then refers to a CDN at all.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ConfigError
from sphinx.util.fileutil import copy_asset, copy_asset_file

STATIC_SUBDIR = "mathjax"
OWN_STATIC = Path(__file__).resolve().parent / "static"  # dlnotes-site.css
# Loaded on demand by the combined bundles; the other bundles are not copied.
COMPONENT_DIRS = ("a11y", "adaptors", "input", "output", "sre", "ui")


def mathjax_source() -> Path:
    """The folder holding MathJax's ``es5`` build in the installed package."""
    try:
        import mathjax  # django-static-mathjax
    except ImportError as err:  # pragma: no cover - a broken install
        raise ConfigError(
            "offline_mathjax: the 'django-static-mathjax' package is missing; run the README's "
            "setup command (pip install -c constraints.txt -e '.[all]')."
        ) from err
    es5 = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise ConfigError(f"offline_mathjax: no MathJax es5 build found in {es5}")
    return es5


def _bundle(app: Sphinx) -> str:
    path = app.config.mathjax_path
    prefix = STATIC_SUBDIR + "/"
    if "://" in path or path.startswith("//") or not path.startswith(prefix):
        raise ConfigError(
            f"offline_mathjax: mathjax_path must be a local file under _static/{prefix}, "
            f"like '{prefix}tex-mml-chtml.js' (got {path!r}); pages must not load MathJax from the internet."
        )
    name = path[len(prefix):]
    if not (mathjax_source() / name).is_file():
        raise ConfigError(f"offline_mathjax: MathJax ships no bundle {name!r} (mathjax_path={path!r})")
    return name


def _check_config(app: Sphinx, config) -> None:
    _bundle(app)
    if str(OWN_STATIC) not in config.html_static_path:
        config.html_static_path.append(str(OWN_STATIC))


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / STATIC_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    copy_asset_file(str(source / _bundle(app)), str(target))
    for sub in COMPONENT_DIRS:
        if (source / sub).is_dir():
            copy_asset(str(source / sub), str(target / sub))
    licence = source.parent / "LICENSE"
    if licence.is_file():
        copy_asset_file(str(licence), str(target / "LICENSE"))


def _is_thebe_loader(script) -> bool:
    filename = getattr(script, "filename", script) or ""
    body = getattr(script, "attributes", {}).get("body", "") or ""
    return str(filename).endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _drop_thebe_loader(app: Sphinx, pagename, templatename, context, doctree) -> None:
    launch = app.config.html_theme_options.get("launch_buttons", {}) or {}
    if launch.get("thebe"):  # live code is offered: keep thebe
        return
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [s for s in scripts if not _is_thebe_loader(s)]


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _check_config)
    app.connect("html-page-context", _drop_thebe_loader)
    app.add_css_file("dlnotes-site.css")
    app.connect("build-finished", _copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
