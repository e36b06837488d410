"""The :class:`Executor` extension: one object, bound to one or more apps."""

from __future__ import annotations

import concurrent.futures
import contextvars
import itertools
import logging
import multiprocessing
import sys
import typing as t
import warnings
import weakref

from . import _cpython
from . import context
from ._arguments import MISSING
from ._arguments import pop_keyword
from .config import config_prefix
from .config import read_config
from .config import validate_name
from .futures import FutureCollection
from .futures import FutureProxy
from .jobs import AsyncExecutorJob
from .jobs import call_coroutine_function
from .jobs import describe
from .jobs import ExecutorJob
from .jobs import is_coroutine_function
from .pools import PoolManager
from .results import MapResult

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:  # pragma: no cover
    from typing_extensions import ParamSpec

if t.TYPE_CHECKING:
    from flask import Flask

    from .config import ExecutorConfig

__all__ = ["Executor"]

logger = logging.getLogger("flask_executor")

P = ParamSpec("P")
R = t.TypeVar("R")
_DoneCallback = t.Callable[[concurrent.futures.Future[t.Any]], object]


class _AppState:
    """What one executor keeps for one app."""

    __slots__ = (
        "app_import",
        "app_token",
        "config",
        "futures",
        "manager",
        "push_app_context",
        "runs_in_process",
    )

    def __init__(self, app: Flask, config: ExecutorConfig, label: str) -> None:
        # Not the app itself: the executor's states are values of a weak dict keyed by
        # the app, which they must not keep alive. (Futures stored in 'futures' do refer
        # to it, as their jobs' callbacks need it, so an app with stored futures lives
        # as long as they are stored.)
        self.config = config
        self.push_app_context = config.push_app_context
        self.manager = PoolManager(config, label)
        #: Whether jobs run in this process, with the live contexts (see 'Backend.local').
        self.runs_in_process = self.manager.backend_class.local
        self.futures = FutureCollection(config.futures_max_length)
        self.app_token = None if self.runs_in_process else context.register_app(app)
        self.app_import = context.app_import_target(config.app_import)


class Executor(concurrent.futures.Executor):
    """Runs jobs in the background, with the Flask contexts of the code that submits them.

    Bind it to an app now, or later with :meth:`init_app`, as with any Flask extension::

        executor = Executor(app)

        executor = Executor()
        executor.init_app(app)

    One executor may be bound to several apps; each gets its own pool, config and stored
    futures, chosen through ``current_app``.

    It is a :class:`concurrent.futures.Executor`, so it can be passed wherever one is
    expected, such as :meth:`asyncio.loop.run_in_executor`, and used in a ``with``
    block, which shuts the current app's pool down at the end, waiting for its jobs.

    :param app: The app to bind to now.
    :param name: Names a second (third, ...) executor. Its config keys are prefixed with
        ``NAME_``, as in ``NAME_EXECUTOR_TYPE``, and it is registered in
        ``app.extensions`` as ``name + "executor"``.

    .. versionchanged:: 2.0
        ``repr()`` and :meth:`job` work before :meth:`init_app`; several apps may share
        one executor. A subclass of :class:`concurrent.futures.Executor`.
    """

    def __init__(self, app: Flask | None = None, name: str = "") -> None:
        self.name = validate_name(name)
        self._states: weakref.WeakKeyDictionary[Flask, _AppState] = weakref.WeakKeyDictionary()
        self._default_done_callbacks: list[_DoneCallback] = []
        self._sole_app: tuple[weakref.ref[Flask], _AppState] | None = None
        if app is not None:
            self.init_app(app)

    @property
    def extension_name(self) -> str:
        """The key of this executor in ``app.extensions``."""
        return self.name + "executor"

    def __repr__(self) -> str:
        apps = ", ".join(repr(app.name) for app in list(self._states.keys()))
        name = f" {self.name!r}" if self.name else ""
        return f"<Executor{name} apps=[{apps}]>"

    # -- Binding ---------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Bind the executor to ``app``: read and check its config, register it.

        Nothing is started: the pool is built when the first job is submitted.

        Binding an app again, as Flask-Executor 1.0 allowed, replaces the binding: the
        config is read again, and the pool of the old binding is shut down without
        waiting, so that the jobs it runs or has queued still finish and their futures
        are settled, after which it is freed. Stored futures are kept. Another executor
        of the same name takes over ``app.extensions`` from this one, as in 1.0.

        :param app: The app, or ``current_app`` (the app it stands for is bound).
        :raises ValueError: if a config value is not allowed (the message names the key).
        :raises TypeError: if a config value is of the wrong kind.

        .. versionchanged:: 2.0
            Accepts ``current_app``; binding the same app again replaces the binding.
        """
        # 'Executor(current_app)', as in 1.0: a proxy cannot key the weak dict of states,
        # and would stand for a different app at each use.
        get_current_object = getattr(app, "_get_current_object", None)
        if get_current_object is not None:
            app = get_current_object()
        key = self.extension_name
        config = read_config(app, self.name)
        label = f"{key!r} of app {app.name!r}"
        state = _AppState(app, config, label)
        if not state.runs_in_process and config.push_app_context and state.app_import is None:
            _warn_if_workers_cannot_find_app(config, config_prefix(self.name), self)
        old_state = self._states.get(app)
        if old_state is not None:
            # The results of stored jobs are still to be fetched, as in 1.0, whose
            # executor kept one collection whatever 'init_app' did. The same collection,
            # not a copy: a job stored through the old binding while this runs lands
            # where 'executor.futures' finds it, and a future popped from it is not
            # kept alive by the other. Copied only if the bound changed, as a collection
            # keeps its bound for life.
            old_futures = old_state.futures
            if old_futures.max_length == config.futures_max_length:
                state.futures = old_futures
            else:
                for future_key, future in old_futures.items():
                    state.futures.add(future_key, future)
        self._states[app] = state
        # Jobs of an executor bound to one app find its state without a weak dict
        # lookup, in a view or outside any app context (a CLI command, a script).
        self._sole_app = (weakref.ref(app), state) if len(self._states) == 1 else None
        app.extensions[key] = self
        if old_state is not None:
            # Not waiting: 'init_app' may run while the old pool has long jobs. The pool
            # runs what it has queued and lets its workers go once that is done; it is
            # freed when the last of its jobs lets go of it, since nothing else keeps
            # the old state. A submit that took the old state just before this line (a
            # re-binding while the app serves requests) is sent to the new binding by
            # '_submit'; a 'map' with a 'buffersize', started before it, fails for the
            # items it has yet to start, as it would after 'shutdown'.
            old_state.manager.shutdown(wait=False)

    def _state(self) -> tuple[Flask, _AppState]:
        sole_app = self._sole_app
        if sole_app is not None:
            # Most executors are bound to one app. That app is used whatever app context
            # is active, even another app's, as 1.0 did after its pull request 58; and
            # there is no lookup in the weak dict.
            bound_app = sole_app[0]()
            if bound_app is not None:
                return bound_app, sole_app[1]
        # Otherwise the app of the current app context chooses, if it is bound.
        app = context.current_app_or_none()
        if app is not None:
            state = self._states.get(app)
            if state is not None:
                return app, state
        states = list(self._states.items())
        if len(states) == 1:
            return states[0]
        if not states:
            raise RuntimeError(
                f"The executor {self.extension_name!r} is not bound to any app. Call"
                " 'executor.init_app(app)' first."
            )
        if app is not None:
            raise RuntimeError(
                f"The executor {self.extension_name!r} is bound to {len(states)} apps,"
                f" and the app {app.name!r} of the current app context is not one of them."
                " Did you forget to call 'executor.init_app(app)'?"
            )
        raise RuntimeError(
            f"The executor {self.extension_name!r} is bound to {len(states)} apps and no"
            " app context is active to choose one. Use it inside a view, or inside"
            " 'with app.app_context():'."
        )

    @property
    def futures(self) -> FutureCollection:
        """The futures stored with :meth:`submit_stored`, for the current app."""
        return self._state()[1].futures

    @property
    def pool(self) -> concurrent.futures.Executor:
        """The pool that runs the current app's jobs, built now if no job has yet.

        A new pool replaces it after a fork, or after a worker process died; read it
        when needed rather than keeping it.

        :raises RuntimeError: after :meth:`shutdown`.

        .. versionadded:: 2.0
            Replaces 1.0's ``executor._self``.
        """
        return self._state()[1].manager.pool

    @property
    def max_workers(self) -> int | None:
        """How many workers the current app's pool runs at most.

        :data:`EXECUTOR_MAX_WORKERS` if it is set. Otherwise the number the pool chose
        for itself, read from the pool, which is built for it; None for a pool that
        does not say, or one that is shut down.

        .. versionadded:: 2.0
            Replaces 1.0's ``executor._max_workers``.
        """
        state = self._state()[1]
        configured = state.config.max_workers
        if configured is not None:
            return configured
        try:
            pool = state.manager.pool
        except RuntimeError:  # shut down: there is no pool to ask
            return None
        return _cpython.max_workers_of(pool)

    # 1.0 forwarded unknown attributes to its pool, and its own tests read these three.
    @property
    def _self(self) -> concurrent.futures.Executor:
        _deprecated("_self", "use 'executor.pool'")
        return self.pool

    @property
    def _max_workers(self) -> int | None:
        _deprecated("_max_workers", "use 'executor.max_workers'")
        return self.max_workers

    @property
    def _shutdown(self) -> bool:
        _deprecated(
            "_shutdown",
            "after 'executor.shutdown()', submitting a job raises RuntimeError",
        )
        return self._state()[1].manager.is_shut_down

    # -- Running jobs ----------------------------------------------------------------

    @t.overload
    def submit(
        self, fn: t.Callable[P, t.Coroutine[t.Any, t.Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    @t.overload
    def submit(
        self, fn: t.Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    # 'fn' as a keyword, as 1.0 allowed: the function's arguments cannot be checked then.
    @t.overload
    def submit(
        self, *, fn: t.Callable[..., t.Coroutine[t.Any, t.Any, R]], **kwargs: t.Any
    ) -> FutureProxy[R]: ...

    @t.overload
    def submit(self, *, fn: t.Callable[..., R], **kwargs: t.Any) -> FutureProxy[R]: ...

    # mypy does not know that a keyword named like a positional-only parameter goes to
    # '**kwargs', and so believes this cannot take 'fn=' (it can; see below).
    def submit(  # type: ignore[misc]
        self, fn: t.Callable[..., t.Any] = MISSING, /, *args: t.Any, **kwargs: t.Any
    ) -> FutureProxy[t.Any]:
        """Run ``fn(*args, **kwargs)`` in the background and return its future.

        The job runs with the contexts of the caller: ``current_app``, the request (if
        any), a copy of ``g`` and every other context variable, in a fresh app context
        of its own. ``fn`` may be an ``async def`` function; its coroutine then runs to
        completion in the worker.

        The future is a :class:`concurrent.futures.Future` and can be awaited.

        ``fn`` may also be passed as a keyword, ``submit(fn=send_mail, address=...)``.
        Passed first, it leaves the keyword ``fn`` to the job's own arguments.

        :raises TypeError: if ``fn`` is not callable, or not given.
        :raises RuntimeError: after :meth:`shutdown`.

        .. versionchanged:: 2.0
            Works outside app and request contexts; accepts coroutine functions.
        """
        # 'fn=' given as a keyword is in 'kwargs'; see '_arguments'.
        if fn is MISSING:
            fn = pop_keyword("submit", "fn", "the function to run", "first", kwargs)
        return self._submit(fn, args, kwargs)

    @t.overload
    def submit_stored(
        self,
        future_key: t.Hashable,
        fn: t.Callable[P, t.Coroutine[t.Any, t.Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> FutureProxy[R]: ...

    @t.overload
    def submit_stored(
        self, future_key: t.Hashable, fn: t.Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    # Keywords, as 1.0 allowed ('submit_stored(future_key=key, fn=run, cmd=cmd)').
    @t.overload
    def submit_stored(
        self,
        future_key: t.Hashable = ...,
        *,
        fn: t.Callable[..., t.Coroutine[t.Any, t.Any, R]],
        **kwargs: t.Any,
    ) -> FutureProxy[R]: ...

    @t.overload
    def submit_stored(
        self, future_key: t.Hashable = ..., *, fn: t.Callable[..., R], **kwargs: t.Any
    ) -> FutureProxy[R]: ...

    def submit_stored(  # type: ignore[misc]  # as 'submit'
        self,
        future_key: t.Hashable = MISSING,
        fn: t.Callable[..., t.Any] = MISSING,
        /,
        *args: t.Any,
        **kwargs: t.Any,
    ) -> FutureProxy[t.Any]:
        """Like :meth:`submit`, and store the future in :attr:`futures` as ``future_key``.

        ``future_key`` and ``fn`` may also be passed as keywords. Those passed first
        leave their keywords to the job's own arguments.

        :raises ValueError: if a future is already stored under ``future_key``, or the
            key is None; the job is then not run.
        :raises TypeError: if ``future_key`` is not hashable; the job is then not run.

        .. versionchanged:: 2.0
            A key of None, or an unhashable key, is refused before the job runs.
        """
        if future_key is MISSING:
            future_key = pop_keyword("submit_stored", "future_key", "a key", "first", kwargs)
        if fn is MISSING:
            fn = pop_keyword("submit_stored", "fn", "the function to run", "second", kwargs)
        return self._submit(fn, args, kwargs, future_key=future_key)

    def _submit(
        self,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        future_key: t.Hashable = MISSING,
    ) -> FutureProxy[t.Any]:
        # 'future_key' is MISSING for a job that is not stored.
        if future_key is not MISSING:
            _check_future_key(future_key)
        if not callable(fn):
            raise TypeError(
                f"The job given to 'submit' must be callable, but got {fn!r}. Pass the"
                " function itself, as in executor.submit(send_mail, address)."
            )
        app, state = self._state()
        job_fn, job_args = fn, args
        if is_coroutine_function(fn):
            job_fn, job_args = call_coroutine_function, (fn, *args)
        job_app, variables, g_values = _capture(app, state)
        try:
            return self._start(
                app, state, job_app, variables, g_values, job_fn, job_args, kwargs, future_key
            )
        except RuntimeError:
            # 'init_app' bound the app again since '_state' was read, and shut the old
            # binding's pool down: the job goes to the new binding, as it would have a
            # moment later. (Nothing of it ran; the stored futures are shared.)
            if state.manager.is_shut_down and self._states.get(app) not in (None, state):
                return self._submit(fn, args, kwargs, future_key)
            raise

    def _start(
        self,
        app: Flask,
        state: _AppState,
        job_app: Flask | None,
        variables: contextvars.Context,
        g_values: dict[str, t.Any] | None,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        future_key: t.Hashable,
    ) -> FutureProxy[t.Any]:
        # The hot path of every job; 'submit', 'submit_stored', jobs and 'map' meet here.
        # One object per job, its future, made by the backend chosen for the pool.
        manager = state.manager
        future = manager.backend_class.future_class()
        # The app whose fresh app context the job runs in, or None for none.
        future._app = job_app
        future._variables = variables
        future._g_values = g_values
        # Attached before the pool sees the job, so that they always run in the worker.
        for callback in self._default_done_callbacks:
            future.add_done_callback(callback)
        config = state.config
        if config.propagate_exceptions:
            concurrent.futures.Future.add_done_callback(
                future, _FailureLogger(app, fn, args, future_key)
            )
        if future_key is not MISSING:
            state.futures.add(future_key, future)
        try:
            snapshot = (
                None
                if state.runs_in_process
                else context.snapshot_for_process(
                    state.app_token, state.app_import, config.push_app_context
                )
            )
            manager.start(future, fn, args, kwargs, snapshot)
        except BaseException:
            if future_key is not MISSING:
                state.futures.pop(future_key)
            raise
        return future

    @t.overload
    def map(
        self,
        fn: t.Callable[..., t.Coroutine[t.Any, t.Any, R]],
        *iterables: t.Iterable[t.Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapResult[R]: ...

    @t.overload
    def map(
        self,
        fn: t.Callable[..., R],
        *iterables: t.Iterable[t.Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapResult[R]: ...

    def map(
        self,
        fn: t.Callable[..., t.Any],
        *iterables: t.Iterable[t.Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapResult[t.Any]:
        """Run ``fn`` on each item of ``iterables``; return the results in order.

        Like :meth:`concurrent.futures.Executor.map`, but each item is a job with its own
        copy of the caller's contexts, and the result can be iterated with ``for`` or
        ``async for``.

        :param timeout: Seconds, counted from this call, after which iterating raises
            :exc:`TimeoutError`.
        :param chunksize: For process pools, how many items to send to a worker at once.
            Thread pools ignore it, as in :mod:`concurrent.futures`.
        :param buffersize: At most this many jobs in flight; the next item is read from
            the input only when a result is taken. None submits every item now.

        .. versionchanged:: 2.0
            Contexts are copied per item; ``buffersize`` and ``async for`` were added.
        """
        if not callable(fn):
            raise TypeError(
                f"The job given to 'map' must be callable, but got {fn!r}. Pass the"
                " function itself, as in executor.map(resize, paths)."
            )
        if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
            raise ValueError(
                f"'chunksize' must be a whole number of at least 1, not {chunksize!r}."
            )
        if buffersize is not None and (
            not isinstance(buffersize, int) or isinstance(buffersize, bool) or buffersize < 1
        ):
            raise ValueError(
                f"'buffersize' must be None or a whole number of at least 1, not {buffersize!r}."
            )
        app, state = self._state()
        arguments: t.Iterator[tuple[t.Any, ...]] = zip(*iterables)
        chunked = chunksize > 1 and not state.runs_in_process
        if chunked:
            item_fn = fn
            arguments = ((item_fn, chunk) for chunk in _chunks(arguments, chunksize))
            fn = _run_chunk
        elif is_coroutine_function(fn):
            coroutine_fn = fn
            arguments = ((coroutine_fn, *args) for args in arguments)
            fn = call_coroutine_function
        # Captured once, here, where the caller is; each item runs in its own copy, so
        # no two workers ever enter the same Context (1.0's "Token was created in a
        # different Context").
        job_app, variables, g_values = _capture(app, state)

        def start(args: tuple[t.Any, ...]) -> FutureProxy[t.Any]:
            return self._start(
                app, state, job_app, variables.copy(), g_values, fn, args, {}, MISSING
            )

        return MapResult(start, arguments, timeout=timeout, buffersize=buffersize, chunked=chunked)

    @t.overload
    def job(  # type: ignore[overload-overlap]
        self, fn: t.Callable[P, t.Coroutine[t.Any, t.Any, R]]
    ) -> AsyncExecutorJob[P, R]: ...

    @t.overload
    def job(self, fn: t.Callable[P, R]) -> ExecutorJob[P, R]: ...

    def job(
        self, fn: t.Callable[..., t.Any]
    ) -> ExecutorJob[..., t.Any] | AsyncExecutorJob[..., t.Any]:
        """Decorate a function to give it ``submit``, ``submit_stored`` and ``map``.

        The decorated function can still be called directly. Works before
        :meth:`init_app`, and on ``async def`` functions.

        .. versionchanged:: 2.0
            Works with every pool type, and on ``async def`` functions.
        """
        if not callable(fn):
            raise TypeError(f"'@executor.job' must decorate a function, not {fn!r}.")
        if is_coroutine_function(fn):
            return AsyncExecutorJob(self, fn)
        return ExecutorJob(self, fn)

    def add_default_done_callback(self, fn: _DoneCallback) -> None:
        """Add a callback to every future this executor returns from now on.

        It is called as ``fn(future)`` when the job is done, in the worker, with the job's
        Flask contexts. An exception it raises is logged, not raised.
        """
        if not callable(fn):
            raise TypeError(f"The default done callback must be callable, not {fn!r}.")
        self._default_done_callbacks.append(fn)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the pool of the current app down, as :meth:`concurrent.futures.Executor.shutdown`.

        Safe to call more than once. Afterwards, submitting raises :exc:`RuntimeError`.
        A ``with executor:`` block calls ``shutdown(wait=True)`` when it ends.

        :param wait: Wait until the running and queued jobs are done.
        :param cancel_futures: Cancel the jobs that have not started.
        """
        self._state()[1].manager.shutdown(wait=wait, cancel_futures=cancel_futures)


def _capture(
    app: Flask, state: _AppState
) -> tuple[Flask | None, contextvars.Context, dict[str, t.Any] | None]:
    """The caller's contexts for a job of ``app``: the app whose fresh app context the
    job runs in (None for none), the caller's context variables, and a copy of ``g``."""
    if state.push_app_context:
        variables, g_values = context.capture(app)
        return app, variables, g_values
    # EXECUTOR_PUSH_APP_CONTEXT = False: no 'g', and never the caller's app context.
    job_app, variables = context.capture_without_app_context(app)
    return job_app, variables, None


def _deprecated(attribute: str, instead: str) -> None:
    warnings.warn(
        f"'executor.{attribute}' is kept from Flask-Executor 1.0 and is deprecated;"
        f" {instead}. It will be removed in a future version.",
        DeprecationWarning,
        # Points at the code that read the attribute, not at the property.
        stacklevel=3,
    )


class _FailureLogger:
    """Logs a failed job to the ``flask_executor`` logger (``EXECUTOR_PROPAGATE_EXCEPTIONS``).

    Flask-Executor 1.0 raised the exception in a done callback, where
    :mod:`concurrent.futures` only logs it, to its own logger, without saying which job.

    Not through ``app.logger``: there the record would read "ERROR in extension" (the
    module that logged it), and could only be told from the app's own errors by its
    text. On the extension's logger it can be routed, filtered or silenced on its own,
    and by default it still reaches the console: through the root logger's handlers, or
    Python's last-resort handler when none is configured. The message names the job and
    its key; the record also carries them as ``job``, ``future_key`` and ``flask_app``.
    """

    __slots__ = ("app_name", "fn", "future_key")

    def __init__(
        self,
        app: Flask,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        future_key: t.Hashable = MISSING,
    ) -> None:
        # The name only: a logger kept for a job that is stored for a long time should
        # not keep its app alive on its own.
        self.app_name = app.name
        # A coroutine job is submitted as 'call_coroutine_function(fn, ...)': name 'fn'.
        self.fn = args[0] if fn is call_coroutine_function else fn
        self.future_key = future_key

    def __call__(self, future: concurrent.futures.Future[t.Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        job = describe(self.fn)  # "'module.qualname'", quoted for the message
        stored = self.future_key is not MISSING
        extra = {
            "job": job[1:-1],
            "future_key": self.future_key if stored else None,
            "flask_app": self.app_name,
        }
        if not stored:
            logger.error("The job %s failed.", job, exc_info=exc, extra=extra)
        else:
            logger.error(
                "The job %s stored under %r failed.",
                job,
                self.future_key,
                exc_info=exc,
                extra=extra,
            )


def _check_future_key(future_key: object) -> None:
    # Checked before anything starts. A key of None is nearly always a bug in the
    # caller (an id read with 'request.args.get' that was missing), and 1.0 quietly ran
    # such a job unstored; an unhashable key would fail in the collection with Python's
    # bare "unhashable type".
    if future_key is None:
        raise ValueError(
            "The key given to 'submit_stored' is None, which cannot be a key: the future"
            " could not be fetched by it. Use a string, a number or another hashable"
            " value, as in executor.submit_stored('report', make_report)."
        )
    try:
        hash(future_key)
    except TypeError:
        raise TypeError(
            f"The key given to 'submit_stored' is {future_key!r}, which is not hashable"
            f" ({type(future_key).__name__!r}), so futures cannot be stored under it. Use"
            " a string, a number or a tuple, as in executor.submit_stored('report',"
            " make_report)."
        ) from None


def _chunks(
    arguments: t.Iterator[tuple[t.Any, ...]], size: int
) -> t.Iterator[list[tuple[t.Any, ...]]]:
    while chunk := list(itertools.islice(arguments, size)):
        yield chunk


def _run_chunk(fn: t.Callable[..., t.Any], chunk: list[tuple[t.Any, ...]]) -> list[t.Any]:
    # Runs in a worker process: one round trip for several items.
    if is_coroutine_function(fn):
        return [call_coroutine_function(fn, *args) for args in chunk]
    return [fn(*args) for args in chunk]


#: The start methods each executor has warned about, so that binding it to app after app
#: (an app factory called once per test, say) warns once, not at every 'init_app'.
_warned_start_methods: weakref.WeakKeyDictionary[Executor, set[str]] = weakref.WeakKeyDictionary()


def _warn_if_workers_cannot_find_app(
    config: ExecutorConfig, prefix: str, executor: Executor
) -> None:
    context_ = config.pool_kwargs.get("mp_context")
    method = (
        context_.get_start_method()
        if context_ is not None and hasattr(context_, "get_start_method")
        else multiprocessing.get_start_method(allow_none=True) or _default_start_method()
    )
    if method == "fork":
        return
    # Once per process for each executor (so for each config prefix) and start method.
    # No lock: two threads binding the same executor at the same instant may both warn,
    # which is harmless, while a lock taken here could be inherited held by a fork.
    warned = _warned_start_methods.setdefault(executor, set())
    if method in warned:
        return
    warned.add(method)
    logger.warning(
        "Jobs of this %s pool will run without an app context: its workers start with"
        " %r and cannot import the app. Set '%sAPP_IMPORT' (or FLASK_APP) to the app"
        " as 'flask --app' takes it, such as 'myapp:create_app()'. (Said once per"
        " executor and start method.)",
        config.executor_type,
        method,
        prefix,
    )


def _default_start_method() -> str:
    # The first method listed is the default. (Asking 'get_context()' instead would fix
    # the start method for the whole program as a side effect.)
    return multiprocessing.get_all_start_methods()[0]
