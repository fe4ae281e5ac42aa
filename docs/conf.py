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

import json
import os
import sys
from pathlib import Path

import nlref
from nlref.notebooks import notebook_mode

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
from nlref_pages import generate_pages  # noqa: E402

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
autosummary_generate = False  # docs/_ext/nlref_pages.py writes the pages; autosummary makes the tables
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
    first = nb["cells"][0]  # the title cell: the note goes right under the title
    text = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    title, _, rest = text.partition("\n")
    first["source"] = f"{title}\n\n{note}\n{rest}"
    source[0] = json.dumps(nb)


def setup(app) -> None:
    generate_pages(full=FULL)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("NLREF_OUT", str(DOCS / "_build" / "notebook-figures"))
    app.connect("source-read", _set_notebook_mode)
