"""Every module's ``__all__`` says exactly what it defines publicly.

A name without a leading underscore, defined at the top of a module, is public; it must
then be in ``__all__``, or be renamed with an underscore. Type variables and loggers are
plumbing every module has, and are left out. The package itself re-exports the public
API, and nothing else.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import logging
import pkgutil
import sys
import types
import typing as t
from pathlib import Path

import flask_executor
import pytest

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:  # pragma: no cover
    from typing_extensions import ParamSpec

MODULES = sorted(
    f"flask_executor.{info.name}"
    for info in pkgutil.iter_modules(flask_executor.__path__)
    if not info.name.startswith("_")
)

# Modules whose __all__ is known to disagree with what they define; each is reported.
# Modules whose __all__ is known not to match, with the reason: none at present.
KNOWN_MISMATCHES: dict[str, str] = {}


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level by def, class or assignment.

    Definitions inside top-level ``if``/``try`` blocks (version checks) count too;
    imports do not: an imported name belongs to the module it came from.
    """
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                if isinstance(node.target, ast.Name):
                    names.add(node.target.id)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return names


def _is_plumbing(value: object) -> bool:
    return isinstance(value, (t.TypeVar, ParamSpec, logging.Logger))


def public_names(module: types.ModuleType) -> set[str]:
    source = Path(t.cast(str, module.__file__)).read_text(encoding="utf-8")
    return {
        name
        for name in _top_level_names(ast.parse(source))
        if not name.startswith("_") and not _is_plumbing(getattr(module, name, None))
    }


def _module_params() -> list[t.Any]:
    params = []
    for name in MODULES:
        marks = []
        if name in KNOWN_MISMATCHES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_MISMATCHES[name]))
        params.append(pytest.param(name, id=name.rpartition(".")[2], marks=marks))
    return params


def test_there_are_modules_to_check() -> None:
    assert {"flask_executor.config", "flask_executor.extension", "flask_executor.futures"} <= set(
        MODULES
    )


@pytest.mark.parametrize("module_name", _module_params())
def test_module_all_matches_its_public_definitions(module_name: str) -> None:
    module = importlib.import_module(module_name)
    declared = getattr(module, "__all__", None)
    assert declared is not None, f"{module_name} has no __all__."
    assert len(declared) == len(set(declared)), "__all__ lists a name twice."
    assert list(declared) == sorted(declared), "__all__ is not sorted."
    assert set(declared) == public_names(module)


@pytest.mark.parametrize("module_name", [pytest.param(n, id=n.rpartition(".")[2]) for n in MODULES])
def test_module_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in getattr(module, "__all__", []) if not hasattr(module, name)]
    assert missing == []


def test_package_all_names_exist() -> None:
    assert flask_executor.__all__, "flask_executor.__all__ is empty."
    assert list(flask_executor.__all__) == sorted(set(flask_executor.__all__))
    for name in flask_executor.__all__:
        assert getattr(flask_executor, name, None) is not None, name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, t.Any] = {}
    exec("from flask_executor import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(flask_executor.__all__)


def test_package_exports_nothing_else() -> None:
    # Besides __all__, the package namespace holds only its submodules, dunders and
    # the 'annotations' future import.
    extra = {
        name
        for name, value in vars(flask_executor).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and value is not __future__.annotations
    }
    assert extra == set(flask_executor.__all__)


def test_package_names_are_public_in_their_own_modules() -> None:
    # A re-exported name is also declared by the module that defines it.
    for name in flask_executor.__all__:
        obj = getattr(flask_executor, name)
        home = sys.modules[obj.__module__]
        assert name in getattr(home, "__all__", ()), f"{name} is not in {home.__name__}.__all__"


def test_the_documented_api() -> None:
    # What Flask-Executor 1.0 users import, and what 2.0 adds.
    assert {"Executor", "FutureProxy", "FutureCollection"} <= set(flask_executor.__all__)
    assert {"ExecutorJob", "AsyncExecutorJob", "MapResult"} <= set(flask_executor.__all__)
