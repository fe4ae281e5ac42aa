"""The teaching notebooks are stored clean and execute, each in its one mode.

Each notebook runs in one mode everywhere (:data:`nlref.notebooks.NOTEBOOK_MODES`).  ``make test``
(and so CI) builds the site first, and that build *is* the notebook run: myst-nb executes every
notebook and fails the build on any error.  ``make test`` then sets ``NLREF_DOCS_HTML`` and the
execution test reads the built pages instead of running the notebooks a second time; without it
(``pytest tests/test_notebooks.py``) the test executes each notebook itself, in the same mode.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

from nlref.notebooks import NOTEBOOK_MODES, code_cells, notebook_mode, quick_mode, run_notebook, strip_outputs

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
DOCS_HTML = os.environ.get("NLREF_DOCS_HTML")


def test_teaching_path_is_complete():
    names = [p.name for p in NOTEBOOKS]
    assert [n[:3] for n in names] == ["01_", "02_", "02b", "03_", "04_", "05_", "06_"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert dirty == [], (
        f"{path.name}: cells {dirty} have outputs; run `python -m nlref.notebooks strip {path}`"
    )


def _is_blank(node: ast.FunctionDef) -> bool:
    """An exercise's blank: an optional docstring, then only ``raise NotImplementedError``."""
    body = node.body[1:] if ast.get_docstring(node) else node.body
    exc = body[0].exc if len(body) == 1 and isinstance(body[0], ast.Raise) else None
    return (
        getattr(exc, "id", None) == "NotImplementedError"
        or getattr(getattr(exc, "func", None), "id", None) == "NotImplementedError"
    )


def _defined_algorithms(src: str) -> list[str]:
    """Functions named like an algorithm (forward/backward/nl_means) and not an exercise's blank."""
    pattern = re.compile(r"\w*(?:_forward|_backward|nl_means\w*|nonlocal\w*)")
    tree = ast.parse(src)
    return [
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and pattern.fullmatch(n.name) and not _is_blank(n)
    ]


def test_a_blank_exercise_is_not_a_copy_but_an_algorithm_is():
    blank = 'def softmax_backward(dA, A):\n    """dS."""\n    raise NotImplementedError  # your code\n'
    copy = "def softmax_backward(dA, A):\n    return A * (dA - (A * dA).sum(-1, keepdims=True))\n"
    assert _defined_algorithms(blank) == [] and _defined_algorithms(copy) == ["softmax_backward"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_imports_nlref_and_does_not_copy_its_code(path):
    src = "\n".join(code_cells(path))
    assert "import nlref" in src or "from nlref" in src
    # notebooks import, never copy: no algorithm (forward/backward/nl_means) defined in a cell,
    # but an exercise's blank (it only raises NotImplementedError) is the learner's to fill in
    copied = _defined_algorithms(src)
    assert copied == [], f"{path.name} defines {copied}; import them from nlref instead"


def test_every_notebook_has_its_one_mode_in_the_table():
    # a new notebook: time `python -m nlref.notebooks run --full` on 2 cores; <= 60 s is "full"
    assert set(IDS) == set(NOTEBOOK_MODES), (
        f"NOTEBOOK_MODES differs from notebooks/: {set(IDS) ^ set(NOTEBOOK_MODES)}"
    )
    assert set(NOTEBOOK_MODES.values()) <= {"full", "quick"}
    assert notebook_mode("notebooks/99_not_listed.ipynb") == "quick"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_executes_in_its_mode(path, tmp_path, monkeypatch):
    if DOCS_HTML:  # `make test`: the docs build just executed it; check what it rendered
        _check_the_built_page(path, Path(DOCS_HTML) / "notebooks" / f"{path.stem}.html")
        return
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("NLREF_QUICK", "1" if notebook_mode(path) == "quick" else "0")
    monkeypatch.setenv("NLREF_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    # every figure is also saved as a PNG into nlref.notebooks.out_dir() (NLREF_OUT)
    assert list(tmp_path.rglob("*.png")), f"{path.name} saved no figure into NLREF_OUT"


def _check_the_built_page(path: Path, page: Path) -> None:
    """The page exists, was built from this notebook as it is now, in its mode, with figures."""
    assert page.is_file(), f"{page} is missing: the docs build did not render {path.name}"
    assert page.stat().st_mtime >= path.stat().st_mtime, f"{page} is older than {path.name}: run make docs"
    html = page.read_text(encoding="utf-8")
    mode = notebook_mode(path)
    assert f"ran in <strong>{mode} mode</strong>" in html, f"{page} does not say it ran in {mode} mode"
    assert re.search(r'class="cell_output[^"]*".*?<img', html, re.S), f"{page} shows no output figure"
    assert 'class="output traceback' not in html, f"{page} shows a traceback"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_opens_with_a_title_and_teaches_in_prose(path):
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    assert first["cell_type"] == "markdown" and src.startswith("# "), (
        f"{path.name} must open with a markdown title"
    )
    prose = sum(
        len("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "markdown"
    )
    assert prose > 2000, (
        f"{path.name} has only {prose} characters of markdown: a notebook must explain, not just run"
    )


def test_runner_executes_cells_in_order_and_skips_magics(tmp_path, capsys):
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# title"},
            {
                "cell_type": "code",
                "source": ["%matplotlib inline\n", "x = 2\n"],
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "source": "y = x * 21\nassert y == 42",
                "outputs": [],
                "execution_count": None,
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "t.ipynb"
    path.write_text(json.dumps(nb))
    times = run_notebook(path, quick=True)
    assert len(times) == 2 and quick_mode()


def test_runner_names_the_failing_cell(tmp_path):
    nb = {
        "cells": [{"cell_type": "code", "source": "1/0", "outputs": [], "execution_count": None}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(RuntimeError, match="code cell 1 failed"):
        run_notebook(path, quick=True)


def test_strip_outputs_removes_outputs(tmp_path):
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "1",
                "execution_count": 3,
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "data": {"text/plain": "1"},
                        "metadata": {},
                        "execution_count": 3,
                    }
                ],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "o.ipynb"
    path.write_text(json.dumps(nb))
    assert strip_outputs(path) is True
    cell = json.loads(path.read_text())["cells"][0]
    assert cell["outputs"] == [] and cell["execution_count"] is None
    assert strip_outputs(path) is False


def test_markdown_table_formats_floats_and_other_cells():
    from nlref.notebooks import markdown_table

    text = markdown_table(["name", "value"], [["a", 0.123456], ["b", 7]], floatfmt=".2f")
    assert text.splitlines() == ["| name | value |", "| --- | --- |", "| a | 0.12 |", "| b | 7 |"]


def test_show_source_drops_the_docstring_and_cuts_between_markers(capsys):
    from nlref.notebooks import show_source

    text = show_source(strip_outputs)
    assert '"""' not in text and text.startswith("def strip_outputs(")
    part = show_source(strip_outputs, start="changed = False", stop="if changed:")
    assert part.splitlines()[0].strip() == "changed = False" and "atomic_path(path)" not in part
    with pytest.raises(ValueError, match="start text"):
        show_source(strip_outputs, start="no such line")


def test_save_figure_writes_a_png_into_out_dir(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlref.notebooks import save_figure

    monkeypatch.setenv("NLREF_OUT", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set(title="t", xlabel="x", ylabel="y")
    path = save_figure(fig, "line")
    assert path == tmp_path / "line.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]  # no temporary file left behind


@pytest.mark.parametrize("quick, suptitle", [("1", None), ("1", "Weights"), ("0", "Weights")])
def test_a_quick_mode_figure_says_so_in_its_title(tmp_path, monkeypatch, quick, suptitle):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nlref.notebooks import QUICK_TITLE, save_figure

    monkeypatch.setenv("NLREF_OUT", str(tmp_path))
    monkeypatch.setenv("NLREF_QUICK", quick)
    fig, ax = plt.subplots()
    if suptitle:
        fig.suptitle(suptitle)
    save_figure(fig, "f")
    title = fig.get_suptitle()
    assert (QUICK_TITLE in title) == (quick == "1") and (suptitle or "") in title
