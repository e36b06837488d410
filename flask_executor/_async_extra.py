"""Flask's ``async`` extra (asgiref): saying how to install it when a job needs it.

flask-executor itself runs coroutine jobs and awaits futures without asgiref. Flask
needs it to run an ``async def`` function from sync code, through ``app.ensure_sync``:
async views, and ``async def`` teardown functions. Teardown functions run at the end of
every job too, when its app context is popped, and Flask's own message then speaks of
"async views", which a background job is not. This says what to install instead.
"""

from __future__ import annotations

import importlib

__all__ = ["INSTALL", "explain_missing_asgiref"]

#: The command, as every message and page gives it.
INSTALL = 'pip install "flask-executor[async]"'

# A piece of what Flask raises from 'Flask.async_to_sync' when asgiref is missing, the
# same from Flask 2.0 to 3.2: "Install Flask with the 'async' extra in order to use
# async views."
_FLASK_MESSAGE = "'async' extra"


def explain_missing_asgiref(exc: BaseException) -> None:
    """Raise a :exc:`RuntimeError` that names :data:`INSTALL` if ``exc`` is Flask's
    error for a missing asgiref, raised in a job's app context; else return.

    Flask 3.2 gathers the errors of teardown functions in an exception group, so the
    error is looked for inside groups too.
    """
    flask_error = _flask_async_error(exc)
    if flask_error is None:
        return
    try:
        importlib.import_module("asgiref.sync")  # what Flask failed to import
    except ImportError:
        pass
    else:
        return  # installed after all: Flask's error had another cause
    raise RuntimeError(
        "An 'async def' function ran in this job's app context (a teardown_appcontext"
        " function, or code that calls 'app.ensure_sync'), and Flask needs asgiref to"
        f" run it from a worker thread. Install it with: {INSTALL}"
    ) from flask_error


def _flask_async_error(exc: BaseException) -> BaseException | None:
    if isinstance(exc, RuntimeError) and _FLASK_MESSAGE in str(exc):
        return exc
    for inner in getattr(exc, "exceptions", ()):  # an exception group
        found = _flask_async_error(inner)
        if found is not None:
            return found
    return None
