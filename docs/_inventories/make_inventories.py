"""Write the small intersphinx inventories that the docs link to Python and Flask with.

The docs build has no network (CI neither), so intersphinx cannot fetch
``objects.inv`` from docs.python.org or flask.palletsprojects.com. These files stand in
for them: they list the objects the docs and the API's type hints refer to, each with
its real public URL. Run this script after adding a reference to a Python or Flask
object that is not here yet (a reference that no inventory has renders as plain code,
without a link, and without a warning)::

    python docs/_inventories/make_inventories.py

The format is Sphinx's inventory version 2: four header lines, then one zlib-compressed
line per object, ``name domain:role priority uri display-name``. In a URI, ``$`` stands
for the object's name, and a display name of ``-`` means the name itself.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Python: (name, role, page under https://docs.python.org/3/[, anchor]). The anchor is
# the name unless given.
PYTHON: list[tuple[str, ...]] = [
    # Built-in types and constants.
    ("bool", "class", "library/functions.html"),
    ("dict", "class", "library/stdtypes.html"),
    ("float", "class", "library/functions.html"),
    ("int", "class", "library/functions.html"),
    ("list", "class", "library/stdtypes.html"),
    ("object", "class", "library/functions.html"),
    ("str", "class", "library/stdtypes.html"),
    ("tuple", "class", "library/stdtypes.html"),
    ("None", "data", "library/constants.html"),
    # Exceptions.
    ("AttributeError", "exception", "library/exceptions.html"),
    ("KeyError", "exception", "library/exceptions.html"),
    ("RuntimeError", "exception", "library/exceptions.html"),
    ("TimeoutError", "exception", "library/exceptions.html"),
    ("TypeError", "exception", "library/exceptions.html"),
    ("ValueError", "exception", "library/exceptions.html"),
    # asyncio.
    ("asyncio", "module", "library/asyncio.html"),
    ("asyncio.CancelledError", "exception", "library/asyncio-exceptions.html"),
    ("asyncio.Task", "class", "library/asyncio-task.html"),
    ("asyncio.create_task", "function", "library/asyncio-task.html"),
    ("asyncio.gather", "function", "library/asyncio-task.html"),
    ("asyncio.run", "function", "library/asyncio-runner.html"),
    ("asyncio.shield", "function", "library/asyncio-task.html"),
    ("asyncio.to_thread", "function", "library/asyncio-task.html"),
    ("asyncio.wait_for", "function", "library/asyncio-task.html"),
    ("asyncio.wrap_future", "function", "library/asyncio-future.html"),
    # concurrent.futures.
    ("concurrent.futures", "module", "library/concurrent.futures.html"),
    ("concurrent.futures.Executor", "class", "library/concurrent.futures.html"),
    ("concurrent.futures.Executor.map", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Executor.shutdown", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Executor.submit", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future", "class", "library/concurrent.futures.html"),
    # Type hints name Future by the module that defines it.
    (
        "concurrent.futures._base.Future",
        "class",
        "library/concurrent.futures.html",
        "concurrent.futures.Future",
    ),
    ("concurrent.futures.Future.add_done_callback", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future.cancel", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future.cancelled", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future.done", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future.exception", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future.result", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.Future.running", "method", "library/concurrent.futures.html"),
    ("concurrent.futures.ProcessPoolExecutor", "class", "library/concurrent.futures.html"),
    ("concurrent.futures.ThreadPoolExecutor", "class", "library/concurrent.futures.html"),
    ("concurrent.futures.as_completed", "function", "library/concurrent.futures.html"),
    ("concurrent.futures.wait", "function", "library/concurrent.futures.html"),
    ("concurrent.futures.BrokenExecutor", "exception", "library/concurrent.futures.html"),
    (
        "concurrent.futures.process.BrokenProcessPool",
        "exception",
        "library/concurrent.futures.html",
    ),
    # contextvars, threading, multiprocessing, os, inspect.
    ("contextvars", "module", "library/contextvars.html"),
    ("contextvars.Context", "class", "library/contextvars.html"),
    ("contextvars.ContextVar", "class", "library/contextvars.html"),
    ("contextvars.copy_context", "function", "library/contextvars.html"),
    ("threading.Event", "class", "library/threading.html"),
    ("multiprocessing", "module", "library/multiprocessing.html"),
    ("os.register_at_fork", "function", "library/os.html"),
    ("inspect", "module", "library/inspect.html"),
    # typing, as the API's type hints name them.
    ("typing.Any", "data", "library/typing.html"),
    ("typing.Awaitable", "class", "library/typing.html"),
    ("typing.Callable", "data", "library/typing.html"),
    ("typing.Coroutine", "class", "library/typing.html"),
    ("typing.Generator", "class", "library/typing.html"),
    ("typing.Hashable", "class", "library/typing.html"),
    ("typing.Iterable", "class", "library/typing.html"),
    ("typing.Iterator", "class", "library/typing.html"),
    ("typing.ParamSpec", "class", "library/typing.html"),
]

# Flask: (name, role, anchor) on https://flask.palletsprojects.com/en/stable/api/.
# Type hints name a class by the module that defines it ('flask.app.Flask'), so both
# names of a class point at the one entry of Flask's API page.
FLASK = [
    ("flask.Flask", "class", "flask.Flask"),
    ("flask.app.Flask", "class", "flask.Flask"),
    ("flask.Flask.app_context", "method", "flask.Flask.app_context"),
    ("flask.Flask.teardown_appcontext", "method", "flask.Flask.teardown_appcontext"),
    ("flask.Config", "class", "flask.Config"),
    ("flask.config.Config", "class", "flask.Config"),
    ("flask.Config.from_prefixed_env", "method", "flask.Config.from_prefixed_env"),
    ("flask.ctx.AppContext", "class", "flask.ctx.AppContext"),
    ("flask.ctx.AppContext.push", "method", "flask.ctx.AppContext.push"),
    ("flask.ctx.RequestContext", "class", "flask.ctx.RequestContext"),
    ("flask.current_app", "data", "flask.current_app"),
    ("flask.g", "data", "flask.g"),
    ("flask.request", "data", "flask.request"),
    ("flask.session", "data", "flask.session"),
    ("flask.url_for", "function", "flask.url_for"),
    ("flask.copy_current_request_context", "function", "flask.copy_current_request_context"),
    ("flask.appcontext_pushed", "data", "flask.appcontext_pushed"),
    ("flask.appcontext_popped", "data", "flask.appcontext_popped"),
    ("flask.appcontext_tearing_down", "data", "flask.appcontext_tearing_down"),
]


def write_inventory(path: Path, project: str, version: str, lines: list[str]) -> None:
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{line}\n" for line in sorted(lines))
    path.write_bytes(header.encode() + zlib.compress(body.encode(), 9))


def main() -> None:
    python = []
    for name, role, page, *given in PYTHON:
        # Sphinx anchors a module as 'module-<name>', everything else by its name.
        anchor = given[0] if given else f"module-{name}" if role == "module" else "$"
        python.append(f"{name} py:{role} 1 {page}#{anchor} -")
    write_inventory(HERE / "python.inv", "Python", "3", python)
    flask = [f"{name} py:{role} 1 api/#{anchor} -" for name, role, anchor in FLASK]
    write_inventory(HERE / "flask.inv", "Flask", "stable", flask)


if __name__ == "__main__":
    main()
