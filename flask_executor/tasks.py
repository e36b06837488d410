"""Turning a call into a job on a pool, and the job's outcome into its future.

There are two ways, chosen by where the pool's workers run:

*In this process* (thread pools, gevent's included, and custom pools). The job's future
is a :class:`ThreadTask`, which runs the call in its contexts and settles itself.
CPython's own thread pool takes it straight into its queue, so each job costs one
object, not a future chained to the pool's own plus the work item that holds it.

*In another process* (process pools): see :mod:`flask_executor.process_tasks`.

Either way the proxy is made, and the default callbacks added to it, *before* the pool
sees the job. A fast job therefore cannot finish before its callbacks are attached, which
in Flask-Executor 1.0 made them run in the submitting thread.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread as _cf_thread
import contextlib
import inspect
import os
import sys
import threading
import types
import typing as t
import weakref

from . import context
from ._fork import reset_after_fork
from .futures import FutureProxy

if t.TYPE_CHECKING:
    import asyncio
    import contextvars

    from .pools import PoolManager

__all__ = [
    "STARTABLE",
    "ThreadTask",
    "call_coroutine_function",
    "describe",
    "is_coroutine_function",
    "notify_cancelled",
    "run_coroutine",
    "set_outcome_now",
    "settles_through_pool",
    "start_in_thread",
    "takes_work_items",
]

R = t.TypeVar("R")
_set_running_or_notify_cancel = concurrent.futures.Future.set_running_or_notify_cancel


class ThreadTask(FutureProxy[R]):
    """The future of a job for a worker thread of this process, which also runs the job.

    As :class:`asyncio.Task` is the future of the coroutine it runs, this is the future
    of the call it runs: one object per job, not a future plus a work item that holds
    it. It has the two members that the workers of CPython's ThreadPoolExecutor use of
    their own work items, ``future`` and ``run()``, so it can go straight into such a
    pool's queue (see :func:`_enqueue`). They are for the pool's workers, not for users.

    The call (function and arguments) is dropped as soon as the job starts, or is
    cancelled: a future may be kept long after its job, stored or awaited later, and must
    not keep a large argument alive with it.
    """

    # Set by the executor before the task is started.
    _variables: contextvars.Context
    _fn: t.Callable[..., R]
    _args: tuple[t.Any, ...]
    _kwargs: dict[str, t.Any]
    #: Set only for pools other than CPython's (see 'PoolManager.not_started').
    _not_started: set[FutureProxy[t.Any]] | None = None
    # Only on gevent's path under monkey-patching, where the job's worker thread may not
    # take this future's lock (a gevent lock, the hub's): an OS lock of its own, under
    # which the worker marks the job started, so that 'cancel' cannot succeed after.
    _start_lock: t.Any = None
    _started_elsewhere = False

    @property
    def future(self) -> ThreadTask[R]:
        """This future: what a CPython worker cancels or fails when it drops the job."""
        return self

    def run(self, *_: object) -> None:
        """Run the job in its contexts and settle this future with its outcome.

        Never raises, even when the future was settled by hand before or while the job
        ran: an exception that left a CPython worker's ``run()`` would end that worker
        thread for good, and the pool would never replace it.
        """
        # Python 3.14's workers pass their own worker context; it is not needed here.
        if self._not_started is not None:
            self._not_started.discard(self)
        if self._state not in STARTABLE:
            # Cancelled (its waiters told already, see 'cancel'), settled by hand while
            # queued, or 'run' called twice: nothing to run.
            self._drop_call()
            return
        try:
            if not _set_running_or_notify_cancel(self):
                return  # cancelled just now; 'cancel' dropped the call
        except RuntimeError:
            # Settled by hand in the instant since the check above.
            self._drop_call()
            return
        # Only this thread gets here, once, and 'cancel' can no longer succeed: the
        # call is there, and is taken without a lock.
        fn, args, kwargs = self._fn, self._args, self._kwargs
        del self._fn, self._args, self._kwargs
        # The call leaves this frame too before the future is settled, so that whoever
        # waits on it finds the job's arguments free once it is done.
        try:
            result = context.run_job(self._app, self._variables, self._g_values, fn, args, kwargs)
        except BaseException as exc:
            del fn, args, kwargs
            try:  # noqa: SIM105 (a 'suppress' context costs the hot path a call or two)
                self.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass  # settled by hand while the job ran; its own outcome is dropped
            # The traceback holds this frame and this future holds the traceback: drop
            # the frame's reference so that the cycle does not outlive the job.
            del self
        else:
            del fn, args, kwargs
            try:  # noqa: SIM105
                self.set_result(result)
            except concurrent.futures.InvalidStateError:
                pass

    def cancel(self) -> bool:
        """Cancel the job if it has not started. Return whether it is cancelled."""
        start_lock = self._start_lock
        if start_lock is None:
            cancelled = super().cancel()
        else:
            with start_lock:
                cancelled = not self._started_elsewhere and super().cancel()
        if cancelled:
            self._drop_call()
            notify_cancelled(self)
        return cancelled

    def running(self) -> bool:
        """Return whether the job is running now."""
        # On gevent's path the future stays pending while the job runs (see above).
        if self._started_elsewhere and not self.done():
            return True
        return super().running()

    def _run_for_pool(self) -> R | None:
        # For pools that report a job's outcome through their own future (gevent's):
        # runs the job and returns its outcome, leaving this future to the pool's,
        # whose done callback settles it in the hub. Its state is read without its
        # lock, which belongs to the hub's thread, but under the start lock.
        if self._not_started is not None:
            self._not_started.discard(self)
        with self._start_lock:
            if self._state != "PENDING":
                return None  # cancelled, or settled by hand
            self._started_elsewhere = True
        # 'cancel' can no longer succeed: the call is there.
        fn, args, kwargs = self._fn, self._args, self._kwargs
        self._drop_call()
        return context.run_job(self._app, self._variables, self._g_values, fn, args, kwargs)

    def _drop_call(self) -> None:
        with contextlib.suppress(AttributeError):  # dropped already
            del self._fn, self._args, self._kwargs


#: The states a future can be started from: 'set_running_or_notify_cancel' accepts them.
STARTABLE = ("PENDING", "CANCELLED")


def start_in_thread(
    manager: PoolManager,
    task: ThreadTask[R],
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> None:
    """Hand ``fn(*args, **kwargs)`` to a pool whose workers are threads of this process."""
    task._fn = fn
    task._args = args
    task._kwargs = kwargs
    pool = manager.pool
    try:
        if manager.takes_work_items:
            _enqueue(t.cast(concurrent.futures.ThreadPoolExecutor, pool), task)
        else:
            _submit(manager, pool, task)
    except concurrent.futures.BrokenExecutor:
        _start_on_a_new_pool(manager, pool, task)


def _start_on_a_new_pool(
    manager: PoolManager, broken: concurrent.futures.Executor, task: ThreadTask[t.Any]
) -> None:
    # A thread pool whose initializer raised is broken for good: CPython fails the jobs
    # queued then with BrokenThreadPool, and every later submit raises it. So a broken
    # pool met here is replaced and the job handed to the new one. The new pool can
    # break too (its initializer may raise again) before this job reaches it; the
    # attempts are bounded so that a pool that always breaks fails the job instead.
    for attempt in range(_BROKEN_POOL_ATTEMPTS):
        manager.replace_broken(broken)
        pool = manager.pool
        try:
            if manager.takes_work_items:
                _enqueue(t.cast(concurrent.futures.ThreadPoolExecutor, pool), task)
            else:
                _submit(manager, pool, task)
            return
        except concurrent.futures.BrokenExecutor:
            if attempt == _BROKEN_POOL_ATTEMPTS - 1:
                raise
            broken = pool


# How many new pools a job tries after the first one it met was broken.
_BROKEN_POOL_ATTEMPTS = 2


def _submit(
    manager: PoolManager, pool: concurrent.futures.Executor, task: ThreadTask[t.Any]
) -> None:
    # Any other pool gets a plain callable. If 'shutdown(cancel_futures=True)' drops the
    # job from its queue, only 'not_started' lets the task be cancelled instead of left
    # pending for ever.
    not_started = task._not_started = manager.not_started
    not_started.add(task)
    settle_from_pool = manager.settles_through_pool
    if settle_from_pool and task._start_lock is None:
        task._start_lock = _os_lock()
    try:
        source = pool.submit(task._run_for_pool if settle_from_pool else task.run)
    except BaseException:
        not_started.discard(task)
        raise
    # Following the pool's own future settles the task where the pool says a job is done
    # (gevent's pool), and is a safety net for pools that fail a job without running it
    # (a broken pool, or a custom pool that turns out to send jobs elsewhere).
    add_done_callback = getattr(source, "add_done_callback", None)
    if add_done_callback is not None:
        add_done_callback(_FollowPool(task, settle_from_pool))


def _os_lock() -> t.Any:
    # A lock of the operating system's, which monkey-patching does not replace: the
    # worker thread and the hub may both take it.
    from gevent import monkey

    return monkey.get_original("_thread", "allocate_lock")()


def settles_through_pool(pool: concurrent.futures.Executor) -> bool:
    """Whether a job's task must be settled from the pool's own future.

    Under monkey-patching, gevent's pool runs jobs on native threads while the code that
    waits for them is a greenlet on the hub's thread, and the future's lock is a gevent
    lock. A future set from the native thread does not reliably wake that greenlet
    (never, with gevent 26.7 on Python 3.9 under 'gunicorn -k gevent'). gevent's own
    future reports in the hub, so the task is settled there. Without monkey-patching
    nothing runs the hub while a thread waits, and the job settles its task itself.
    """
    gevent_threadpool = sys.modules.get("gevent.threadpool")
    if gevent_threadpool is None or not isinstance(pool, gevent_threadpool.ThreadPoolExecutor):
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("threading"))


class _FollowPool:
    """Settles a task from the pool's own future, if the job has not settled it."""

    __slots__ = ("future", "settle_from_pool")

    def __init__(self, future: FutureProxy[t.Any], settle_from_pool: bool) -> None:
        self.future = future
        self.settle_from_pool = settle_from_pool

    def __call__(self, source: concurrent.futures.Future[t.Any]) -> None:
        # When the job ran here and settled its own future, there is nothing to do, but
        # for a job cancelled before it started on gevent's path: nobody else tells the
        # future's waiters ('wait', 'as_completed') that it is done.
        future = self.future
        if future.done():
            if future._state == "CANCELLED":
                _set_running_or_notify_cancel(future)
            return
        if source.cancelled():
            future.cancel()
            _set_running_or_notify_cancel(future)
            return
        exc = source.exception()
        if exc is None and self.settle_from_pool:
            if _set_running_or_notify_cancel(future):
                future.set_result(source.result())
            return
        # The job never ran here: the pool failed it through its own future. Nothing
        # will take its call from the task now, so the task lets go of it here.
        if isinstance(future, ThreadTask):
            if future._not_started is not None:
                future._not_started.discard(future)
            future._drop_call()
        if exc is None:
            exc = RuntimeError(
                "The pool reported this job done, but it never ran in this process. A"
                " custom pool whose workers are other processes must subclass"
                " 'concurrent.futures.ProcessPoolExecutor'."
            )
        set_outcome_now(future, exc)


def _enqueue(pool: concurrent.futures.ThreadPoolExecutor, task: ThreadTask[t.Any]) -> None:
    # What ThreadPoolExecutor.submit does, less the Future and the work item it would
    # make: the task is both. Two futures per job, the pool's set by its worker and then copied into
    # ours, would cost a small job about a fifth more (see docs/performance.rst). Only
    # used for the exact class, whose private members are checked when the pool is
    # built ('PoolManager.takes_work_items'); anything else goes through 'submit'.
    with pool._shutdown_lock, _cf_thread._global_shutdown_lock:
        if pool._broken:
            raise _cf_thread.BrokenThreadPool(pool._broken)
        if pool._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _cf_thread._shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        pool._work_queue.put(t.cast(t.Any, task))
        # Once every worker thread exists, '_adjust_thread_count' has nothing to do but
        # take the idle semaphore's lock, which every worker also takes after each job;
        # the pool never loses threads, so skipping it then only saves that contention.
        if len(pool._threads) < pool._max_workers:
            pool._adjust_thread_count()


def takes_work_items(pool: concurrent.futures.Executor) -> bool:
    """Whether jobs can go straight into ``pool``'s queue (see :func:`_enqueue`)."""
    return (
        type(pool) is concurrent.futures.ThreadPoolExecutor
        and all(
            hasattr(pool, name)
            for name in (
                "_threads",
                "_max_workers",
                "_shutdown_lock",
                "_broken",
                "_shutdown",
                "_work_queue",
                "_adjust_thread_count",
            )
        )
        and hasattr(_cf_thread, "_global_shutdown_lock")
        and hasattr(_cf_thread, "_shutdown")
    )


def set_outcome_now(future: FutureProxy[t.Any], exc: BaseException) -> None:
    """Fail ``future`` with ``exc``, unless it is cancelled already."""
    if _set_running_or_notify_cancel(future):
        future.set_exception(exc)


def notify_cancelled(future: concurrent.futures.Future[t.Any]) -> None:
    """Tell the waiters of ``concurrent.futures.wait`` and ``as_completed`` that a
    future which was just cancelled is done.

    CPython tells them only when a worker comes to the job, and never for a job that
    ``shutdown(cancel_futures=True)`` drops from a pool's queue, which left them waiting
    for ever. Whoever comes to the job later finds it done.
    """
    with future._condition:
        if future._state == "CANCELLED":
            _set_running_or_notify_cancel(future)


def describe(fn: object) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"'{module}.{name}'" if module else f"'{name}'"


# -- Coroutine jobs ---------------------------------------------------------------------


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
