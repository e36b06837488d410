"""The :class:`Executor` extension: one object, bound to one or more apps."""

from __future__ import annotations

import concurrent.futures
import contextvars
import itertools
import logging
import multiprocessing
import sys
import typing as t
import weakref

from . import context
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


class Executor:
    """Runs jobs in the background, with the Flask contexts of the code that submits them.

    Bind it to an app now, or later with :meth:`init_app`, as with any Flask extension::

        executor = Executor(app)

        executor = Executor()
        executor.init_app(app)

    One executor may be bound to several apps; each gets its own pool, config and stored
    futures, chosen through ``current_app``.

    :param app: The app to bind to now.
    :param name: Names a second (third, ...) executor. Its config keys are prefixed with
        ``NAME_``, as in ``NAME_EXECUTOR_TYPE``, and it is registered in
        ``app.extensions`` as ``name + "executor"``.

    .. versionchanged:: 2.0
        ``repr()`` and :meth:`job` work before :meth:`init_app`; several apps may share
        one executor.
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

        :raises RuntimeError: if an executor of this name is already registered on ``app``.
        :raises ValueError: if a config value is not allowed (the message names the key).
        :raises TypeError: if a config value is of the wrong kind.
        """
        key = self.extension_name
        if key in app.extensions:
            raise RuntimeError(
                f"An extension is already registered on the app {app.name!r} as {key!r}."
                " Give each executor on an app its own name, as in"
                " Executor(app, name='reports')."
            )
        config = read_config(app, self.name)
        label = f"{key!r} of app {app.name!r}"
        state = _AppState(app, config, label)
        if not state.runs_in_process and config.push_app_context and state.app_import is None:
            _warn_if_workers_cannot_find_app(config, config_prefix(self.name))
        self._states[app] = state
        # Jobs of an executor bound to one app find its state without a weak dict
        # lookup, in a view or outside any app context (a CLI command, a script).
        self._sole_app = (weakref.ref(app), state) if len(self._states) == 1 else None
        app.extensions[key] = self

    def _state(self) -> tuple[Flask, _AppState]:
        # The app of the current app context if there is one, or else the only bound app.
        app = context.current_app_or_none()
        sole_app = self._sole_app
        if sole_app is not None:
            # Most executors are bound to one app: no lookup in the weak dict then.
            bound_app = sole_app[0]()
            if bound_app is not None and (app is None or app is bound_app):
                return bound_app, sole_app[1]
        if app is not None:
            state = self._states.get(app)
            if state is not None:
                return app, state
            raise RuntimeError(
                f"The executor {self.extension_name!r} is not bound to the app {app.name!r}"
                " of the current app context. Did you forget to call"
                " 'executor.init_app(app)'?"
            )
        states = list(self._states.items())
        if len(states) == 1:
            return states[0]
        if not states:
            raise RuntimeError(
                f"The executor {self.extension_name!r} is not bound to any app. Call"
                " 'executor.init_app(app)' first."
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

    # -- Running jobs ----------------------------------------------------------------

    @t.overload
    def submit(
        self, fn: t.Callable[P, t.Coroutine[t.Any, t.Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    @t.overload
    def submit(
        self, fn: t.Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    def submit(
        self, fn: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> FutureProxy[t.Any]:
        """Run ``fn(*args, **kwargs)`` in the background and return its future.

        The job runs with the contexts of the caller: ``current_app``, the request (if
        any), a copy of ``g`` and every other context variable, in a fresh app context
        of its own. ``fn`` may be an ``async def`` function; its coroutine then runs to
        completion in the worker.

        The future is a :class:`concurrent.futures.Future` and can be awaited.

        :raises TypeError: if ``fn`` is not callable.
        :raises RuntimeError: after :meth:`shutdown`.

        .. versionchanged:: 2.0
            Works outside app and request contexts; accepts coroutine functions.
        """
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

    def submit_stored(
        self, future_key: t.Hashable, fn: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any
    ) -> FutureProxy[t.Any]:
        """Like :meth:`submit`, and store the future in :attr:`futures` as ``future_key``.

        :raises ValueError: if a future is already stored under ``future_key``; the job
            is then not run.
        """
        return self._submit(fn, args, kwargs, future_key=future_key)

    def _submit(
        self,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        future_key: t.Hashable = None,
    ) -> FutureProxy[t.Any]:
        if not callable(fn):
            raise TypeError(
                f"The job given to 'submit' must be callable, but got {fn!r}. Pass the"
                " function itself, as in executor.submit(send_mail, address)."
            )
        app, state = self._state()
        if is_coroutine_function(fn):
            fn, args = call_coroutine_function, (fn, *args)
        variables, g_values = context.capture(app if state.push_app_context else None)
        return self._start(app, state, variables, g_values, fn, args, kwargs, future_key)

    def _start(
        self,
        app: Flask,
        state: _AppState,
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
        future._app = app if state.push_app_context else None
        future._variables = variables
        future._g_values = g_values
        # Attached before the pool sees the job, so that they always run in the worker.
        for callback in self._default_done_callbacks:
            future.add_done_callback(callback)
        config = state.config
        if config.propagate_exceptions:
            concurrent.futures.Future.add_done_callback(future, _FailureLogger(app, fn, args))
        if future_key is not None:
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
            if future_key is not None:
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
        variables, g_values = context.capture(app if state.push_app_context else None)

        def start(args: tuple[t.Any, ...]) -> FutureProxy[t.Any]:
            return self._start(app, state, variables.copy(), g_values, fn, args, {}, None)

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

        :param wait: Wait until the running and queued jobs are done.
        :param cancel_futures: Cancel the jobs that have not started.
        """
        self._state()[1].manager.shutdown(wait=wait, cancel_futures=cancel_futures)


class _FailureLogger:
    """Logs a failed job through ``app.logger`` (``EXECUTOR_PROPAGATE_EXCEPTIONS``).

    Flask-Executor 1.0 raised the exception in a done callback, where
    :mod:`concurrent.futures` only logs it, to its own logger, without saying which job.
    """

    __slots__ = ("app", "fn")

    def __init__(self, app: Flask, fn: t.Callable[..., t.Any], args: tuple[t.Any, ...]) -> None:
        self.app = app
        # A coroutine job is submitted as 'call_coroutine_function(fn, ...)': name 'fn'.
        self.fn = args[0] if fn is call_coroutine_function else fn

    def __call__(self, future: concurrent.futures.Future[t.Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.app.logger.error("The job %s failed.", describe(self.fn), exc_info=exc)


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


def _warn_if_workers_cannot_find_app(config: ExecutorConfig, prefix: str) -> None:
    context_ = config.pool_kwargs.get("mp_context")
    method = (
        context_.get_start_method()
        if context_ is not None and hasattr(context_, "get_start_method")
        else multiprocessing.get_start_method(allow_none=True) or _default_start_method()
    )
    if method != "fork":
        logger.warning(
            "Jobs of this %s pool will run without an app context: its workers start with"
            " %r and cannot import the app. Set '%sAPP_IMPORT' (or FLASK_APP) to the app"
            " as 'flask --app' takes it, such as 'myapp:create_app()'.",
            config.executor_type,
            method,
            prefix,
        )


def _default_start_method() -> str:
    # The first method listed is the default. (Asking 'get_context()' instead would fix
    # the start method for the whole program as a side effect.)
    return multiprocessing.get_all_start_methods()[0]
