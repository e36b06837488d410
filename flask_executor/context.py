"""Carrying Flask's contexts from the code that submits a job to the worker that runs it.

This is the only module that knows how Flask keeps its contexts, so that a change in
Flask is a change to this file alone. It uses Flask's public API (``app.app_context()``,
``AppContext.push`` and ``pop`` through ``with``, ``has_request_context``) wherever that
can do the job, and three private names of Flask where it cannot; each is checked by
``tests/test_contexts.py::test_the_flask_internals_this_module_relies_on`` and listed in
:doc:`/design`:

* ``flask.globals._cv_app``, the context variable that holds the app context (Flask 2.2
  and later): read at submit to find the caller's app context and ``g``.
* ``flask.globals._cv_request`` (Flask 2.2 to 3.1): set in a process worker to make the
  rebuilt request current without pushing it.
* ``AppContext._request`` (Flask 3.2): push and pop decide by this attribute whether the
  context owns a request, which is how a job's context can *show* a request it does not
  own (:class:`_JobAppContext`).

Flask's version is never read: what Flask offers is detected once, at import.

The model, for workers that share this process (threads):

* At submit, :func:`capture` takes ``contextvars.copy_context()``. That one O(1) call
  carries every context variable of the caller: Flask's contexts (so ``request`` and
  ``session`` resolve to the submitting request), a tracing span, a request id. It also
  takes a shallow copy of ``g``, because ``g`` lives on the app context and the job gets a
  fresh one.
* In the worker, :func:`run_job` enters that copy and pushes a *fresh* app context with
  Flask's own push and pop, so the job has its own ``g`` and ``teardown_appcontext``
  functions (Flask-SQLAlchemy's session removal among them) run exactly once, when the job
  ends.

The submitting request is never copied, pushed or popped. Pushing a copy would re-match
the URL and reopen the session, and popping it would run ``teardown_request`` and close
the request's uploaded files while the view may still be using them (Flask-Executor 1.0
did both). The job reads the live request object instead; the view owns its teardown.
Where that request lives depends on Flask:

* Flask 2.2 to 3.1 keep the request context in a context variable of its own, which the
  copy carries: the job's fresh app context sits beside it.
* Flask 3.2 merges the request context into the app context: one context variable holds
  both, and a fresh ``app.app_context()`` has no request. The job's context is then a
  :class:`_JobAppContext`, a fresh app context (own ``g``, own teardown) that shows the
  submitting context's request, session and URL adapter without owning them.

For workers in other processes nothing can be shared, so :func:`snapshot_for_process`
takes a picklable snapshot and :func:`run_job_in_process` rebuilds the contexts from it in
the worker. See :doc:`/process-pools`.
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import pickle
import threading
import typing as t
import weakref

import flask.globals
from flask import Flask
from flask import has_request_context
from flask import request as request_proxy
from flask.ctx import AppContext
from flask.globals import _cv_app

from ._async_extra import explain_missing_asgiref
from ._fork import reset_after_fork

__all__ = [
    "MERGED_REQUEST_CONTEXT",
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
    "wrap_late_callback",
]

logger = logging.getLogger("flask_executor")

R = t.TypeVar("R")

# Flask 2.2 to 3.1 hold the request context in a context variable of its own; Flask 3.2
# removed it when it merged the request context into the app context. Looked up with
# getattr: Flask 3.2's module answers unknown names through a __getattr__ that warns
# only for the deprecated names, and raises AttributeError for this one.
_cv_request: contextvars.ContextVar[t.Any] | None = getattr(flask.globals, "_cv_request", None)

#: True where the app context carries the request (Flask 3.2 and later).
MERGED_REQUEST_CONTEXT = _cv_request is None


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
    if has_request_context():
        return app, variables
    return None, _without_flask_contexts(variables)


def _without_flask_contexts(variables: contextvars.Context) -> contextvars.Context:
    if _cv_app not in variables:
        return variables
    # A variable cannot be unset in a copied Context, only left out of a new one.
    without_app = contextvars.Context()
    for var, value in variables.items():
        if var is not _cv_app and var is not _cv_request:
            without_app.run(var.set, value)
    return without_app


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


def wrap_late_callback(
    app_ref: weakref.ref[Flask] | None, fn: t.Callable[[R], object]
) -> t.Callable[[R], None]:
    """Wrap a done callback added after its job's contexts were let go.

    Such a callback runs at once, in the thread that adds it, like any call made there:
    with that thread's contexts. If that thread has no app context of the job's app
    (``app_ref``, when the job had one and the app still exists), the callback gets a
    fresh one, without the thread's other Flask contexts, which belong to another app or
    to none. Added in the view that submitted the job, it so sees that view's request
    and ``g``, as a callback added a moment earlier, before the job was done, would.
    """

    def run_late_callback(future: R) -> None:
        app = None if app_ref is None else app_ref()
        if app is None or current_app_or_none() is app:
            fn(future)
        else:
            variables = _without_flask_contexts(contextvars.copy_context())
            run_job(app, variables, None, fn, (future,), {})

    return run_late_callback


def _call_in_app_context(
    app: Flask,
    g_values: dict[str, t.Any] | None,
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
    request_holder: t.Any = None,
) -> R:
    # Runs inside the job's own copy of the context variables. 'request_holder' is the
    # context whose request the job shows on Flask 3.2: given for a process job, else
    # the caller's context, which the copy holds as the current one.
    if MERGED_REQUEST_CONTEXT:
        if request_holder is None:
            request_holder = _cv_app.get(None)
        if request_holder is not None and request_holder.has_request:
            app_ctx: AppContext = _JobAppContext(app, request_holder)
        else:
            app_ctx = app.app_context()
    else:
        app_ctx = app.app_context()
    if g_values:
        app_ctx.g.__dict__.update(g_values)
    # Flask's own push and pop: signals, nested pushes and teardown as Flask does them.
    # 'with' passes the job's exception to the teardown functions, as a view's does.
    try:
        with app_ctx:
            return fn(*args, **kwargs)
    except Exception as exc:  # free until raised
        explain_missing_asgiref(exc)  # an async teardown function, without asgiref
        raise


class _JobAppContext(AppContext):
    """Flask 3.2: a job's fresh app context that shows another context's request.

    Flask 3.2 reads ``request``, ``session`` and the URL adapter from the current app
    context, through the public ``has_request``, ``request`` and ``session`` properties
    and the ``url_adapter`` attribute, which this class answers from the submitting
    context (``holder``). Its own ``_request`` stays None, and that attribute is what
    Flask's push and pop read to decide whether to match the URL, open the session, run
    ``teardown_request`` and close the request: none of that happens for a job. The
    ``g``, the teardown and the signals are this context's own, as for any app context.
    """

    _holder: t.Any

    def __init__(self, app: Flask, holder: t.Any) -> None:
        # A job's context made from another job's shows the same request directly.
        if isinstance(holder, _JobAppContext):
            holder = holder._holder
        super().__init__(app)
        self._holder = holder
        # Bound to the request's host, so that 'url_for' in the job builds the URLs the
        # view would.
        self.url_adapter = holder.url_adapter

    @property
    def has_request(self) -> bool:
        return True

    @property
    def request(self) -> t.Any:
        return self._holder.request

    @property
    def session(self) -> t.Any:
        # The request's own session: opened on first use (Flask 3.2 loads it lazily),
        # and marked accessed, as in the view.
        return self._holder.session

    def copy(self) -> _JobAppContext:
        # 'copy_current_request_context' in a job: another context that shows the same
        # request, which it does not own either. (Flask's copy passes 'request=' to the
        # class, which would make the copy own, and close, the view's request.)
        return type(self)(self.app, self._holder)


# -- Process workers ---------------------------------------------------------------------

# Apps this process has bound an executor to, by a token that travels with each job.
# A worker made by fork inherits this dict, so it finds the very app object; a spawned
# worker finds it empty and imports the app instead (``_worker_apps``). Weak: an app
# whose executor was bound here must still be freed once nothing else uses it. A job in
# flight holds its app through its future, so the app lives while its jobs run.
_registered_apps: weakref.WeakValueDictionary[str, Flask] = weakref.WeakValueDictionary()


class _PinAppsInWorker:
    # In a forked child, the apps that lived when it was forked are held for as long as
    # the child lives: it is a pool's worker, whose jobs look them up by token, and the
    # reference that kept an app alive in the parent may have been on the stack of a
    # thread that does not exist in the child.
    def __init__(self) -> None:
        self.pinned: list[Flask] = []

    def _reset_after_fork(self) -> None:
        self.pinned = list(_registered_apps.values())


_pin_apps_in_worker = _PinAppsInWorker()
reset_after_fork(_pin_apps_in_worker)
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
    if has_request_context():
        request = request_proxy._get_current_object()  # type: ignore[attr-defined]
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
    # The request is made, not pushed: pushing would run the URL match, open the session
    # and, at the end, 'teardown_request', none of which a job should do.
    request_ctx = _request_context_from(app, ProcessSnapshot(*snapshot))
    if _cv_request is None:
        # Flask 3.2: the job's app context shows the rebuilt request (_JobAppContext).
        return _call_in_app_context(app, g_values, fn, args, kwargs, request_ctx)
    # Flask 2.2 to 3.1: setting the context variable is what makes 'request' resolve to
    # it; this whole Context is thrown away after the job.
    _cv_request.set(request_ctx)
    return _call_in_app_context(app, g_values, fn, args, kwargs)


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
