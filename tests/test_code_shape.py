"""The code's shape, checked: short functions, no private names used across modules, no import circles."""

import ast

from helpers import REPO

MAX_LINES = 80
PARSERS = {"build_parser"}  # argument parsers: one long list of options, read at a glance


def _modules():
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        yield path.relative_to(REPO), ast.parse(path.read_text(encoding="utf-8"))


def test_no_function_is_longer_than_80_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name not in PARSERS
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_no_private_name_is_imported_from_another_module():
    crossing = [
        f"{path}:{node.lineno} from {node.module} import {alias.name}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not crossing, "private names imported across modules:\n" + "\n".join(crossing)


def _module_name(path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """``pipeline`` module → the ``pipeline`` modules it imports, at the top or inside a function."""
    trees = dict(_modules())
    names = {_module_name(path) for path in trees}
    graph: dict[str, set[str]] = {}
    for path, tree in trees.items():
        me = _module_name(path)
        graph[me] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                wanted = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            graph[me] |= {w for w in wanted if w in names and w != me}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: each one module, the path that leads back to it."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            here, path = stack.pop()
            for nxt in sorted(graph[here]):
                if nxt == start:
                    found.append(path + [start])
                elif nxt not in seen and nxt > start:  # each circle once, from its smallest module
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_the_import_circle_check_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_even_through_function_local_imports():
    """Layers import downward only; a function-local import back up is a circle too. (The package
    ``pipeline/__init__.py`` may name its submodules: nothing imports the package itself.)"""
    graph = _import_graph()
    graph["pipeline"] = set()
    circles = _circles(graph)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)
