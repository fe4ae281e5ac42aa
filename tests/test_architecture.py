"""The package's shape, as the developer guide states it, checked from the source.

* the import graph of ``nlref`` has no circle;
* arrows point down: nothing in ``nlref.denoise`` or ``nlref.nn`` (nor the tools beside
  them) imports the face (``nlref.cli``, ``nlref.demo``, ``nlref.notebooks``, ``nlref.exercises``) or
  ``benchmarks/``;
* only ``nlref.backend`` imports CuPy;
* nlref's own modules are imported at module level, where a reader sees the graph;
* modules stay small enough to hold in one's head (<= 400 lines, function bodies <= 60);
* one folder per chapter, each of at most 12 modules; no star imports;
* a visible API: ``nlref.nn.__all__`` is a literal list of at most 40 names, every module of
  ``nlref.nn`` exports only what it defines, and every public name is listed in its chapter
  package (``nlref.nn.nl``, not ``nlref.nn.nl.op``);
* notebooks show (``show_source``) only public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nlref"
FACE = ("nlref.cli", "nlref.demo", "nlref.notebooks", "nlref.exercises", "nlref.__main__", "nlref._entry")
# The console script's first lines: it imports the CLI inside main(), after its SIGTERM handler is installed.
LOCAL_IMPORT_ALLOWED = {"nlref._entry"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Functions longer than MAX_FUNCTION_LINES that read better whole (say why in the module).
LONG_FUNCTIONS_ALLOWED: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str) -> list[tuple[str, ast.AST, bool]]:
    """(imported module, node, at module level) for every import statement of ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    top |= {id(s) for n in tree.body if isinstance(n, (ast.If, ast.Try)) for s in ast.walk(n)}
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node)
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            # ``from . import sub`` imports the submodule, not the package's own names
            targets = subs + ([target] if len(subs) < len(node.names) else [])
        for t in targets:
            found.append((t, node, id(node) in top))
    return found


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        graph[name] = {t for t, _, _ in imports_of(name) if t in MODULES and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        colour[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if colour[v] == 1:
                return stack[stack.index(v) :] + [v]
            if colour[v] == 0 and (cycle := visit(v)):
                return cycle
        stack.pop()
        colour[u] = 2
        return None

    for u in sorted(graph):
        if colour[u] == 0 and (cycle := visit(u)):
            return cycle
    return None


def is_face(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FACE)


def test_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_has_no_circle():
    assert find_cycle(internal_graph()) is None


@pytest.mark.parametrize("name", [m for m in MODULES if not is_face(m)])
def test_library_never_imports_the_face_or_benchmarks(name):
    for target, node, _ in imports_of(name):
        assert not is_face(target), f"{name} imports the face module {target} (line {node.lineno})"
        assert not target.startswith("benchmarks"), f"{name} imports {target} (line {node.lineno})"
    assert "benchmarks_dir" not in MODULES[name].read_text(encoding="utf-8"), (
        f"{name} reaches into benchmarks/"
    )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_backend_imports_cupy(name):
    if name == "nlref.backend":
        return
    for target, node, _ in imports_of(name):
        assert target.split(".")[0] not in ("cupy", "cupyx"), f"{name} imports {target} (line {node.lineno})"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_nlref_modules_are_imported_at_module_level(name):
    if name in LOCAL_IMPORT_ALLOWED:
        return
    local = [f"{t} (line {n.lineno})" for t, n, top in imports_of(name) if t.startswith("nlref") and not top]
    assert not local, f"{name} imports nlref modules inside functions: {local}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name):
    text = MODULES[name].read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            lines = body[-1].end_lineno - body[0].lineno + 1 if body else 0
            qual = f"{name}.{node.name}"
            if qual not in LONG_FUNCTIONS_ALLOWED:
                assert lines <= MAX_FUNCTION_LINES, f"{qual}: body of {lines} lines"


# ----------------------------------------------------------------------------- chapters and the visible API

MAX_MODULES_PER_FOLDER = 12
MAX_NN_NAMES = 40
NN_CHAPTERS = ("layers", "nl", "video", "train", "denoiser")


def _literal_all(name: str) -> list[str] | None:
    """The module's ``__all__`` if it is assigned once, as a literal list of strings (else None)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            found.append(node)
    if len(found) != 1 or not isinstance(found[0], (ast.Assign, ast.AnnAssign)):
        return None
    value = found[0].value
    if not isinstance(value, ast.List) or not all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    ):
        return None
    return [e.value for e in value.elts]


def _defined_names(name: str) -> set[str]:
    """Names a module defines itself: functions, classes and assignments at module level."""
    names = set()
    for node in ast.parse(MODULES[name].read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


@pytest.mark.parametrize("folder", sorted({p.parent for p in MODULES.values()}), ids=str)
def test_each_folder_holds_at_most_12_modules(folder):
    modules = sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= MAX_MODULES_PER_FOLDER, f"{folder}: {len(modules)} modules {modules}"


def test_nlref_nn_all_is_a_literal_list_of_at_most_40_names():
    names = _literal_all("nlref.nn")
    assert names is not None, "nlref/nn/__init__.py must assign __all__ once, as a literal list of strings"
    assert len(names) <= MAX_NN_NAMES and len(set(names)) == len(names), f"{len(names)} names"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_star_imports(name):
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert all(a.name != "*" for a in node.names), f"{name} star-imports (line {node.lineno})"


@pytest.mark.parametrize("name", [m for m in MODULES if m.startswith("nlref.nn.") and not _is_package(m)])
def test_nn_modules_export_only_what_they_define(name):
    names = _literal_all(name)
    if names is None and name.split(".")[-1].startswith("_"):
        return  # a private module may leave __all__ out
    assert names is not None, f"{name}: __all__ must be assigned once, as a literal list"
    foreign = sorted(set(names) - _defined_names(name))
    assert not foreign, f"{name} re-exports {foreign}: only a package __init__.py may"


@pytest.mark.parametrize("chapter", NN_CHAPTERS)
def test_every_public_name_of_a_chapter_is_listed_in_its_package(chapter):
    package = f"nlref.nn.{chapter}"
    listed = _literal_all(package)
    assert listed is not None, f"{package}: __all__ must be a literal list"
    for name in MODULES:
        if (
            name.startswith(package + ".")
            and not _is_package(name)
            and not name.split(".")[-1].startswith("_")
        ):
            missing = sorted(set(_literal_all(name) or []) - set(listed))
            assert not missing, f"{name} exports {missing}, not listed in {package}.__all__"
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8"))) or ""
    for module in (
        m for m in MODULES if m.startswith(package + ".") and not m.split(".")[-1].startswith("_")
    ):
        assert module.split(".")[-1] in doc, f"{package}'s docstring does not introduce {module}"


def test_nlref_nn_names_come_from_the_chapter_packages():
    import nlref.nn

    chapters = set()
    for chapter in ("layers", "nl", "video"):
        chapters |= set(_literal_all(f"nlref.nn.{chapter}"))
    assert set(nlref.nn.__all__) <= chapters


def _shown_sources() -> list[tuple[str, str]]:
    import json

    shown = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            lines = "\n".join(
                "pass" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines()
            )
            for node in ast.walk(ast.parse(lines)):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "show_source"
                    and node.args
                ):
                    shown.append((path.name, ast.unparse(node.args[0])))
    return shown


def test_notebooks_show_only_public_names():
    shown = _shown_sources()
    assert shown, "no show_source call found: the notebook parser is broken"
    private = [(nb, expr) for nb, expr in shown if any(part.startswith("_") for part in expr.split("."))]
    assert not private, f"notebooks show private functions: {private}"


# ----------------------------------------------------------------------------- inference is not training

INFERENCE = (
    "nlref.denoise.learned",
    "nlref.nn.denoiser.weights",
    "nlref.nn.denoiser.model",
    "nlref.nn.weights",
)


def import_closure(start: str) -> set[str]:
    """Every nlref module that importing ``start`` runs: its imports and their packages' __init__ files."""
    graph, seen, todo = internal_graph(), set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in MODULES]
        todo += sorted(graph[name])
    return seen


def test_import_closure_follows_packages_and_imports():
    closure = import_closure("nlref.nn.train.loop")
    assert {"nlref", "nlref.nn", "nlref.nn.train", "nlref.nn.train.records", "nlref.backend"} <= closure


@pytest.mark.parametrize("start", INFERENCE)
def test_inference_imports_no_training_code(start):
    training = sorted(m for m in import_closure(start) if m.split(".")[:3] == ["nlref", "nn", "train"])
    assert not training, f"importing {start} runs training code: {training}"
