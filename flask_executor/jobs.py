"""Functions decorated with ``@executor.job``, and how a worker runs ``async def`` jobs.

The decorated function is still the function: calling it runs it here and now (and
awaiting an ``async def`` one runs it in the caller's event loop). What the decorator adds
is ``submit``, ``submit_stored`` and ``map``, which run it on the executor.

A coroutine function submitted as a job runs to completion in the worker, on an event
loop that belongs to the worker's thread (:func:`run_coroutine`).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import types
import typing as t
import weakref

from ._fork import reset_after_fork

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:  # pragma: no cover
    from typing_extensions import ParamSpec

from ._arguments import MISSING
from ._arguments import pop_keyword

if t.TYPE_CHECKING:
    import asyncio

    from .futures import FutureProxy
    from .results import MapResult

__all__ = [
    "AsyncExecutorJob",
    "ExecutorJob",
    "call_coroutine_function",
    "describe",
    "is_coroutine_function",
    "run_coroutine",
]

P = ParamSpec("P")
R = t.TypeVar("R")
F = t.TypeVar("F", bound=t.Callable[..., t.Any])


class _Executor(t.Protocol):
    # What a job needs of its executor; 'Executor' itself, without importing it.
    def _submit(
        self,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        future_key: t.Hashable = ...,  # not stored when left out
    ) -> FutureProxy[t.Any]: ...

    def map(
        self,
        fn: t.Callable[..., t.Any],
        *iterables: t.Iterable[t.Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapResult[t.Any]: ...


class _Job(t.Generic[P, R]):
    # What sync and async jobs share. R is the type of the job's *result*: what
    # ``submit(...).result()`` returns and ``await submit(...)`` gives.

    is_async: t.ClassVar[bool] = False

    def __init__(self, executor: _Executor, fn: t.Callable[P, t.Any]) -> None:
        self.executor = executor
        self.fn = fn
        functools.update_wrapper(self, fn)

    def submit(self, /, *args: P.args, **kwargs: P.kwargs) -> FutureProxy[R]:
        """Run the function on the executor; see :meth:`Executor.submit`."""
        # The job itself is what is submitted, not 'self.fn': a process pool pickles
        # functions by their module and name, which now names this object.
        return self.executor._submit(self, args, kwargs)

    @t.overload
    def submit_stored(
        self, future_key: t.Hashable, /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    # 'future_key' as a keyword, as 1.0 allowed: the arguments cannot be checked then.
    @t.overload
    def submit_stored(self, *, future_key: t.Hashable, **kwargs: t.Any) -> FutureProxy[R]: ...

    def submit_stored(  # type: ignore[misc]  # as 'Executor.submit'
        self, future_key: t.Hashable = MISSING, /, *args: t.Any, **kwargs: t.Any
    ) -> FutureProxy[R]:
        """Run the function and store its future; see :meth:`Executor.submit_stored`."""
        if future_key is MISSING:
            future_key = pop_keyword("submit_stored", "future_key", "a key", "first", kwargs)
        return self.executor._submit(self, args, kwargs, future_key=future_key)

    def map(
        self,
        *iterables: t.Iterable[t.Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapResult[R]:
        """Run the function on each item; see :meth:`Executor.map`."""
        return self.executor.map(
            self, *iterables, timeout=timeout, chunksize=chunksize, buffersize=buffersize
        )

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> t.Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> str:
        # Pickled by reference, as the module-level name that the decorator replaced,
        # so that process workers import the same job.
        return self.__qualname__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__module__}.{self.__qualname__}>"

    if t.TYPE_CHECKING:
        # Set by 'functools.update_wrapper' at run time, which type checkers do not
        # follow: declared here so that 'job.__name__' and the rest type-check.
        __module__: str
        __name__: str
        __qualname__: str
        __doc__: str | None
        __wrapped__: t.Callable[P, t.Any]


class ExecutorJob(_Job[P, R]):
    """A function decorated with :meth:`Executor.job`.

    .. versionchanged:: 2.0
        Works with process pools (for module-level functions) and before ``init_app``.
    """

    fn: t.Callable[P, R]
    if t.TYPE_CHECKING:
        __wrapped__: t.Callable[P, R]

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)


class AsyncExecutorJob(_Job[P, R]):
    """An ``async def`` function decorated with :meth:`Executor.job`.

    ``await job(...)`` runs it inline, in the caller's event loop. ``job.submit(...)``
    runs it to completion in a worker, and returns a future that can be awaited.

    .. versionadded:: 2.0
    """

    is_async = True
    fn: t.Callable[P, t.Coroutine[t.Any, t.Any, R]]
    if t.TYPE_CHECKING:
        __wrapped__: t.Callable[P, t.Coroutine[t.Any, t.Any, R]]

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> t.Coroutine[t.Any, t.Any, R]:
        return self.fn(*args, **kwargs)


def describe(fn: object) -> str:
    """Name a job's function in messages: ``'module.qualname'``."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"'{module}.{name}'" if module else f"'{name}'"


# -- Coroutine jobs: run in the worker, on a loop that belongs to its thread ----------


class _ThreadLoops(threading.local):
    """Each worker thread's own :class:`_ThreadLoop`, made at its first coroutine job."""

    runner: _ThreadLoop | None = None

    def _reset_after_fork(self) -> None:
        # A loop's selector and self-pipe are shared with the parent after a fork; the
        # child makes its own on first use.
        self.__dict__.clear()


_loops = _ThreadLoops()
reset_after_fork(_loops)


async def _closing_async_generators(coroutine: t.Coroutine[t.Any, t.Any, R]) -> R:
    # Closes, at the end of the job, the async generators the job started and left open,
    # as 'asyncio.run' does when it ends, so that their 'finally' blocks run inside this
    # job, in its app context. Left to the loop, which lives on for the next jobs of this
    # thread, one kept alive by a reference cycle would be closed whenever the garbage
    # collector freed it: during a later, unrelated job, or outside any. The loop's own
    # 'shutdown_asyncgens' would close every later job's generators too (it marks the
    # loop as shut down for them), so the job's are tracked through the interpreter's
    # public async generator hooks instead, which the running loop has installed: the
    # loop's own hook still sees each one.
    import asyncio

    firstiter, finalizer = sys.get_asyncgen_hooks()
    started: weakref.WeakSet[t.AsyncGenerator[t.Any, t.Any]] = weakref.WeakSet()

    def track(agen: t.AsyncGenerator[t.Any, t.Any]) -> None:
        started.add(agen)
        if firstiter is not None:
            firstiter(agen)

    sys.set_asyncgen_hooks(firstiter=track, finalizer=finalizer)
    try:
        return await coroutine
    finally:
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
        left_open = list(started)
        if left_open:
            await asyncio.gather(*(agen.aclose() for agen in left_open), return_exceptions=True)


class _ThreadLoop:
    """One event loop per worker thread, reused by every coroutine job it runs.

    A loop per job (what ``asyncio.run`` does) costs a selector, a self-pipe and their
    file descriptors each time. The loop is closed when its thread ends and the
    thread-local storage that holds this object is cleared, but never in a forked child
    (see :meth:`__del__`).
    """

    def __init__(self) -> None:
        import asyncio

        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self.pid = os.getpid()

    def run(self, coroutine: t.Coroutine[t.Any, t.Any, R]) -> R:
        import asyncio

        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(_closing_async_generators(coroutine))
        finally:
            # Tasks the job started and left behind are its own; they must not run on
            # during the next, unrelated job on this thread.
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            asyncio.set_event_loop(None)

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is None:
            return
        if os.getpid() != self.pid:
            # A forked child drops the loops of its parent's threads, which no longer
            # exist in it. Such a loop shares its selector with the parent's, the very
            # same kernel object, and closing it here would unregister its self-pipe
            # there too: the parent's worker would then never be woken from another
            # thread again. So it is kept, unclosed, for as long as the child lives;
            # asyncio's own finalizer would close it as well.
            _loops_of_the_parent.append(loop)
            return
        # The main thread's loop, if it ran a coroutine job, lives until the interpreter
        # exits, when asyncio's modules may be gone already; the descriptors go with the
        # process then.
        if not loop.is_closed() and not sys.is_finalizing():
            loop.close()


_loops_of_the_parent: list[asyncio.AbstractEventLoop] = []


def run_coroutine(coroutine: t.Coroutine[t.Any, t.Any, R]) -> R:
    """Run ``coroutine`` to completion on this thread's own event loop."""
    runner = _loops.runner
    if runner is None or runner.loop.is_closed():
        runner = _loops.runner = _ThreadLoop()
    return runner.run(coroutine)


def call_coroutine_function(
    fn: t.Callable[..., t.Coroutine[t.Any, t.Any, R]], *args: t.Any, **kwargs: t.Any
) -> R:
    """Call a coroutine function and run its coroutine on this thread's loop.

    The coroutine is created here, in the worker, inside the job's contexts: the task
    that runs it copies the current context, so it sees the job's app context and ``g``.
    """
    return run_coroutine(fn(*args, **kwargs))


def is_coroutine_function(fn: object) -> bool:
    """Whether calling ``fn`` makes a coroutine that the worker must run to completion."""
    # A plain function is answered from its code flags: this runs for every job, and
    # 'inspect' takes several times as long. (A function marked with Python 3.12's
    # 'inspect.markcoroutinefunction' carries the marker in its __dict__.)
    if type(fn) is _FunctionType and _COROUTINE_MARKER not in fn.__dict__:
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    # Jobs made by '@executor.job' on an 'async def' say so themselves: 'inspect' only
    # recognises functions, methods and partials.
    return (
        inspect.iscoroutinefunction(fn)
        or getattr(fn, "is_async", False) is True
        # An object whose '__call__' is 'async def' (asgiref accepts these too). Looked
        # up on the type, as the call itself does; a class is not one, since calling it
        # runs 'type.__call__'.
        or inspect.iscoroutinefunction(getattr(type(fn), "__call__", None))  # noqa: B004
    )


_COROUTINE_MARKER = "_is_coroutine_marker"
_FunctionType = types.FunctionType
_CO_COROUTINE = inspect.CO_COROUTINE
