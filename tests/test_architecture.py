"""The package's shape, as the developer guide states it, checked from the source.

* the import graph of ``nlref`` has no circle;
* arrows point down: nothing in ``nlref.denoise`` or ``nlref.nn`` (nor the tools beside
  them) imports the face (``nlref.cli``, ``nlref.demo``, ``nlref.notebooks``) or
  ``benchmarks/``;
* only ``nlref.backend`` imports CuPy;
* nlref's own modules are imported at module level, where a reader sees the graph;
* modules stay small enough to hold in one's head (<= 400 lines, function bodies <= 60).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nlref"
FACE = ("nlref.cli", "nlref.demo", "nlref.notebooks", "nlref.__main__")
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
