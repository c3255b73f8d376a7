"""The shape of the code base (issue 28): small modules, small functions, no import circles.

Checked over every ``.py`` file of ``segprep/`` and ``scripts/``:

* a module is at most :data:`MAX_MODULE_LINES` lines (counted as ``wc -l`` does: newlines);
* a function or method is at most :data:`MAX_FUNCTION_LINES` lines, from its ``def`` line (its
  decorators not counted) to its last line (``end_lineno``), as the AST reports them;
* the modules of ``segprep`` import each other without a circle. The graph holds every import,
  the ones inside functions too (a deferred import hides a circle, it does not break it):
  ``import segprep.x``, ``from segprep.x import y`` (an edge to ``segprep.x.y`` when that is a
  module, to ``segprep.x`` otherwise) and relative imports. A package's ``__init__`` is the node
  of the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "segprep"
TREES = (ROOT / PACKAGE, ROOT / "scripts")
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 120


def _python_files() -> list[Path]:
    """Every ``.py`` file under ``segprep/`` and ``scripts/`` (sorted; caches skipped)."""
    files: list[Path] = []
    for tree in TREES:
        files += [p for p in tree.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    """``segprep/convert/colors.py`` → ``segprep.convert.colors``; ``pkg/__init__.py`` → ``pkg``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _segprep_modules() -> dict[str, Path]:
    """Module name → file, for every module of the ``segprep`` package."""
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))
            if "__pycache__" not in p.parts}


def _function_lengths(tree: ast.AST) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, length)`` of every function and method in a module."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                end = child.end_lineno or child.lineno
                found.append((name, child.lineno, end - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _import_targets(module: str, is_package: bool, tree: ast.AST,
                    known: set[str]) -> set[str]:
    """The ``segprep`` modules that ``module`` imports (anywhere in its body), itself excluded."""
    targets: set[str] = set()

    def nearest_module(name: str) -> str | None:
        while name:
            if name in known:
                return name
            name = name.rpartition(".")[0]
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    hit = nearest_module(alias.name)
                    if hit:
                        targets.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".")
                if not is_package:
                    base_parts = base_parts[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != PACKAGE and not base.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                hit = sub if sub in known else nearest_module(base)
                if hit:
                    targets.add(hit)
    targets.discard(module)
    return targets


def import_graph() -> dict[str, set[str]]:
    """``segprep`` module → the ``segprep`` modules it imports (all imports, deferred ones too)."""
    modules = _segprep_modules()
    known = set(modules)
    return {name: _import_targets(name, path.name == "__init__.py",
                                  ast.parse(path.read_text(encoding="utf-8"), str(path)), known)
            for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module, each as one example circle.

    Returns:
        a list of circles, each a list of module names ``[a, b, …, a]`` (sorted, stable).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        # iterative Tarjan (the graph is small, but recursion depth is no concern either way)
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    circles = []
    for comp in sorted(components):
        members = set(comp)
        # one shortest circle through the component's first module (breadth-first search)
        start = comp[0]
        prev: dict[str, str] = {}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for w in sorted(graph.get(u, ())):
                    if w not in members:
                        continue
                    if w == start:
                        found = u
                        break
                    if w not in prev:
                        prev[w] = u
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [start]
        u = found
        while u is not None and u != start:
            path.append(u)
            u = prev.get(u)
        circle = [start] + path[1:][::-1] + [start]
        circles.append(circle)
    return circles


# ------------------------------------------------------------------------------------- tests
def test_the_checker_sees_every_tree():
    files = _python_files()
    assert any(_rel(p).startswith("segprep/") for p in files)
    assert any(_rel(p).startswith("scripts/") for p in files)


def test_modules_are_small():
    offenders = []
    for path in _python_files():
        n = path.read_bytes().count(b"\n")  # as wc -l counts
        if n > MAX_MODULE_LINES:
            offenders.append((n, _rel(path)))
    offenders.sort(reverse=True)
    assert not offenders, (
        f"{len(offenders)} module(s) over {MAX_MODULE_LINES} lines (split them by concept):\n"
        + "\n".join(f"  {path}: {n} lines" for n, path in offenders))


def test_functions_are_small():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line, length in _function_lengths(tree):
            if length > MAX_FUNCTION_LINES:
                offenders.append((length, f"{_rel(path)}:{line} {name}"))
    offenders.sort(reverse=True)
    assert not offenders, (
        f"{len(offenders)} function(s) over {MAX_FUNCTION_LINES} lines (def to last line):\n"
        + "\n".join(f"  {where}: {n} lines" for n, where in offenders))


def test_no_import_circles():
    circles = find_cycles(import_graph())
    assert not circles, (
        f"{len(circles)} import circle(s) among segprep modules (deferred imports count):\n"
        + "\n".join("  " + " -> ".join(c) for c in circles))


# ----------------------------------------------------------------------- the checker's own tests
@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
    ({"x": {"y"}, "y": {"x"}, "p": {"q"}, "q": {"p"}}, [["p", "q", "p"], ["x", "y", "x"]]),
])
def test_find_cycles(graph, expected):
    assert find_cycles(graph) == expected


def test_imports_inside_functions_and_submodule_resolution():
    src = (
        "import os\n"
        "from segprep.io import png, read_image\n"
        "from . import sibling\n"
        "def f():\n"
        "    import segprep.convert.raster\n"
        "    from segprep.convert.colors import decode\n"
    )
    known = {"segprep", "segprep.io", "segprep.io.png", "segprep.convert",
             "segprep.convert.raster", "segprep.convert.colors", "segprep.convert.sibling",
             "segprep.convert.me"}
    got = _import_targets("segprep.convert.me", False, ast.parse(src), known)
    assert got == {"segprep.io.png", "segprep.io", "segprep.convert.sibling",
                   "segprep.convert.raster", "segprep.convert.colors"}


def test_function_lengths_count_def_to_end():
    src = "class C:\n    @staticmethod\n    def m():\n        x = 1\n\n        return x\n"
    assert _function_lengths(ast.parse(src)) == [("C.m", 3, 4)]
