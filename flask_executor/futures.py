"""The futures that jobs return, and the collection that stores them by key.

:class:`FutureProxy` *is* a :class:`concurrent.futures.Future`: one object per job, which
``concurrent.futures.wait``, ``as_completed`` and ``asyncio.wrap_future`` accept as they
are, and which ``await`` accepts as well. The name is kept from Flask-Executor 1.0, where
it wrapped the pool's own future.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
import typing as t
import weakref

# 'from flask_executor.futures import Future' worked in 1.0, whose module imported it.
from concurrent.futures import Future as Future

from . import context
from ._fork import reset_after_fork
from .lifecycle import JobState
from .lifecycle import state_of

if t.TYPE_CHECKING:
    import asyncio
    import contextvars

    from flask import Flask

__all__ = ["FutureCollection", "FutureProxy"]

logger = logging.getLogger("flask_executor")

T = t.TypeVar("T")
_Future = concurrent.futures.Future
_FINISHED = ("CANCELLED_AND_NOTIFIED", "FINISHED")
# At most one eviction warning in this many seconds; the ones in between are counted.
_EVICTION_WARNING_INTERVAL = 60.0
_now = time.monotonic


class FutureProxy(concurrent.futures.Future[T]):
    """The future of one job: a real :class:`concurrent.futures.Future` that can be awaited.

    ``await future`` suspends the awaiting coroutine, not its event loop, and returns the
    job's result or raises its exception. The future binds to the loop that is running
    when it is awaited, so it can be created in one thread and awaited in another, or in
    two loops at once.

    If the awaiting coroutine is cancelled (a timeout, a client that went away), a job
    that has not started is cancelled with it. A job that is already running goes on:
    threads cannot be interrupted.

    Callbacks added with :meth:`add_done_callback` run with the job's Flask contexts.

    Once the job is done and its callbacks have run, the future lets go of everything
    the job used: its arguments, the submitting request, the copy of ``g`` and the
    context variables. A future kept for its result keeps only the result.

    .. versionchanged:: 2.0
        A subclass of :class:`concurrent.futures.Future` for every pool type, and awaitable.
    """

    # Class-level defaults keep construction to Future.__init__ alone on the hot path.
    #
    # The job's contexts, as 'context.capture' took them, which its callbacks run in
    # too: the app whose fresh app context they get (None for none), the submitter's
    # context variables (None for a future made outside an executor, whose callbacks
    # then run as they are), and a copy of its 'g'. They are attributes of the future,
    # not an object of their own, because every object that lives as long as a job is
    # one more for the garbage collector to walk while jobs queue up (docs/design.rst).
    _app: Flask | None = None
    _variables: contextvars.Context | None = None
    _g_values: dict[str, t.Any] | None = None
    # For pools in other processes, the pool's own future that this one follows.
    _source: concurrent.futures.Future[t.Any] | None = None
    # Set when the job is done and its callbacks have run, and the three above are let
    # go (see '_invoke_callbacks'): the job's app, weakly, for callbacks added later.
    _released = False
    _late_app: weakref.ref[Flask] | None = None

    def add_done_callback(self, fn: t.Callable[[concurrent.futures.Future[T]], object]) -> None:
        """Call ``fn(future)`` when the job is done, with the job's Flask contexts.

        As with :class:`concurrent.futures.Future`, ``fn`` runs in the worker that
        finished the job, or at once in this thread if the job is already done, and an
        exception it raises is logged, not raised.

        Once the job is done and its callbacks have run, its contexts are let go. A
        callback added after that runs with the contexts of the thread that adds it, in
        a fresh app context of the job's app if that thread has none of that app. See
        :ref:`callback-contexts`.
        """
        # Read in the opposite order to the one '_release' clears them in, without a
        # lock: if the variables are still there, the app and 'g' read before them are
        # too. If they are gone, '_released' was set before they went.
        app = self._app
        g_values = self._g_values
        variables = self._variables
        if variables is not None:
            if _needs_contexts(fn):
                fn = context.wrap_callback(app, variables, g_values, fn)
        elif self._released and _needs_contexts(fn):
            fn = context.wrap_late_callback(self._late_app, fn)
        super().add_done_callback(fn)

    def _invoke_callbacks(self) -> None:
        # Called by 'set_result', 'set_exception' and 'cancel', after the state has
        # changed and the waiters were told, in the thread that settled the future.
        # CPython keeps the callbacks (and with them whatever they hold) for as long as
        # the future lives; a future may be stored or awaited long after its job.
        super()._invoke_callbacks()  # type: ignore[misc]
        self._release()

    def _release(self) -> None:
        # Nothing a callback added from now on can be appended: the future is done, so
        # 'add_done_callback' calls it at once. The callbacks already run are dropped,
        # and with them what they hold (the failure logger holds the job's arguments).
        self._done_callbacks = []  # type: ignore[var-annotated]
        app = self._app
        if app is not None:
            # Weak: a stored future must not keep its app alive. The app's executor
            # keeps its stored futures in a dict weakly keyed by the app, and a value
            # that refers to its own key keeps the key alive for ever.
            self._late_app = weakref.ref(app)
        # In this order, for the reads in 'add_done_callback'.
        self._released = True
        self._variables = None
        self._g_values = None
        self._app = None
        # The pool's own future, whose callback (this future's follower) refers back
        # here. 'cancel', 'running' and 'state' answer the same without it once done.
        self._source = None
        exc = self._exception
        if exc is not None:
            _clear_own_frames(exc)

    def cancel(self) -> bool:
        """Cancel the job if it has not started. Return whether it is cancelled."""
        source = self._source
        if source is not None:
            # Cancelling the pool's future cancels this one through the chain.
            return source.cancel() or self.cancelled()
        return super().cancel()

    def running(self) -> bool:
        """Return whether the job is running now."""
        source = self._source
        if source is not None and not self.done():
            return source.running()
        return super().running()

    @property
    def state(self) -> JobState:
        """The job's :class:`~flask_executor.JobState`: PENDING, RUNNING, FINISHED,
        FAILED or CANCELLED. FINISHED means it returned a result, FAILED that it raised.

        .. versionadded:: 2.0
        """
        state = state_of(self)
        source = self._source
        # Following a pool's own future: 'running()' asks that one, which says no once
        # it is done, while its outcome is still on its way here. The job ran, so it is
        # RUNNING until the outcome lands, never PENDING again.
        if (
            state is JobState.PENDING
            and source is not None
            and source.done()
            and not source.cancelled()
        ):
            return JobState.RUNNING
        return state

    def __await__(self) -> t.Generator[t.Any, None, T]:
        if not self.done():
            import asyncio

            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            # Added with the base class's method: waking a loop needs no Flask context.
            _Future.add_done_callback(self, _waker(loop, waiter))
            try:
                yield from waiter.__await__()
            except asyncio.CancelledError:
                self.cancel()
                raise
        if self.cancelled():
            import asyncio

            raise asyncio.CancelledError()
        return self.result()

    def _fail_after_fork(self) -> None:
        # Called in a forked child, which has one thread: whoever held this future's lock
        # in the parent does not exist here, so the lock is replaced rather than taken.
        # Its callbacks belong to the parent's job and are dropped, not run.
        self._condition = threading.Condition()
        self._waiters = []
        self._source = None
        if self._state not in _FINISHED:
            self._done_callbacks = []
            self._exception = RuntimeError(
                "This job was submitted in the parent process before it forked; its"
                " result exists only in the parent."
            )
            self._state = "FINISHED"


def _clear_own_frames(exc: BaseException) -> None:
    # A failed job's exception keeps its traceback, and the traceback every frame it
    # ran through, with their local variables: this package's frames held the job's
    # context variables, its app context (with the request, on Flask 3.2) and its
    # arguments. Those frames' variables are cleared; the traceback still prints
    # every line. The frames of the job's own code are the user's, and keep theirs.
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        exc_ = pending.pop()
        if exc_ is None or id(exc_) in seen:
            continue
        seen.add(id(exc_))
        tb = exc_.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_globals.get("__name__", "").startswith(_PACKAGE):
                # A frame still running (the one settling this future) cannot be cleared.
                with contextlib.suppress(RuntimeError):
                    frame.clear()
            tb = tb.tb_next
        pending.append(exc_.__cause__)
        pending.append(exc_.__context__)


_PACKAGE = __name__.partition(".")[0] + "."


def _needs_contexts(fn: t.Callable[..., object]) -> bool:
    # A callback of asyncio's own (the one 'asyncio.wrap_future' and
    # 'loop.run_in_executor' add to chain an asyncio future to this one) only hands the
    # outcome to an event loop. Running it in the job's contexts would push a second
    # app context for the job and run its teardown functions a second time. Known by
    # the module its code lives in, not by the private name of the function.
    module = getattr(fn, "__module__", None)
    return not (isinstance(module, str) and (module == "asyncio" or module.startswith("asyncio.")))


def _waker(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]
) -> t.Callable[[concurrent.futures.Future[t.Any]], None]:
    def wake(_: concurrent.futures.Future[t.Any]) -> None:
        # Runs in the worker thread. The loop may have closed since the await began
        # (the view returned, or timed out and moved on); then nobody is waiting and
        # there is nothing to report.
        if waiter.done():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set_waiter, waiter)

    return wake


def _set_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class FutureCollection:
    """Futures stored by key, for :meth:`~flask_executor.Executor.submit_stored`.

    Safe to use from several threads at once. Every operation is O(1).

    The methods of :class:`~concurrent.futures.Future` can be called through the
    collection with a key as their first argument: ``futures.done("report")``,
    ``futures.result("report", timeout=5)``, ``futures.state("report")``. They return
    None for a key that is not stored.

    When a new future would exceed ``max_length``, the oldest *finished* future is
    evicted: the one that finished first, whose result has waited longest to be read.
    If none has finished, the oldest unfinished one (the first stored) is evicted and a
    warning is logged, since its result can then no longer be fetched by key. A burst of
    such evictions logs one warning a minute, which counts the evictions since the last.

    Reads (``len``, ``in``, iteration, :meth:`keys`, :meth:`items`) take the same lock as
    :meth:`add` and :meth:`pop`, so they never see a future that is being stored and
    evicted in the same call: ``len`` never exceeds ``max_length``.

    :param max_length: The most futures to keep, or None to keep every one.

    .. versionchanged:: 2.0
        The methods by key are declared one by one, for type checkers; :meth:`state`
        was added.
    """

    def __init__(self, max_length: int | None = 50) -> None:
        self.max_length = max_length
        self._futures: dict[t.Hashable, FutureProxy[t.Any]] = {}
        # How many keys each stored future is stored under (usually one), so that
        # 'future in collection' takes constant time.
        self._stored: dict[FutureProxy[t.Any], int] = {}
        # Keys of stored futures that have finished, in the order they finished: the
        # eviction queue.
        self._finished: collections.OrderedDict[t.Hashable, None] = collections.OrderedDict()
        # Keys whose future has finished, which '_evict' has yet to file in '_finished'.
        # Keys, not futures: a future popped meanwhile must not be kept here until the
        # next 'add' (which may never come) with its result.
        self._newly_finished: collections.deque[t.Hashable] = collections.deque()
        self._lock = threading.RLock()
        # Unfinished futures evicted since the last warning was logged, and when it was.
        self._evicted_unwarned = 0
        self._last_eviction_warning: float | None = None
        reset_after_fork(self)

    def add(self, future_key: t.Hashable, future: FutureProxy[t.Any]) -> None:
        """Store ``future`` under ``future_key``.

        :raises ValueError: if ``future_key`` is stored already.
        """
        with self._lock:
            if future_key in self._futures:
                raise ValueError(
                    f"A future is already stored under the key {future_key!r}. Pop it"
                    " first, or choose another key."
                )
            self._futures[future_key] = future
            self._stored[future] = self._stored.get(future, 0) + 1
            # Added before evicting: a future that is already finished runs the callback
            # right here (the lock is reentrant) and so counts as finished below. No
            # deadlock: a Future runs its callbacks after releasing its own lock.
            _Future.add_done_callback(future, functools.partial(self._on_done, future_key))
            self._evict()

    def _on_done(self, future_key: t.Hashable, future: concurrent.futures.Future[t.Any]) -> None:
        # Runs in the worker that finished the job. Taking the lock here would make every
        # worker queue up behind the threads that submit, so the news only goes into a
        # deque (its 'append' is atomic) and 'add' files it under the lock.
        if self.max_length is not None:
            self._newly_finished.append(future_key)

    def _evict(self) -> None:
        if self.max_length is None:
            return
        newly_finished = self._newly_finished
        futures = self._futures
        while newly_finished:
            key = newly_finished.popleft()
            # The key may have been popped since, or even stored again with another
            # future: it is filed if the future stored under it now is finished. (That
            # future's own news may come later; filing a key twice keeps its place.)
            future = futures.get(key)
            if future is not None and future.done():
                self._finished[key] = None
        while len(self._futures) > self.max_length:
            if self._finished:
                key, _ = self._finished.popitem(last=False)
            else:
                key = next(iter(self._futures))
                self._warn_of_eviction(key)
            self._remove(key)

    def _warn_of_eviction(self, key: t.Hashable) -> None:
        # Called under the lock. A store that keeps more jobs in flight than the bound
        # evicts on every add; one line per eviction buried the log (86,037 lines for
        # 100,000 jobs), so the warnings are rate-limited and the rest are counted.
        now = _now()
        last = self._last_eviction_warning
        if last is not None and now - last < _EVICTION_WARNING_INTERVAL:
            self._evicted_unwarned += 1
            return
        since, self._evicted_unwarned = self._evicted_unwarned, 0
        self._last_eviction_warning = now
        if since:
            logger.warning(
                "Evicting the unfinished future stored under %r: more than %d futures"
                " are stored and none has finished, and %d more unfinished futures were"
                " evicted since the last warning. Their results can no longer be fetched"
                " by key; raise EXECUTOR_FUTURES_MAX_LENGTH or pop futures once read.",
                key,
                self.max_length,
                since,
            )
        else:
            logger.warning(
                "Evicting the unfinished future stored under %r: more than %d futures"
                " are stored and none has finished. Its result can no longer be"
                " fetched by key; raise EXECUTOR_FUTURES_MAX_LENGTH or pop futures"
                " once read. (Further evictions are counted, and reported at most once"
                " a minute.)",
                key,
                self.max_length,
            )

    def _remove(self, key: t.Hashable) -> FutureProxy[t.Any] | None:
        future = self._futures.pop(key, None)
        if future is not None:
            count = self._stored.pop(future) - 1
            if count:
                self._stored[future] = count
            self._finished.pop(key, None)
        return future

    def pop(self, future_key: t.Hashable) -> FutureProxy[t.Any] | None:
        """Remove and return the future stored under ``future_key``, or None."""
        with self._lock:
            return self._remove(future_key)

    def get(self, future_key: t.Hashable) -> FutureProxy[t.Any] | None:
        """Return the future stored under ``future_key``, or None."""
        return self._futures.get(future_key)

    def keys(self) -> list[t.Hashable]:
        """The stored keys, oldest first."""
        with self._lock:
            return list(self._futures)

    def items(self) -> list[tuple[t.Hashable, FutureProxy[t.Any]]]:
        """The stored ``(key, future)`` pairs, oldest first."""
        with self._lock:
            return list(self._futures.items())

    def __iter__(self) -> t.Iterator[t.Hashable]:
        # Iterate over a snapshot, so that other threads may add and pop meanwhile.
        return iter(self.keys())

    def __len__(self) -> int:
        # Under the lock: 'add' stores the new future before it evicts one, and a count
        # taken in between would be one over 'max_length'.
        with self._lock:
            return len(self._futures)

    def __contains__(self, item: object) -> bool:
        # Keys are what users look up; a future is accepted too, as in 1.0. Under the
        # lock, as '__len__' is, so that a future being evicted is not seen half-gone.
        with self._lock:
            if isinstance(item, _Future):
                return item in self._stored
            try:
                return item in self._futures
            except TypeError:  # an unhashable key cannot be stored
                return False

    # -- Future methods by key ------------------------------------------------------
    #
    # Flask-Executor 1.0 passed any attribute through '__getattr__'. These are spelled
    # out so that a type checker knows them, and a misspelt one is an error. Each reads
    # the dict once, without the lock: a key popped meanwhile gives None, as if the
    # call had come a moment later.

    def state(self, future_key: t.Hashable) -> JobState | None:
        """The :class:`~flask_executor.JobState` of the future stored under
        ``future_key``, or None if none is stored.

        .. versionadded:: 2.0
        """
        future = self._futures.get(future_key)
        if future is None:
            return None
        if isinstance(future, FutureProxy):
            return future.state
        return state_of(future)  # a plain Future, stored with 'add'

    def done(self, future_key: t.Hashable) -> bool | None:
        """Whether the stored future is done (or None if none is stored)."""
        future = self._futures.get(future_key)
        return None if future is None else future.done()

    def running(self, future_key: t.Hashable) -> bool | None:
        """Whether the stored future's job is running now (or None if none is stored)."""
        future = self._futures.get(future_key)
        return None if future is None else future.running()

    def cancelled(self, future_key: t.Hashable) -> bool | None:
        """Whether the stored future was cancelled (or None if none is stored)."""
        future = self._futures.get(future_key)
        return None if future is None else future.cancelled()

    def cancel(self, future_key: t.Hashable) -> bool | None:
        """Cancel the stored future's job if it has not started; return whether it is
        cancelled (or None if none is stored). The future stays stored."""
        future = self._futures.get(future_key)
        return None if future is None else future.cancel()

    def result(self, future_key: t.Hashable, timeout: float | None = None) -> t.Any:
        """Wait for the stored future's job and return its result, or raise its
        exception, as :meth:`concurrent.futures.Future.result`. None if none is stored.
        """
        future = self._futures.get(future_key)
        return None if future is None else future.result(timeout)

    def exception(
        self, future_key: t.Hashable, timeout: float | None = None
    ) -> BaseException | None:
        """Wait for the stored future's job and return its exception, or None if it
        returned or none is stored."""
        future = self._futures.get(future_key)
        return None if future is None else future.exception(timeout)

    def add_done_callback(
        self, future_key: t.Hashable, fn: t.Callable[[concurrent.futures.Future[t.Any]], object]
    ) -> None:
        """Call ``fn(future)`` when the stored future is done; nothing if none is stored.

        See :meth:`~flask_executor.FutureProxy.add_done_callback`.
        """
        future = self._futures.get(future_key)
        if future is not None:
            future.add_done_callback(fn)

    def _state(self, future_key: t.Hashable) -> str | None:
        # Flask-Executor 1.0's spelling, kept for code written for it; 'state' is the
        # public one. The raw string of the future ("PENDING", "RUNNING", "FINISHED",
        # "CANCELLED", ...), or None.
        future = self._futures.get(future_key)
        if future is None:
            return None
        if future.running():
            return "RUNNING"
        return future._state

    if not t.TYPE_CHECKING:
        # At run time only, so that type checkers still report a misspelt method.

        def __getattr__(self, attr: str) -> t.NoReturn:
            if not attr.startswith("__") and hasattr(_Future, attr):
                raise AttributeError(
                    f"'FutureCollection' has no method {attr!r}. Flask-Executor 1.0"
                    " passed every Future attribute through by key; 2.0 has 'done',"
                    " 'running', 'cancelled', 'cancel', 'result', 'exception',"
                    " 'add_done_callback' and 'state'. For anything else, call it on the"
                    f" future itself: executor.futures.get(key).{attr}."
                )
            raise AttributeError(f"'FutureCollection' object has no attribute {attr!r}")

    def __repr__(self) -> str:
        return f"<FutureCollection {len(self)} stored, max_length={self.max_length}>"

    def _reset_after_fork(self) -> None:
        self._lock = threading.RLock()
        for key, future in list(self._futures.items()):
            future._fail_after_fork()
            self._finished[key] = None
