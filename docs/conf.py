"""Sphinx configuration for the flask-executor docs.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import typing
from pathlib import Path

project = "flask-executor"
copyright = "flask-executor developers"
author = "flask-executor developers"
release = importlib.metadata.version("flask-executor")
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]

# Links to the Python and Flask docs. The inventories are local files, written by
# _inventories/make_inventories.py, not fetched: this build runs with -W on machines with
# no network (CI included), where a fetch fails with a warning. Each file lists the
# objects these docs refer to, with their real URLs under the first item of each pair;
# add a name to the script when a page refers to one it lacks.
_INVENTORIES = Path(__file__).resolve().parent / "_inventories"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", str(_INVENTORIES / "python.inv")),
    "flask": ("https://flask.palletsprojects.com/en/stable/", str(_INVENTORIES / "flask.inv")),
}

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

exclude_patterns = ["_build"]
default_role = "code"
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": "Background jobs for Flask, with contexts and awaitable futures.",
    "fixed_sidebar": True,
}
html_title = f"flask-executor {version}"
html_static_path: list[str] = []


def _show_paramspec_parts() -> None:
    """Render ``*args: P.args`` in the overloaded signatures as ``P.args``.

    Sphinx (9.0 at least) writes the annotation of ``*args: P.args`` in an overload as
    ``~typing.~P``, which it then cannot parse, so the whole signature of ``submit`` and
    ``submit_stored`` came out as raw text. Only those annotations are rewritten;
    everything else goes to Sphinx as it is.
    """
    import sphinx.util.inspect

    stringify = getattr(sphinx.util.inspect, "stringify_annotation", None)
    if stringify is None or not hasattr(typing, "ParamSpecArgs"):
        return  # another Sphinx, or Python 3.9, whose ParamSpec is typing_extensions'
    parts = {typing.ParamSpecArgs: "args", typing.ParamSpecKwargs: "kwargs"}

    def stringify_annotation(
        annotation: typing.Any, *args: typing.Any, **kwargs: typing.Any
    ) -> str:
        part = parts.get(type(annotation))
        if part is not None:
            return f"{annotation.__origin__.__name__}.{part}"
        return str(stringify(annotation, *args, **kwargs))

    sphinx.util.inspect.stringify_annotation = stringify_annotation


_show_paramspec_parts()


def _import_type_checking_names() -> None:
    """Run each module's ``if t.TYPE_CHECKING:`` imports, for autodoc only.

    The modules use ``from __future__ import annotations`` and import some names only
    for type checkers. Autodoc evaluates a signature's annotations in its module, and
    when one name is missing it shows every annotation of that signature as raw source
    (``t.Iterable[t.Any]``). With the names present, the hints come out as types.
    """
    import ast
    import importlib
    import pkgutil

    import flask_executor

    for info in pkgutil.iter_modules(flask_executor.__path__):
        module = importlib.import_module(f"flask_executor.{info.name}")
        tree = ast.parse(inspect.getsource(module))
        for node in tree.body:
            if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING",
                "t.TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            ):
                code = compile(ast.Module(body=node.body, type_ignores=[]), module.__name__, "exec")
                exec(code, module.__dict__)


_import_type_checking_names()
