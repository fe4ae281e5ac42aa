"""Run the teaching notebooks without Jupyter, and the helpers they share.

The GPU machine has no Jupyter, and CI runs notebooks headless, so::

    python -m nlref.notebooks run notebooks/02_fast_nlm_and_gpu.ipynb [--quick|--full]

executes a notebook's code cells in order in this plain Python process (IPython
magics and shell escapes are skipped), prints the time of each cell, and fails
on the first error with the cell number.  Without ``--quick``/``--full`` each
notebook runs in its mode from :data:`NOTEBOOK_MODES`, the one mode it runs in
everywhere (the tests, CI and ``make docs``).  ``python -m nlref.notebooks list``
lists the notebooks; ``strip`` removes outputs before a notebook is committed.

Inside notebooks, :func:`quick_mode` reads ``NLREF_QUICK`` (set to 1 by the
tests: tiny sizes, seconds on a CPU) and :func:`pick_backend` chooses CuPy when
a GPU is present in full mode, else NumPy with a printed note.  The notebooks
also share :func:`save_figure` (PNG into :func:`out_dir`, then shown),
:func:`markdown_table` / :func:`show_markdown` (pandas-free tables) and
:func:`show_source` (a library function's code, so text and code cannot drift).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .backend import cupy_available, namespace_by_name
from .io import atomic_path

__all__ = [
    "QUICK_TITLE",
    "NOTEBOOK_MODES",
    "notebook_mode",
    "source_folder",
    "where_to_find",
    "quick_mode",
    "pick_backend",
    "out_dir",
    "save_figure",
    "show_png",
    "markdown_table",
    "show_markdown",
    "show_source",
    "code_cells",
    "run_notebook",
    "strip_outputs",
    "main",
]


#: Added to the title of every figure saved in quick mode.
QUICK_TITLE = "quick mode: smoke test, not a result"

#: The one mode each notebook runs in, in the tests, in CI and in ``make docs``: "full" where a
#: full run takes at most 60 s on CI's 2 cores, "quick" otherwise (a notebook not listed: quick).
#: Full runs measured with ``python -m nlref.notebooks run --full`` on the 2-core CPU on
#: 2026-12-06 (load 3-6 from other jobs): 01 9 s, 02 10 s, 02b 8 s, 03 3 s, 04 9 s; 05 and 06
#: still running after 240 s (quick: 05 24 s, 06 10 s).
#: ``make docs-full`` runs every notebook in full mode.
NOTEBOOK_MODES = {
    "01_non_local_means": "full",
    "02_fast_nlm_and_gpu": "full",
    "02b_bm3d_collaborative_filtering": "full",
    "03_the_non_local_operation": "full",
    "04_backprop_through_the_block": "full",
    "05_video_networks_on_gpu": "quick",
    "06_learned_non_local_denoising": "quick",
}


def notebook_mode(path: str | os.PathLike) -> str:
    """``"full"`` or ``"quick"``: the mode of the notebook at ``path`` (by its file name)."""
    return NOTEBOOK_MODES.get(Path(path).stem, "quick")


def quick_mode() -> bool:
    """True when ``NLREF_QUICK`` is set to a non-empty value other than ``0``."""
    return os.environ.get("NLREF_QUICK", "0") not in ("", "0", "false", "False")


def pick_backend(verbose: bool = True) -> ModuleType:
    """CuPy in full mode when a GPU is present, else NumPy (with a note saying why)."""
    if quick_mode():
        if verbose:
            print("quick mode (NLREF_QUICK=1): using NumPy and small sizes")
        return namespace_by_name("numpy")
    if cupy_available():
        if verbose:
            print("GPU found: using CuPy")
        return namespace_by_name("cupy")
    if verbose:
        print("note: no CuPy/GPU available, falling back to NumPy (results identical, only slower)")
    return namespace_by_name("numpy")


def out_dir() -> Path:
    """Folder for notebook figures (``data/out/notebooks``, created on demand)."""
    path = Path(
        os.environ.get("NLREF_OUT", Path(__file__).resolve().parent.parent / "data" / "out" / "notebooks")
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def save_figure(fig, name: str) -> Path:
    """Save ``fig`` as ``out_dir() / name`` (PNG, written atomically), show it, and return the path.

    In quick mode the figure's title gains :data:`QUICK_TITLE`, so a smoke-test
    figure is never mistaken for a result.

    Jupyter displays the figure; a plain Python run (``python -m nlref.notebooks
    run``) only writes the file and prints where.  The figure is closed
    afterwards so that long notebooks do not accumulate open figures.
    """
    import matplotlib.pyplot as plt

    if not name.endswith(".png"):
        name += ".png"
    if quick_mode():  # a smoke-test figure says so in its title
        old = fig.get_suptitle()
        fig.suptitle(f"{old}\n{QUICK_TITLE}" if old else QUICK_TITLE, color="C3")
    path = out_dir() / name
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    if _in_notebook():
        from IPython.display import display

        display(fig)  # also for figures made without pyplot (nlref.viz returns such figures)
    else:
        print(f"figure saved: {path}")
    plt.close(fig)
    return path


def show_png(path: str | os.PathLike) -> None:
    """Display a PNG written by another tool (the ablation's plot) in Jupyter; else print its path."""
    if _in_notebook():
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    else:
        print(f"figure: {path}")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], *, floatfmt: str = ".3g") -> str:
    """A GitHub-style markdown table; floats formatted with ``floatfmt``, other cells with ``str``."""

    def cell(v) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(map(str, header)) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def show_markdown(text: str) -> None:
    """Render markdown in Jupyter; print it elsewhere."""
    if _in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(text))
    else:
        print(text)


def show_source(obj, *, docstring: bool = False, start: str | None = None, stop: str | None = None) -> str:
    """Print (and return) the source of a library function, without its docstring by default.

    Parameters
    ----------
    obj : function or module
    docstring : bool
        Keep the docstring.
    start : str, optional
        Print from the first line containing this text (e.g. ``"for t in"``).
    stop : str, optional
        Stop before the first line after ``start`` that contains this text.
    """
    import ast
    import inspect
    import textwrap

    src = textwrap.dedent(inspect.getsource(obj))
    lines = src.splitlines()
    if not docstring:
        tree = ast.parse(src)
        node = tree.body[0]
        body = getattr(node, "body", [])
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            lines = lines[: body[0].lineno - 1] + lines[body[0].end_lineno :]
    if start is not None:
        hits = [i for i, ln in enumerate(lines) if start in ln]
        if not hits:
            raise ValueError(f"start text {start!r} not found in the source of {obj!r}")
        lines = lines[hits[0] :]
    if stop is not None:
        ends = [i for i, ln in enumerate(lines) if i > 0 and stop in ln]
        if not ends:
            raise ValueError(f"stop text {stop!r} not found in the source of {obj!r}")
        lines = lines[: ends[0]]
    text = "\n".join(lines)
    print(text)
    return text


def _load(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as fh:
        nb = json.load(fh)
    if "cells" not in nb:
        raise ValueError(f"{path} is not a Jupyter notebook (no 'cells' key)")
    return nb


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def code_cells(path: str | os.PathLike) -> list[str]:
    """Source of each code cell, with IPython magics (``%``, ``!``) commented out."""
    cells = []
    for cell in _load(path)["cells"]:
        if cell.get("cell_type") != "code":
            continue
        lines = [
            ("# " + ln if ln.lstrip().startswith(("%", "!")) else ln) for ln in _source(cell).splitlines()
        ]
        cells.append("\n".join(lines))
    return cells


def run_notebook(path: str | os.PathLike, *, quick: bool | None = None) -> list[float]:
    """Execute a notebook's code cells in order in one namespace; return each cell's seconds.

    Raises
    ------
    RuntimeError
        Naming the failing cell (1-based among code cells), chained to the original error.
    """
    if quick is not None:
        os.environ["NLREF_QUICK"] = "1" if quick else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    path = Path(path).resolve()  # the cells run from the notebook's folder
    namespace: dict = {"__name__": "__main__", "__file__": str(path)}
    times = []
    old_cwd = os.getcwd()
    os.chdir(path.parent)  # notebooks run from their folder, as in Jupyter
    try:
        for i, src in enumerate(code_cells(path), start=1):
            t0 = time.perf_counter()
            try:
                exec(compile(src, f"{path.name}[cell {i}]", "exec"), namespace)
            except Exception as exc:
                raise RuntimeError(f"{path.name}: code cell {i} failed: {exc!r}") from exc
            times.append(time.perf_counter() - t0)
            print(f"[{path.name}] cell {i:>2}: {times[-1]:7.2f} s", flush=True)
    finally:
        os.chdir(old_cwd)
        try:
            import matplotlib.pyplot as plt

            plt.close("all")
        except Exception:
            pass
    print(f"[{path.name}] total: {sum(times):.2f} s", flush=True)
    return times


def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs and execution counts in place; True if the file changed."""
    nb = _load(path)
    changed = False
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                changed = True
            cell["outputs"], cell["execution_count"] = [], None
    if changed:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def source_folder(name: str, pattern: str) -> Path | None:
    """``name`` (``notebooks``, ``benchmarks``) of the source tree, holding files matching ``pattern``.

    A source checkout or an unpacked sdist has it beside the ``nlref`` package; a wheel holds
    only the package, so the current folder is tried next; None when neither has it.
    """
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        folder = root / name
        if folder.is_dir() and any(folder.glob(pattern)):
            return folder
    return None


def where_to_find(name: str) -> str:
    """One line saying where ``name/`` is when this nlref was installed from a wheel."""
    return (
        f"{name}/ is not installed with the nlref wheel (this nlref lives in {Path(__file__).parent}); "
        f"it ships in nlref's source distribution (pip download --no-deps --no-binary nlref nlref, then "
        f"unpack it) and in the source repository: run this command from that folder"
    )


def notebooks_dir() -> Path | None:
    """The source tree's ``notebooks/`` (beside the package, else in the current folder), or None.

    None for a wheel-installed nlref run outside a source tree: the wheel holds only the package.
    """
    return source_folder("notebooks", "*.ipynb")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlref.notebooks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="execute notebooks' code cells in this process")
    p_run.add_argument("notebooks", nargs="+", help="notebook paths")
    mode = p_run.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="all in quick mode, NLREF_QUICK=1 (small sizes)")
    mode.add_argument(
        "--full", action="store_true", help="all in full mode, NLREF_QUICK=0 (full sizes, GPU if present)"
    )
    sub.add_parser("list", help="list the teaching notebooks")
    p_strip = sub.add_parser("strip", help="remove outputs from notebooks")
    p_strip.add_argument("notebooks", nargs="+")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        folder = notebooks_dir()
        if folder is None:
            print(f"python -m nlref.notebooks: error: {where_to_find('notebooks')}", file=sys.stderr)
            return 2
        for p in sorted(folder.glob("*.ipynb")):
            print(f"{p}  ({notebook_mode(p)} mode)")
        return 0
    if args.cmd == "strip":
        for p in args.notebooks:
            print(("stripped " if strip_outputs(p) else "clean    ") + p)
        return 0
    summary = []
    for p in args.notebooks:
        quick = args.quick or (not args.full and notebook_mode(p) == "quick")
        summary.append((p, sum(run_notebook(p, quick=quick))))
    for p, t in summary:
        print(f"{t:8.1f} s  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
