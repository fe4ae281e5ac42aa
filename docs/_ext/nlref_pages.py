"""The pages of nlref's site that are generated from the repository at each build.

Generated (and git-ignored), so that the site follows the repository:

* ``docs/notebooks/``: a copy of each notebook of ``notebooks/`` (myst-nb executes it) and the
  course's index with each notebook's mode;
* ``docs/benchmarks/<table>.md``: one page per table in ``data/figures``;
* ``docs/gallery.md``: every figure in ``data/figures``;
* ``docs/api/generated/``: one page per public package -- :data:`API_PACKAGES` and the chapters
  of ``nlref.nn`` (its subpackages, found by walking it). A page documents the package's
  ``__all__``; a name that a chapter also exports is documented there and only listed here.
"""

from __future__ import annotations

import filecmp
import importlib
import inspect
import pkgutil
import shutil
from pathlib import Path

from nlref.notebooks import notebook_mode

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
#: The packages of the API reference, in reading order; nlref.nn brings its chapters.
API_PACKAGES = [
    "nlref.denoise",
    "nlref.nn",
    "nlref.gradcheck",
    "nlref.metrics",
    "nlref.viz",
    "nlref.exercises",
]


def _sync(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` when they differ (keeps Sphinx's incremental build honest)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or not filecmp.cmp(src, dst, shallow=False):
        shutil.copy2(src, dst)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate_pages(full: bool = False) -> None:
    """docs/notebooks/*.ipynb, docs/benchmarks/*.md and docs/gallery.md from the repository."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for old in (DOCS / "notebooks").glob("*.ipynb"):
        if not (ROOT / "notebooks" / old.name).exists():
            old.unlink()
    for nb in notebooks:
        _sync(nb, DOCS / "notebooks" / nb.name)
    _write(DOCS / "notebooks" / "index.md", _course(notebooks, full))
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
    _api_pages()


def _course(notebooks: list[Path], full: bool) -> str:
    lines = [
        "# The course",
        "",
        "Each notebook runs in one mode everywhere (the tests, CI and this site), set in",
        "`nlref.notebooks.NOTEBOOK_MODES`: *full* where a full run takes at most 60 s on a 2-core CPU,",
        '*quick* otherwise (tiny sizes; its figures say "quick mode" in their title).',
        "`make docs-full` builds the site with every notebook in full mode."
        if not full
        else "This copy of the site was built by `make docs-full`: every notebook ran in full mode.",
        "",
        "| notebook | mode on this site |",
        "| --- | --- |",
    ]
    for nb in notebooks:
        mode = "full" if full else notebook_mode(nb)
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


def chapters(package: str) -> list[str]:
    """The public subpackages of ``package`` (``nlref.nn`` -> ``nlref.nn.layers``, ...), in the
    order its docstring names them (else alphabetical)."""
    module = importlib.import_module(package)
    if not hasattr(module, "__path__"):  # a module, not a package
        return []
    found = [
        f"{package}.{info.name}"
        for info in pkgutil.iter_modules(module.__path__)
        if info.ispkg and not info.name.startswith("_")
    ]
    doc = module.__doc__ or ""
    return sorted(found, key=lambda name: (doc.find(name) if name in doc else len(doc), name))


def _home(package: str, name: str, documented: list[str]) -> str:
    """Where ``package.name`` is documented: the deepest documented package exporting the same object."""
    obj = getattr(importlib.import_module(package), name)
    homes = [
        p
        for p in documented
        if p.startswith(package + ".")
        and name in getattr(importlib.import_module(p), "__all__", ())
        and getattr(importlib.import_module(p), name) is obj
    ]
    return max(homes, key=len) if homes else package


def _relative(full_name: str, package: str) -> str:
    """``nlref.nn.layers.conv_forward`` seen from ``nlref.nn``: ``~layers.conv_forward``."""
    rest = full_name[len(package) + 1 :]
    return f"~{rest}" if "." in rest else rest


def _directive(full_name: str, obj) -> list[str]:
    if inspect.isclass(obj):
        return [f".. autoclass:: {full_name}", "   :members:", "   :show-inheritance:", ""]
    if callable(obj):
        return [f".. autofunction:: {full_name}", ""]
    return [f".. autodata:: {full_name}", "   :no-value:", ""]


def _api_page(package: str, documented: list[str]) -> str:
    module = importlib.import_module(package)
    names = list(module.__all__)
    homes = {name: _home(package, name, documented) for name in names}
    lines = [package, "=" * len(package), "", f".. automodule:: {package}", "   :no-members:", ""]
    subs = chapters(package) if package in API_PACKAGES else []
    if subs:
        title = "Chapters" if package == "nlref.nn" else "Subpackages"
        lines += [f".. rubric:: {title}", "", ".. autosummary::", "   :toctree: .", ""]
        lines += [f"   {sub[len(package) + 1 :]}" for sub in subs] + [""]
    if names:
        lines += [".. rubric:: Names", "", ".. autosummary::", ""]
        lines += [f"   {_relative(f'{homes[n]}.{n}', package)}" for n in names] + [""]
    here = [n for n in names if homes[n] == package]
    if len(here) < len(names):
        lines += [
            f"The names above that belong to a chapter are documented on the chapter's page; "
            f"``from {package} import ...`` gives the same objects.",
            "",
        ]
    for name in here:
        lines += _directive(f"{package}.{name}", getattr(module, name))
    return "\n".join(lines)


def _api_pages() -> None:
    documented = []
    for package in API_PACKAGES:
        documented += [package, *chapters(package)]
    out = DOCS / "api" / "generated"
    for old in out.glob("*.rst"):
        if old.stem not in documented:
            old.unlink()
    for package in documented:
        _write(out / f"{package}.rst", _api_page(package, documented))
