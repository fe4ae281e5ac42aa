"""Sphinx configuration of nlref's site: ``make docs`` (see the Makefile and docs/README.md).

The site is generated from the repository as it is, so it cannot drift from it:

* the notebooks are copied from ``notebooks/`` into ``docs/notebooks/`` and executed by
  myst-nb, each in its one mode (:data:`nlref.notebooks.NOTEBOOK_MODES`), or all in
  full mode with myst-nb's cache for ``make docs-full`` (``NLREF_DOCS_FULL=1``);
* ``docs/benchmarks/`` gets one page per table in ``data/figures`` and
  ``docs/gallery.md`` every figure there;
* the API reference is autosummary over the packages' ``__all__`` (numpydoc
  docstrings), the CLI reference sphinx-argparse over ``nlref.cli.build_parser``;
* MathJax is served from the site's ``_static`` (sphinx-mathjax-offline): no page
  asks another host for anything.

Warnings are errors (``-W``), so a broken docstring or a failing notebook fails the build.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import sys
from pathlib import Path

import nlref
from nlref.notebooks import notebook_mode

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
FULL = os.environ.get("NLREF_DOCS_FULL", "0") not in ("", "0")

project = "nlref"
author = "nlref developers"
copyright = "nlref developers, BSD-3-Clause"
release = version = nlref.__version__

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinxarg.ext",
    "sphinx-mathjax-offline",  # MathJax 3 into _static/mathjax (the package's name has dashes)
    "shape_stars",  # docs/_ext: ``(N, C, *S)`` in a docstring is a shape, not reST emphasis
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

# --- notebooks (myst-nb) ---------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "cache" if FULL else "force"
if os.environ.get("NLREF_DOCS_NO_EXECUTE"):  # while writing the docs: pages without outputs
    nb_execution_mode = "off"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 1800 if FULL else 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_kernel_rgx_aliases = {".*": "python3"}  # the venv's own kernel, whatever the notebook names
nb_ipywidgets_js = {}  # no widget JavaScript from a CDN

# --- API reference (autosummary + numpydoc) ----------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's members are its __all__: the public API
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# --- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"nlref {version}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # else the browser asks for /favicon.ico and logs a 404
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}


def _sync(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` when they differ (keeps Sphinx's incremental build honest)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or not filecmp.cmp(src, dst, shallow=False):
        shutil.copy2(src, dst)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _generate_pages() -> None:
    """docs/notebooks/*.ipynb, docs/benchmarks/*.md and docs/gallery.md from the repository."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for old in (DOCS / "notebooks").glob("*.ipynb"):
        if not (ROOT / "notebooks" / old.name).exists():
            old.unlink()
    for nb in notebooks:
        _sync(nb, DOCS / "notebooks" / nb.name)
    _write(DOCS / "notebooks" / "index.md", _course(notebooks))
    tables = sorted((ROOT / "data" / "figures").glob("*.md"))
    for old in (DOCS / "benchmarks").glob("*.md"):
        if old.name != "index.md" and not (ROOT / "data" / "figures" / old.name).exists():
            old.unlink()
    for table in tables:
        _write(
            DOCS / "benchmarks" / table.name,
            f"```{{include}} ../../data/figures/{table.name}\n```\n\n"
            f"Source: `data/figures/{table.name}` (the JSON beside it holds every number).\n",
        )
    _write(DOCS / "gallery.md", _gallery(sorted((ROOT / "data" / "figures").glob("*.png"))))


def _course(notebooks: list[Path]) -> str:
    lines = [
        "# The course",
        "",
        "Each notebook runs in one mode everywhere (the tests, CI and this site), set in",
        "`nlref.notebooks.NOTEBOOK_MODES`: *full* where a full run takes at most 60 s on a 2-core CPU,",
        '*quick* otherwise (tiny sizes; its figures say "quick mode" in their title).',
        "`make docs-full` builds the site with every notebook in full mode."
        if not FULL
        else "This copy of the site was built by `make docs-full`: every notebook ran in full mode.",
        "",
        "| notebook | mode on this site |",
        "| --- | --- |",
    ]
    for nb in notebooks:
        mode = "full" if FULL else notebook_mode(nb)
        lines.append(f"| [{nb.stem}]({nb.name}) | {mode} |")
    lines += ["", "```{toctree}", ":maxdepth: 1", ""] + [nb.name for nb in notebooks] + ["```", ""]
    return "\n".join(lines)


def _gallery(figures: list[Path]) -> str:
    lines = [
        "# Gallery",
        "",
        "Every figure in `data/figures`, as measured by the benchmark commands named on the",
        "[benchmark pages](benchmarks/index.md). The notebooks' own figures are on their pages.",
        "",
    ]
    for fig in figures:
        table = fig.stem.rsplit("_", 1)[0]
        page = f"benchmarks/{table}.md" if (ROOT / "data" / "figures" / f"{table}.md").exists() else None
        lines += [f"## {fig.stem}", "", f"```{{image}} ../data/figures/{fig.name}", f":alt: {fig.stem}"]
        lines += [":width: 640px", "```", ""]
        if page:
            lines += [f"From the table [{table}]({page}).", ""]
    return "\n".join(lines)


def _set_notebook_mode(app, docname: str, source: list[str]) -> None:
    """Before myst-nb executes a notebook: NLREF_QUICK from its one mode, and a line saying which."""
    if not docname.startswith("notebooks/") or docname == "notebooks/index":
        return
    mode = "full" if FULL else notebook_mode(docname.split("/", 1)[1])
    os.environ["NLREF_QUICK"] = "1" if mode == "quick" else "0"
    why = {
        "full": "every size as the text describes",
        "quick": "tiny sizes, a smoke test: its numbers mean nothing and its figures say so in their title; "
        "`make docs-full` or `python -m nlref.notebooks run --full` runs it in full mode",
    }[mode]
    nb = json.loads(source[0])
    note = f"*This page ran in **{mode} mode** when the site was built ({why}).*"
    nb["cells"].insert(1, {"cell_type": "markdown", "id": "nlref-mode", "metadata": {}, "source": note})
    source[0] = json.dumps(nb)


def setup(app) -> None:
    _generate_pages()
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("NLREF_OUT", str(DOCS / "_build" / "notebook-figures"))
    app.connect("source-read", _set_notebook_mode)
