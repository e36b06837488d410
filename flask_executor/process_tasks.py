"""Jobs for pools whose workers are other processes.

The call and a snapshot of its contexts are pickled in the submitting thread (a plain
function's reference only once, see :func:`_pickle_call`), and the worker pickles the
result before the pool sends it back (unless it is a plain ``str``, ``int``, ``float``,
``bool`` or ``None``, which cannot fail). Pickling the call here lets a value that cannot
be pickled fail its own job with a message that names it. Pickling the result there
means that a result which cannot be unpickled here fails its own job too: an object the
pool itself cannot unpickle breaks the whole pool, and every job in flight with it.

CPython's :class:`~concurrent.futures.ProcessPoolExecutor` settles the job's
:class:`ProcessTask` directly. The task goes into the pool's pending work behind a
:class:`_PoolSide`, which stands in for the Future the pool would have made. Any other
pool (a subclass, or one whose internals are not the ones checked here) gets a plain
``submit``, and the task follows the pool's own future (:class:`_Follower`). The first
way saves each job a second future and the callback that chains the two; see
docs/performance.rst.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process as _cf_process
import pickle
import threading
import types
import typing as t

from . import context
from .futures import FutureProxy
from .tasks import describe
from .tasks import notify_cancelled
from .tasks import set_outcome_now
from .tasks import STARTABLE

if t.TYPE_CHECKING:
    from .pools import PoolManager

__all__ = ["ProcessTask", "received", "start_in_process", "takes_work_items"]

R = t.TypeVar("R")
_set_running_or_notify_cancel = concurrent.futures.Future.set_running_or_notify_cancel


class ProcessTask(FutureProxy[R]):
    """The future of a job that runs in a worker process.

    CPython's process pool settles it directly, through a :class:`_PoolSide`; with any
    other pool it follows the pool's own future.
    """

    def cancel(self) -> bool:
        """Cancel the job if it has not been sent to a worker. Return whether it is."""
        if self._source is not None:
            return super().cancel()  # following a pool's future: cancel that one
        cancelled = concurrent.futures.Future.cancel(self)
        if cancelled:
            # Tell 'wait' and 'as_completed' now, not when the pool's manager thread
            # comes to the job (never, for a job that shutdown(cancel_futures=True)
            # drops). The pool side then finds it done and drops it.
            notify_cancelled(self)
        return cancelled


def start_in_process(
    manager: PoolManager,
    task: ProcessTask[R],
    snapshot: tuple[t.Any, ...],
    fn: t.Callable[..., R],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
) -> None:
    """Hand ``fn(*args, **kwargs)`` to a pool whose workers are other processes."""
    # The call is pickled here, in the submitting thread, and never by the pool's feeder
    # thread. Pickling a function imports its module, and a job submitted and waited
    # for while that module is still being imported (an app that warms its pool at
    # import time, under 'gunicorn --preload') would wait for ever for the import lock
    # that its own thread holds.
    try:
        call = _pickle_call(fn, args, kwargs, snapshot)
    except Exception as e:
        set_outcome_now(task, _unpicklable_call_error(e, fn, args, kwargs))
        return
    pool = manager.pool
    try:
        _hand_over(manager, pool, task, call)
    except concurrent.futures.BrokenExecutor:
        # The pool broke since the last job's outcome came back; one new pool is tried.
        manager.replace_broken(pool)
        _hand_over(manager, manager.pool, task, call)


#: What travels to the worker: a plain function's pickled reference, and the rest of the
#: call pickled (see :func:`_pickle_call`).
_Call = tuple[t.Optional[bytes], bytes]


def _hand_over(
    manager: PoolManager, pool: concurrent.futures.Executor, task: ProcessTask[t.Any], call: _Call
) -> None:
    if manager.takes_work_items:
        _enqueue(
            t.cast(concurrent.futures.ProcessPoolExecutor, pool),
            _PoolSide(manager, pool, task),
            call,
        )
        return
    source = pool.submit(_run_pickled_call, *call)
    task._source = source
    # If the job is already done, 'add_done_callback' runs the follower right here, in the
    # submitting thread, and the job's callbacks with it. The flag lets the follower see
    # that and move to a thread of its own: the callbacks of a job that ran never run in
    # the submitting thread.
    _submitting.active = True
    try:
        source.add_done_callback(_Follower(manager, pool, task))
    finally:
        _submitting.active = False


# -- CPython's process pool, settling the task directly ------------------------------------


def takes_work_items(pool: concurrent.futures.Executor) -> bool:
    """Whether jobs can go straight into ``pool``'s pending work (see :func:`_enqueue`).

    Only for the exact class, with the internals of Python 3.9.16 to 3.13, which are
    checked here. Python 3.14 counts idle workers otherwise, and earlier 3.9 releases
    start processes otherwise; they, and subclasses, get ``submit``.
    """
    return (
        type(pool) is concurrent.futures.ProcessPoolExecutor
        and all(
            hasattr(pool, name)
            for name in (
                "_shutdown_lock",
                "_broken",
                "_shutdown_thread",
                "_pending_work_items",
                "_work_ids",
                "_queue_count",
                "_executor_manager_thread_wakeup",
                "_safe_to_dynamically_spawn_children",
                "_idle_worker_semaphore",
                "_adjust_process_count",
                "_start_executor_manager_thread",
                "_processes",
                "_call_queue",
            )
        )
        and hasattr(_cf_process, "_global_shutdown")
        and hasattr(_cf_process, "_WorkItem")
        and hasattr(_cf_process, "_CallItem")
    )


def _enqueue(pool: concurrent.futures.ProcessPoolExecutor, side: _PoolSide, call: _Call) -> None:
    # What ProcessPoolExecutor.submit does, less the Future it would make: the work item's
    # future is the pool side, which settles the task. Python 3.9.16 to 3.13 alike. A job
    # that finds no other job pending goes straight to the workers (see '_send_now').
    with pool._shutdown_lock:
        if pool._broken:
            raise _cf_process.BrokenProcessPool(pool._broken)
        if pool._shutdown_thread:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _cf_process._global_shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        # The pool side is not a Future, but has all of one that the pool uses.
        work_item = _cf_process._WorkItem(t.cast(t.Any, side), _run_pickled_call, call, {})
        work_id = pool._queue_count
        pool._queue_count = work_id + 1
        # Workers and the manager thread first: if one cannot be started, the job is in
        # none of the pool's queues yet, and only its 'submit' fails.
        workers = len(pool._processes)
        if pool._safe_to_dynamically_spawn_children:  # type: ignore[attr-defined]
            pool._adjust_process_count()
        pool._start_executor_manager_thread()
        if pool._pending_work_items:
            # Behind the others, which the pool's manager thread sends in order as
            # workers come free.
            pool._pending_work_items[work_id] = work_item
            pool._work_ids.put(work_id)
            pool._executor_manager_thread_wakeup.wakeup()
            failure = _failure_if_broken(pool)
        else:
            failure = _send_now(pool, work_item, work_id)
            if len(pool._processes) != workers:
                # A worker was started for this job. The manager thread watches the
                # workers it knew of when it last woke; woken, it watches this one too,
                # and can tell the job's future if it dies.
                pool._executor_manager_thread_wakeup.wakeup()
    if failure is not None:
        # Outside the pool's lock: a broken pool is replaced, and that takes other locks.
        side.set_exception(failure)
        if not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt, say: the job failed with it, and so does submit


def _send_now(
    pool: concurrent.futures.ProcessPoolExecutor, work_item: t.Any, work_id: int
) -> BaseException | None:
    """Send a job to the workers of an idle pool, as the pool's manager thread would.

    Returns None if the job was sent or has been cancelled, or the exception to fail it
    with if it cannot be sent.

    This saves the job a hand-over between threads. The pool's own ``submit`` wakes the
    pool's manager thread, which moves the job to the workers' call queue and wakes the
    thread that writes to their pipe; for one job at a time, waking that one thread more
    is about a quarter of the round trip (docs/performance.rst). Only a job that finds no
    other job pending goes this way: none submitted before it, queued or on its way from
    the manager thread, can then be overtaken, and the call queue has room.
    """
    # Marked running before it is sent, as the manager thread does, so that from here on
    # it cannot be cancelled. The only other thread that can have seen the task is one
    # that took it from 'executor.futures' and cancelled it meanwhile; the pool then
    # never hears of it.
    if not work_item.future.set_running_or_notify_cancel():
        return None
    try:
        pool._pending_work_items[work_id] = work_item
        pool._call_queue.put(  # type: ignore[attr-defined]
            _cf_process._CallItem(work_id, work_item.fn, work_item.args, {}), block=False
        )
    except BaseException as e:
        if pool._broken:
            # The pool broke, and closed its call queue, in the instant since the check
            # (see '_failure_if_broken'); the job stays in the broken pool's records.
            error: BaseException = _cf_process.BrokenProcessPool(pool._broken)
            error.__cause__ = e
            return error
        # Most likely the call queue's writer thread could not be started (too many
        # threads, or the interpreter exiting): this job fails with the reason.
        pool._pending_work_items.pop(work_id, None)
        return e
    return _failure_if_broken(pool)


def _failure_if_broken(pool: concurrent.futures.ProcessPoolExecutor) -> BaseException | None:
    # On Python 3.9 to 3.11 the pool's manager thread marks a broken pool broken, then
    # fails the jobs it holds and forgets them, without taking the pool's lock (3.12 takes
    # it, so this finds nothing there). A job added in the meantime might be neither sent
    # nor failed. The pool is marked first, so a job that does not see the mark now is
    # among those the manager thread fails. One that does is failed here, and left in
    # the pool's records: the manager thread may be going through them, and would stop
    # with an error if one went missing under it.
    if not pool._broken:
        return None
    return _cf_process.BrokenProcessPool(pool._broken)


class _PoolSide:
    """What a process pool's manager thread holds in place of the Future of a job.

    The pool calls four methods of a work item's future, the same from Python 3.9 to
    3.14: ``set_running_or_notify_cancel`` before it sends the call to a worker,
    ``set_result`` or ``set_exception`` when the outcome comes back or the pool breaks,
    and ``cancel`` for ``shutdown(cancel_futures=True)``. Each is passed on to the task.
    None raises: an exception in the pool's manager thread would leave every job of the
    pool pending for ever, and the task may have been cancelled, or settled by hand, at
    any time.
    """

    __slots__ = ("manager", "pool", "sent", "task")

    def __init__(
        self, manager: PoolManager, pool: concurrent.futures.Executor, task: ProcessTask[t.Any]
    ) -> None:
        self.manager = manager
        self.pool = pool
        self.task = task
        # Set by the manager thread, or by '_send_now' under the pool's lock, which the
        # pool's own calls to 'cancel' (at shutdown) come after; read by 'cancel'.
        self.sent = False

    def set_running_or_notify_cancel(self) -> bool:
        task = self.task
        if task._state not in STARTABLE:
            return False  # cancelled (and its waiters told), or settled by hand: dropped
        try:
            self.sent = _set_running_or_notify_cancel(task)
        except RuntimeError:
            return False  # settled by hand in the instant since the check
        return self.sent

    def set_result(self, sent: t.Any) -> None:
        try:
            result = received(sent)
        except BaseException as e:
            self.set_exception(e)
            return
        try:  # noqa: SIM105 (a 'suppress' context costs every job a few calls)
            self.task.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass  # settled by hand while the job ran

    def set_exception(self, exception: BaseException) -> None:
        if isinstance(exception, concurrent.futures.BrokenExecutor):
            self.manager.replace_broken(self.pool)
        try:  # noqa: SIM105
            self.task.set_exception(exception)
        except concurrent.futures.InvalidStateError:
            pass

    def cancel(self) -> bool:
        # 'False' keeps the job among those the pool waits for, which is right only for
        # a job sent to a worker: the pool would wait for ever for one it never sends.
        if self.sent:
            return False
        self.task.cancel()
        return True


# -- Any other pool, followed through its own future --------------------------------------


class _Follower:
    """Copies the outcome of the pool's own future into the job's task."""

    __slots__ = ("future", "manager", "pool")

    def __init__(
        self, manager: PoolManager, pool: concurrent.futures.Executor, future: FutureProxy[t.Any]
    ) -> None:
        self.manager = manager
        self.pool = pool
        self.future = future

    def __call__(self, source: concurrent.futures.Future[t.Any]) -> None:
        if getattr(_submitting, "active", False):
            threading.Thread(target=self._follow, args=(source,), daemon=True).start()
        else:
            self._follow(source)

    def _follow(self, source: concurrent.futures.Future[t.Any]) -> None:
        # Runs in the pool's thread that reports outcomes.
        future = self.future
        exc = None if source.cancelled() else source.exception()
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            self.manager.replace_broken(self.pool)
        if future.done():
            return  # settled by hand, or cancelled through the source and told already
        try:
            if source.cancelled():
                concurrent.futures.Future.cancel(future)
                _set_running_or_notify_cancel(future)
            elif exc is not None:
                set_outcome_now(future, exc)
            else:
                try:
                    result = received(source.result())
                except BaseException as e:
                    set_outcome_now(future, e)
                else:
                    if _set_running_or_notify_cancel(future):
                        future.set_result(result)
        except (RuntimeError, concurrent.futures.InvalidStateError):
            pass  # settled by hand in the instant since the check


_submitting = threading.local()


# -- In the worker process -----------------------------------------------------------------


def _run_pickled_call(function: bytes | None, call: bytes) -> t.Any:
    """Run the job in its contexts and return its result, pickled unless plain."""
    if function is None:
        fn, args, kwargs, snapshot = pickle.loads(call)
    else:
        fn = _functions.get(function)
        if fn is None:
            fn = pickle.loads(function)
            _remember(_functions, function, fn)
        args, kwargs, snapshot = pickle.loads(call)
    try:
        result = context.run_job_in_process(snapshot, fn, args, kwargs)
    except BaseException as exc:
        why = _why_not_sendable(exc)
        if why is None:
            raise
        # The pool would send it, and then fail to rebuild it in the parent, which
        # breaks the pool. The text of the original, traceback and all, still travels:
        # the pool sends the traceback of what is raised, and this one's cause with it.
        raise RuntimeError(
            f"The job {describe(fn)} raised {type(exc).__name__}({exc}), which cannot be"
            f" sent back from the worker process: {why}. Its traceback is above."
            " Exceptions raised in process workers must pickle; one that takes its"
            " message as its only argument always does."
        ) from exc
    if type(result) in _SENT_AS_THEY_ARE:
        return result
    try:
        return pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        raise TypeError(
            f"The result of the job {describe(fn)} cannot be pickled to send it back from"
            f" the worker process: {type(e).__name__}: {e}. Return a value that pickles,"
            " such as plain data."
        ) from None


# -- Functions, pickled once -----------------------------------------------------------
#
# Pickle sends a function by reference, as its module and qualified name: pickling it
# imports the module to check that the name leads back to it, and unpickling imports the
# module to find it. Both sides did that for every job, and each import-system lookup
# touches enough memory to cost a process round trip several microseconds. So a plain
# function's reference is pickled once in this process, and loaded once in each worker.
#
# Only a plain function ('types.FunctionType') goes this way, and only as a reference:
# it holds no state of the call's. Anything else (a partial, a bound method, a callable
# object, an '@executor.job' function) is pickled with the arguments, afresh for each job,
# as it always was: objects the callable shares with its arguments stay shared, and a
# worker never hands one job's callable, changed, to the next. The one difference for a
# plain function: once its reference is cached, it is sent by name even if its module
# has since bound that name to something else (a reload, a test's patch), where pickling
# it again would have failed; the worker runs what the name led to there when it first
# loaded it.

_references: dict[types.FunctionType, bytes] = {}  # in the submitting process
_functions: dict[bytes, t.Callable[..., t.Any]] = {}  # in a worker
# Functions made at run time and placed in a module could otherwise fill them for ever.
_CACHE_SIZE = 1024


def _pickle_call(
    fn: t.Callable[..., t.Any],
    args: tuple[t.Any, ...],
    kwargs: dict[str, t.Any],
    snapshot: tuple[t.Any, ...],
) -> _Call:
    if type(fn) is not types.FunctionType:
        return None, pickle.dumps((fn, args, kwargs, snapshot), pickle.HIGHEST_PROTOCOL)
    reference = _references.get(fn)
    if reference is None:
        reference = pickle.dumps(fn, pickle.HIGHEST_PROTOCOL)
        _remember(_references, fn, reference)
    return reference, pickle.dumps((args, kwargs, snapshot), pickle.HIGHEST_PROTOCOL)


K = t.TypeVar("K")
V = t.TypeVar("V")


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


# Results of these exact types cannot fail to pickle here or to unpickle in the parent,
# so the pool sends them as they are; any other result is pickled here, and comes back
# as bytes (see '_PoolSide.set_result').
_SENT_AS_THEY_ARE: tuple[type, ...] = (str, int, float, bool, type(None))


def received(sent: t.Any) -> t.Any:
    """The result of a job as :func:`_run_pickled_call` returned it, unpickled if it was."""
    return pickle.loads(sent) if type(sent) is bytes else sent


def _why_not_sendable(exc: BaseException) -> str | None:
    # Only failing jobs pay for this round trip. The pool pickles the exception the same
    # way: its class and arguments, rebuilt by calling the class with them.
    try:
        pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _unpicklable_call_error(
    error: Exception, fn: t.Callable[..., t.Any], args: tuple[t.Any, ...], kwargs: dict[str, t.Any]
) -> TypeError:
    # Find the first part that does not pickle, to name it.
    parts: list[tuple[str, object]] = [("the function", fn)]
    parts += [(f"argument {i}", arg) for i, arg in enumerate(args)]
    parts += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    what = "the call"
    for name, value in parts:
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception:
            what = f"{name} ({value!r})"
            break
    return TypeError(
        f"The job {describe(fn)} cannot be sent to a process pool because {what} cannot"
        f" be pickled: {type(error).__name__}: {error}. Process workers need module-level"
        " functions and picklable arguments."
    )
