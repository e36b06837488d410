"""The package's modules import each other in one direction, and one module alone
touches CPython's private pool members."""

from __future__ import annotations

import ast
from pathlib import Path

import flask_executor

PACKAGE = Path(flask_executor.__file__).parent


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every import statement, at any depth (``TYPE_CHECKING`` and function bodies too)."""
    found = modules()
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, (path, is_package) in found.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.append(child if child in found else base)
            graph[name].update(target for target in targets if target in found and target != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                found.append([*path[path.index(target) :], target])
            elif len(path) < len(graph):
                visit(target, [*path, target])

    for name in graph:
        visit(name, [name])
    return found


def test_the_graph_sees_imports_of_every_kind() -> None:
    graph = import_graph()
    assert "flask_executor.backends" in graph["flask_executor.pools"]
    assert "flask_executor.config" in graph["flask_executor.backends"]  # TYPE_CHECKING only
    assert "flask_executor._cpython" in graph["flask_executor.backends.process"]


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


PRIVATE_POOL_MEMBERS = [
    "_work_queue",
    "_adjust_thread_count",
    "_pending_work_items",
    "_call_queue",
    "_executor_manager_thread",
    "_threads_wakeups",
    "_WorkItem",
    "_global_shutdown",
]


def test_only_the_fenced_module_touches_private_pool_members() -> None:
    users: dict[str, list[str]] = {}
    for name, (path, _) in modules().items():
        source = path.read_text(encoding="utf-8")
        used = [member for member in PRIVATE_POOL_MEMBERS if member in source]
        if used:
            users[name] = used
    assert list(users) == ["flask_executor._cpython"]
    assert users["flask_executor._cpython"] == PRIVATE_POOL_MEMBERS


def test_cycles_are_found() -> None:
    graph: dict[str, set[str]] = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert ["a", "b", "c", "a"] in cycles(graph)
