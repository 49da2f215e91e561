"""The code's shape, checked: short functions, no private names used across modules."""

import ast

from conftest import REPO

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
