"""Carrying Flask's contexts from the code that submits a job to the worker that runs it.

This is the only module that touches Flask's context internals (``flask.globals._cv_app``
and ``_cv_request``), so that the change Flask 3.2 brings, the request context merged into
the app context, is a change to this file alone.

The model, for workers that share this process (threads):

* At submit, :func:`capture` takes ``contextvars.copy_context()``. That one O(1) call
  carries every context variable of the caller: Flask's request context (so ``request``
  and ``session`` resolve to the submitting request), a tracing span, a request id. It
  also takes a shallow copy of ``g``, because ``g`` lives on the app context and the job
  gets a fresh one.
* In the worker, :func:`run_job` enters that copy and pushes a *fresh* app context, so the
  job has its own ``g`` and ``teardown_appcontext`` functions (Flask-SQLAlchemy's session
  removal among them) run exactly once, when the job ends.

The request context is never copied or pushed. Pushing a copy would re-match the URL and
reopen the session (about 17 µs a job), and popping it would run ``teardown_request`` and
close the request's uploaded files while the view may still be using them (Flask-Executor
1.0 did both). The job reads the live request object instead; the view owns its teardown.

For workers in other processes nothing can be shared, so :func:`snapshot_for_process`
takes a picklable snapshot and :func:`run_job_in_process` rebuilds the contexts from it in
the worker. See :doc:`/process-pools`.
"""

from __future__ import annotations

import contextvars
import inspect
import io
import logging
import os
import pickle
import threading
import types
import typing as t

from flask import Flask
from flask.ctx import AppContext
from flask.globals import _cv_app
from flask.globals import _cv_request
from flask.signals import appcontext_popped
from flask.signals import appcontext_pushed
from flask.signals import appcontext_tearing_down

from ._async_extra import explain_missing_asgiref

__all__ = [
    "ProcessSnapshot",
    "app_import_target",
    "capture",
    "capture_without_app_context",
    "current_app_or_none",
    "register_app",
    "run_job",
    "run_job_in_process",
    "snapshot_for_process",
    "wrap_callback",
]

logger = logging.getLogger("flask_executor")

R = t.TypeVar("R")


def current_app_or_none() -> Flask | None:
    """The app of the active app context, or None outside one."""
    app_ctx = _cv_app.get(None)
    return None if app_ctx is None else app_ctx.app


def capture(app: Flask | None) -> tuple[contextvars.Context, dict[str, t.Any] | None]:
    """Capture the caller's contexts for a job that runs in a thread of this process.

    Returns a copy of the caller's context variables and, if ``app`` is given and its app
    context is the current one, a shallow copy of ``g``. ``app`` is the app whose fresh
    app context the job will run in, or None for a job that gets no app context
    (``EXECUTOR_PUSH_APP_CONTEXT = False``).
    """
    g_values = None
    if app is not None:
        app_ctx = _cv_app.get(None)
        # ``g`` belongs to its app: a job of another app starts with an empty one.
        if app_ctx is not None and app_ctx.app is app:
            g_values = app_ctx.g.__dict__.copy()
    return contextvars.copy_context(), g_values


def capture_without_app_context(app: Flask) -> tuple[Flask | None, contextvars.Context]:
    """Capture the caller's contexts for a job of ``EXECUTOR_PUSH_APP_CONTEXT = False``.

    Such a job never gets the caller's app context object. That object, its ``g`` and
    whatever is kept on it (a Flask-SQLAlchemy session, say) belong to the caller's
    thread; a job that shared it would use them from another thread at the same time,
    and would leave them to a teardown that does not wait for it. Flask-Executor 1.0
    gave such a job a copy of the request context alone, which Flask pushes with an app
    context of its own. So:

    * During a request, the job gets the request and a fresh app context of ``app`` with
      an empty ``g``: ``app`` is returned, for :func:`run_job` to push, and the caller's
      variables are copied as by :func:`capture`.
    * Otherwise, the job gets no Flask context: None is returned, and the copy of the
      caller's variables leaves out its app context, if it has one.
    """
    variables = contextvars.copy_context()
    if _cv_request.get(None) is not None:
        return app, variables
    if _cv_app not in variables:
        return None, variables
    # A variable cannot be unset in a copied Context, only left out of a new one.
    without_app = contextvars.Context()
    for var, value in variables.items():
        if var is not _cv_app and var is not _cv_request:
            without_app.run(var.set, value)
    return None, without_app


def run_job(
    app: Flask | None,
    variables: contextvars.Context,
    g_values: dict[str, t.Any] | None,
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> R:
    """Run ``fn`` in the worker, in the contexts :func:`capture` took.

    ``variables`` is entered for the duration of the job. A
    :class:`contextvars.Context` can be entered by one thread at a time, so it must be
    this job's own: a job made from another's contexts uses ``variables.copy()``.
    """
    if app is None:
        return variables.run(fn, *args, **kwargs)
    return variables.run(_call_in_app_context, app, g_values, fn, args, kwargs)


def wrap_callback(
    app: Flask | None,
    variables: contextvars.Context,
    g_values: dict[str, t.Any] | None,
    fn: t.Callable[[R], object],
) -> t.Callable[[R], None]:
    """Wrap a done callback so that it runs in a copy of its job's contexts."""

    def run_callback(future: R) -> None:
        run_job(app, variables.copy(), g_values, fn, (future,), {})

    return run_callback


def _call_in_app_context(
    app: Flask,
    g_values: dict[str, t.Any] | None,
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> R:
    app_ctx = app.app_context()
    if g_values:
        app_ctx.g.__dict__.update(g_values)
    # Flask 2.2 to 3.1 count an app context's pushes in this list (see _pop_app_context).
    tokens = getattr(app_ctx, "_cv_tokens", None)
    if (
        type(app_ctx) is not AppContext
        # Patched by instrumentation, say: what the patch does is not known here.
        or AppContext.push is not _FLASK_PUSH
        or AppContext.pop is not _FLASK_POP
        # A Flask whose app context is built otherwise (3.2 merges the request context
        # into it). The tests run both paths, so CI on a new Flask shows a difference.
        or type(tokens) is not list
        # Read for each job: receivers may be connected at any time while the app runs.
        or (
            _SIGNALS_TAKE_RECEIVERS
            and (
                appcontext_pushed.receivers
                or appcontext_tearing_down.receivers
                or appcontext_popped.receivers
            )
        )
    ):
        # Flask's own push and pop, signals and all. ``with`` passes the job's
        # exception to the teardown functions, as a view's does.
        try:
            with app_ctx:
                return fn(*args, **kwargs)
        except RuntimeError as exc:  # free until raised
            explain_missing_asgiref(exc)  # an async teardown function, without asgiref
            raise
    # Otherwise, what Flask's push and pop come down to when nothing listens to the app
    # context's signals. Sending three signals to no receivers is about half of what a
    # push and pop cost (docs/performance.rst).
    tokens.append(_cv_app.set(app_ctx))
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        _pop_app_context(app_ctx, exc)
        raise
    _pop_app_context(app_ctx, None)
    return result


def _pop_app_context(app_ctx: AppContext, exc: BaseException | None) -> None:
    # Flask's 'AppContext.pop', step for step, less the signals nobody receives.
    tokens = app_ctx._cv_tokens
    try:
        # Only the outermost pop tears down: the job may have re-entered its context.
        if len(tokens) == 1:
            app = app_ctx.app
            if (
                type(app).do_teardown_appcontext is _FLASK_TEARDOWN
                and "do_teardown_appcontext" not in app.__dict__
            ):
                # Flask's 'do_teardown_appcontext', less its signal.
                plain_ensure_sync = (
                    type(app).ensure_sync is _FLASK_ENSURE_SYNC
                    and "ensure_sync" not in app.__dict__
                )
                for func in reversed(app.teardown_appcontext_funcs):
                    if plain_ensure_sync and _is_plain_sync_function(func):
                        func(exc)  # what 'ensure_sync' would return
                    else:
                        app.ensure_sync(func)(exc)
            else:
                app.do_teardown_appcontext(exc)
    except RuntimeError as error:
        explain_missing_asgiref(error)  # an async teardown function, without asgiref
        raise
    finally:
        # Reset even if a teardown function failed, as Flask does.
        current = _cv_app.get(None)
        _cv_app.reset(tokens.pop())
    if current is not app_ctx:
        raise AssertionError(f"Popped wrong app context. ({current!r} instead of {app_ctx!r})")


def _is_plain_sync_function(func: object) -> bool:
    # Whether 'inspect.iscoroutinefunction' would say no, answered for a plain function
    # from its code flags. Asking 'inspect' for each teardown function of each job took
    # as long as the rest of the job's app context (docs/performance.rst). A function
    # marked by Python 3.12's 'inspect.markcoroutinefunction' carries the mark in its
    # __dict__.
    return (
        type(func) is types.FunctionType
        and not func.__code__.co_flags & inspect.CO_COROUTINE
        and "_is_coroutine_marker" not in func.__dict__
    )


# Flask 2.2 without blinker has stand-in signals that take no receivers at all.
_SIGNALS_TAKE_RECEIVERS = hasattr(appcontext_pushed, "receivers")
_FLASK_PUSH = AppContext.push
_FLASK_POP = AppContext.pop
_FLASK_TEARDOWN = Flask.do_teardown_appcontext
_FLASK_ENSURE_SYNC = Flask.ensure_sync


# -- Process workers ---------------------------------------------------------------------

# Apps this process has bound an executor to, by a token that travels with each job.
# A worker made by fork inherits this dict, so it finds the very app object; a spawned
# worker finds it empty and imports the app instead (``_worker_apps``).
_registered_apps: dict[str, Flask] = {}
_worker_apps: dict[str, Flask] = {}
_worker_apps_lock = threading.Lock()

# WSGI environ values that are sockets, streams or server objects; they cannot be
# pickled, and a worker has no use for them.
_PICKLABLE_ENVIRON_TYPES = (str, bytes, int, float, bool, type(None))


def register_app(app: Flask) -> str:
    """Remember ``app`` so that forked workers can find it; return its token."""
    token = f"{app.import_name}:{id(app)}"
    _registered_apps[token] = app
    return token


def app_import_target(config_value: str | None) -> str | None:
    """Where a spawned worker imports the app from: the config value, else ``FLASK_APP``."""
    return config_value or os.environ.get("FLASK_APP") or None


class ProcessSnapshot(t.NamedTuple):
    """The picklable part of a job's contexts, sent to a worker process."""

    #: The token of the app in this process (see :func:`register_app`).
    app_token: str | None
    #: How a spawned worker imports the app, or None.
    app_import: str | None
    #: A pickled dict of the values of ``g`` that pickle, or None.
    g_pickle: bytes | None
    #: The request's WSGI environ without streams and sockets, or None outside a request.
    environ: dict[str, t.Any] | None
    #: The request's ``view_args``.
    view_args: dict[str, t.Any] | None
    #: The request body, if the view had read it; None if it had not.
    body: bytes | None
    #: The parsed form, if the view had read it.
    form: list[tuple[str, str]] | None


def snapshot_for_process(
    app_token: str | None, app_import: str | None, push_app_context: bool
) -> tuple[t.Any, ...]:
    """Take a picklable snapshot of the caller's contexts for a job in another process.

    It is a plain tuple of the fields of :class:`ProcessSnapshot`, in their order: that
    is how it travels, since a named tuple pickles by class reference, which costs
    several times as much to load.
    """
    if not push_app_context:
        return (None, None, None, None, None, None, None)
    g_pickle = None
    app_ctx = _cv_app.get(None)
    if app_ctx is not None and app_ctx.g.__dict__:
        g_pickle = _pickle_g(app_ctx.g.__dict__)
    environ = view_args = body = form = None
    request_ctx = _cv_request.get(None)
    if request_ctx is not None:
        request = request_ctx.request
        environ = {
            key: value
            for key, value in request.environ.items()
            if isinstance(value, _PICKLABLE_ENVIRON_TYPES)
            or (key == "wsgi.version" and isinstance(value, tuple))
        }
        view_args = request.view_args
        # Werkzeug caches what it has read in the instance dict; the stream itself
        # cannot be read twice, so only what the view already read can travel.
        body = request.__dict__.get("_cached_data")
        if "form" in request.__dict__:
            form = list(request.form.items(multi=True))
    return (app_token, app_import, g_pickle, environ, view_args, body, form)


def _pickle_g(values: dict[str, t.Any]) -> bytes:
    try:
        return pickle.dumps(values, pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    kept: dict[str, t.Any] = {}
    left_out = []
    for key, value in values.items():
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:
            left_out.append(key)
        else:
            kept[key] = value
    logger.debug(
        "These values of 'g' cannot be pickled and were left out of the job sent to a"
        " process worker: %s.",
        ", ".join(sorted(left_out)),
    )
    return pickle.dumps(kept, pickle.HIGHEST_PROTOCOL)


def run_job_in_process(
    snapshot: tuple[t.Any, ...],
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> R:
    """Run ``fn`` in a worker process with the contexts rebuilt from ``snapshot``.

    ``snapshot`` is a :class:`ProcessSnapshot` as the plain tuple it travels as. Every
    job runs in a new, empty :class:`contextvars.Context`. The worker's own context may
    hold whatever the process inherited (a forked worker starts as a copy of the thread
    that forked it, possibly mid-request), and nothing of it, nor of an earlier job, may
    reach this one.
    """
    # Read by position: making the named tuple again costs a job more than the reads.
    app = _find_worker_app(snapshot[0], snapshot[1])
    if app is None:
        return contextvars.Context().run(fn, *args, **kwargs)
    if snapshot[2] is None and snapshot[3] is None:
        # No 'g' and no request: the app context is all there is to rebuild.
        return contextvars.Context().run(_call_in_app_context, app, None, fn, args, kwargs)
    return contextvars.Context().run(_call_in_process_contexts, app, snapshot, fn, args, kwargs)


def _find_worker_app(app_token: str | None, app_import: str | None) -> Flask | None:
    if app_token is not None:
        app = _registered_apps.get(app_token)
        if app is not None:
            return app
    if app_import is None:
        return None
    app = _worker_apps.get(app_import)
    if app is None:
        with _worker_apps_lock:
            app = _worker_apps.get(app_import)
            if app is None:
                app = _worker_apps[app_import] = _import_app(app_import)
    return app


def _import_app(target: str) -> Flask:
    # Flask's CLI already parses 'module:name', 'module:factory(args)' and plain
    # 'module' the way users know from 'flask --app'; reuse it rather than copy it.
    from flask.cli import ScriptInfo

    return ScriptInfo(app_import_path=target, set_debug_flag=False).load_app()


def _call_in_process_contexts(
    app: Flask,
    snapshot: tuple[t.Any, ...],
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> R:
    g_pickle = snapshot[2]
    g_values = None if g_pickle is None else pickle.loads(g_pickle)
    if snapshot[3] is None:  # no environ: submitted outside a request
        return _call_in_app_context(app, g_values, fn, args, kwargs)
    request_parts = ProcessSnapshot(*snapshot)
    result: R = _call_in_app_context(
        app, g_values, _call_with_request, (app, request_parts, fn, args, kwargs), {}
    )
    return result


def _call_with_request(
    app: Flask,
    snapshot: ProcessSnapshot,
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> R:
    # Runs inside the job's app context. The request is made, not pushed: pushing would
    # run the URL match, open the session and, at the end, 'teardown_request', none of
    # which a job should do. Setting the context variable is what makes 'request'
    # resolve to it; the whole Context is thrown away after the job.
    _cv_request.set(_request_context_from(app, snapshot))
    return fn(*args, **kwargs)


class _UnreadBody(io.RawIOBase):
    """The body of a request whose view had not read it before submitting the job."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        raise RuntimeError(
            "The request body was not read in the view before this job was submitted to"
            " a process pool, so the worker does not have it. Read it in the view first"
            " (for example 'request.get_data()' or 'request.form'), or pass what the job"
            " needs as an argument."
        )


def _request_context_from(app: Flask, snapshot: ProcessSnapshot) -> t.Any:
    from werkzeug.datastructures import ImmutableMultiDict

    environ = dict(t.cast(dict[str, t.Any], snapshot.environ))
    if snapshot.body is not None:
        environ["wsgi.input"] = io.BytesIO(snapshot.body)
    elif snapshot.form is not None:
        environ["wsgi.input"] = io.BytesIO(b"")
    else:
        environ["wsgi.input"] = _UnreadBody()
    environ["wsgi.errors"] = io.StringIO()
    request_ctx = app.request_context(environ)
    request = request_ctx.request
    request.view_args = snapshot.view_args
    if snapshot.body is not None:
        request.__dict__["_cached_data"] = snapshot.body
    if snapshot.form is not None:
        request.__dict__["form"] = ImmutableMultiDict(snapshot.form)
        request.__dict__.setdefault("files", ImmutableMultiDict())
    return request_ctx
