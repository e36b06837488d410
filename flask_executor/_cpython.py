"""Fast paths through private members of CPython's :mod:`concurrent.futures`, fenced.

Nothing else in the package touches a private member of a pool class or of the
``concurrent.futures`` modules. Each fast path saves every job work that the public
``submit`` does (see docs/performance.rst), and is used on a pool only when all of these
hold; otherwise the pool's public ``submit`` runs every job, for the pool's life:

* ``EXECUTOR_FAST_PATHS`` is on (the default);
* the pool is an instance of CPython's own class, not a subclass;
* this is CPython, at a version in :data:`VERIFIED`, which lists the releases whose
  source the path was checked against and on which the test suite ran;
* the pool ran a probe job through the fast path and its answer came back through the
  pool within :data:`PROBE_TIMEOUT` seconds. A member that changed shape rather than name
  (which no ``hasattr`` check sees) would fail that probe, and not every job after it.

Until the probe answers, a new pool's jobs go through ``submit``. Why a pool falls back
is logged to the ``flask_executor`` logger, unless the config turned the fast paths off:
at debug level when it was expected (a subclass, another Python), as a warning when the
probe failed.

What a process pool needs after ``os.fork()`` is here too (:func:`disarm_in_child`): it
has no public equivalent, and it checks each member's type, logging at debug level when
one is not what it expects, rather than doing nothing silently.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process as _cf_process
import concurrent.futures.thread as _cf_thread
import contextlib
import functools
import itertools
import logging
import sys
import threading
import time
import typing as t
import weakref

__all__ = [
    "PROBE_TIMEOUT",
    "SWITCHED_OFF",
    "VERIFIED",
    "FastPath",
    "WorkItemFuture",
    "disarm_in_child",
    "manager_thread_runs",
    "max_workers_of",
    "put_process_job",
    "put_thread_job",
    "replaces_retired_workers",
    "verified",
]

logger = logging.getLogger("flask_executor")

Version = tuple[int, int, int]

#: For each fast path, the CPython releases it was verified on: from the first, up to but
#: not including the second. Both were read against the source of 3.9 to 3.13, and the
#: suite ran with them on 3.9.18, 3.10.13, 3.11.7, 3.12.1 and 3.13.0. Python 3.14 changed
#: how a thread pool's workers run their items and how a process pool counts idle
#: workers; process pools before 3.9.16 start their processes otherwise.
VERIFIED: dict[str, tuple[Version, Version]] = {
    "thread": ((3, 9, 0), (3, 14, 0)),
    "process": ((3, 9, 16), (3, 14, 0)),
}

#: Seconds a new pool has to answer the probe job: time to start a worker (a spawned
#: process imports Python afresh) on a busy machine.
PROBE_TIMEOUT = 10.0

#: The reason to pass as ``off`` when the app turned the fast paths off.
SWITCHED_OFF = "EXECUTOR_FAST_PATHS is off"

_POOL_CLASSES: dict[str, type[concurrent.futures.Executor]] = {
    "thread": concurrent.futures.ThreadPoolExecutor,
    "process": concurrent.futures.ProcessPoolExecutor,
}
_tokens = itertools.count(1)


def verified(kind: str, version: t.Sequence[int] | None = None) -> bool:
    """Whether the ``kind`` fast path was verified on ``version`` (this Python's if None)."""
    if sys.implementation.name != "cpython":
        return False
    first, end = VERIFIED[kind]
    return first <= tuple((version or sys.version_info)[:3]) < end


def _probe(token: int) -> int:
    # The probe job; module-level, so that process workers find it by name.
    return -token


class FastPath:
    """Whether one pool's jobs may take the ``kind`` fast path: :attr:`on`.

    Made when the pool is built. If the checks above allow it, a probe job goes through
    the fast path, and :attr:`on` turns true when its answer comes back through the pool.

    :param off: Why the backend does not want the fast path on this pool, or None.
    """

    def __init__(
        self,
        kind: str,
        pool: concurrent.futures.Executor,
        off: str | None,
    ) -> None:
        self.on = False
        self.kind = kind
        #: When the probe must have answered by; None once it has, or if there is none.
        self.deadline: float | None = None
        why = (
            off
            or (
                type(pool) is not _POOL_CLASSES[kind] and f"the pool is a {type(pool).__qualname__}"
            )
            or (not verified(kind) and f"it was not verified on Python {sys.version.split()[0]}")
        )
        if why:
            if why != SWITCHED_OFF:  # the app's config says so already
                self._fall_back(logging.DEBUG, why)
            return
        token = next(_tokens)
        probe = WorkItemFuture()
        self.deadline = time.monotonic() + PROBE_TIMEOUT
        probe.add_done_callback(functools.partial(self._answered, token))
        try:
            if kind == "thread":
                # CPython's own work item: what the pool's workers run.
                item = _cf_thread._WorkItem(probe, _probe, (token,), {})
                put_thread_job(t.cast(concurrent.futures.ThreadPoolExecutor, pool), item)
            else:
                put_process_job(
                    t.cast(concurrent.futures.ProcessPoolExecutor, pool), probe, _probe, (token,)
                )
        except Exception as e:
            self._fail(f"the probe job could not be queued through it ({e!r})")

    def expire(self) -> None:
        """Fall back for good if the probe is late (called by jobs while it is awaited)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._fail(f"the probe job did not come back within {PROBE_TIMEOUT} s")

    def _answered(self, token: int, probe: concurrent.futures.Future[int]) -> None:
        # In the pool's thread that settles futures.
        exc = concurrent.futures.CancelledError() if probe.cancelled() else probe.exception()
        if self.deadline is None:
            return  # failed already
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            # The pool broke: its jobs say so, and the next job gets a new pool.
            self.deadline = None
            self._fall_back(logging.DEBUG, "the pool broke before the probe job came back")
        elif time.monotonic() > self.deadline:
            self.expire()
        elif exc is not None or probe.result() != -token:
            self._fail(f"the probe job came back with {exc or f'the answer {probe.result()}'!r}")
        else:
            self.deadline = None
            self.on = True

    def _fail(self, why: str) -> None:
        if self.deadline is not None:
            self.deadline = None
            self._fall_back(logging.WARNING, f"its self-check failed: {why}")

    def _fall_back(self, level: int, why: str) -> None:
        logger.log(
            level,
            "The %s pool's jobs go through its public 'submit', not the fast path: %s.",
            self.kind,
            why,
        )


# -- ThreadPoolExecutor ----------------------------------------------------------------


def put_thread_job(pool: concurrent.futures.ThreadPoolExecutor, item: t.Any) -> None:
    """Put ``item`` (a ``future`` and a ``run()``) straight into ``pool``'s queue.

    What ``ThreadPoolExecutor.submit`` does, less the Future and the work item it would
    make: a thread job's future is both, so each job is one object instead of three.
    """
    if pool._broken:
        # Checked before the lock as well: a worker whose initializer raised marks the
        # pool broken, then fails the queued jobs while it holds that lock, so their done
        # callbacks run under it. One that submits a job would wait for it for ever;
        # raising here instead lets the caller replace the pool first.
        raise _cf_thread.BrokenThreadPool(pool._broken)
    with pool._shutdown_lock, _cf_thread._global_shutdown_lock:
        if pool._broken:
            raise _cf_thread.BrokenThreadPool(pool._broken)
        if pool._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _cf_thread._shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        pool._work_queue.put(item)
        # Once every worker thread exists, '_adjust_thread_count' has nothing to do but
        # take the idle semaphore's lock, which every worker also takes after each job;
        # the pool never loses threads, so skipping it then only saves that contention.
        if len(pool._threads) < pool._max_workers:
            pool._adjust_thread_count()


# -- ProcessPoolExecutor -----------------------------------------------------------------


class WorkItemFuture(concurrent.futures.Future[t.Any]):
    """The pool's own future for a job queued by :func:`put_process_job`.

    The pool's manager thread may still report on a job that was failed here, or that
    was cancelled meanwhile: such a report is dropped. An exception in that thread would
    end it, and every job of the pool would stay pending for ever.
    """

    def set_running_or_notify_cancel(self) -> bool:
        if self._state not in ("PENDING", "CANCELLED"):
            return False  # failed here already: not to be sent
        try:
            return super().set_running_or_notify_cancel()
        except RuntimeError:
            return False  # failed here in the instant since the check

    def set_result(self, result: t.Any) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            super().set_exception(exception)


def put_process_job(
    pool: concurrent.futures.ProcessPoolExecutor,
    future: t.Any,
    fn: t.Callable[..., t.Any],
    args: tuple[t.Any, ...],
) -> None:
    """Queue ``fn(*args)`` on ``pool`` with ``future`` (a :class:`WorkItemFuture`) as its
    work item's future: what ``ProcessPoolExecutor.submit`` does, but that a job that
    finds no other job pending goes straight to the workers (see :func:`_send_now`), and
    that a job which cannot be queued fails through ``future``, not only ``submit``.
    """
    with pool._shutdown_lock:
        if pool._broken:
            raise _cf_process.BrokenProcessPool(pool._broken)
        if pool._shutdown_thread:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _cf_process._global_shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        work_item = _cf_process._WorkItem(future, fn, args, {})
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
        future.set_exception(failure)
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
    # it cannot be cancelled. The only other thread that can have seen the job is one
    # that took its future from 'executor.futures' and cancelled it meanwhile; the pool
    # then never hears of it.
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


# -- A process pool's manager thread, after a break and after a fork ---------------------


def _manager_thread(pool: concurrent.futures.Executor) -> t.Any:
    # CPython sets it to None in '__init__', and to the thread when it starts it. Any
    # other value is a shape not known here: '_UNKNOWN', logged.
    if not isinstance(pool, concurrent.futures.ProcessPoolExecutor):
        return None
    thread = getattr(pool, "_executor_manager_thread", _UNKNOWN)
    if thread is None or isinstance(thread, threading.Thread):
        return thread
    logger.debug("The process pool %r has no manager thread that this knows of.", pool)
    return _UNKNOWN


_UNKNOWN = object()


def manager_thread_runs(pool: concurrent.futures.Executor) -> bool:
    """Whether the manager thread of a process pool may still run.

    A broken pool is kept referenced until then: that thread holds the pool's lock while
    it fails the jobs, and the pool's finalizer would take the lock too (CPython 3.12 and
    3.13 wait for ever). A pool of a shape not known here is kept for good.
    """
    thread = _manager_thread(pool)
    return thread is _UNKNOWN or (thread is not None and thread.is_alive())


def disarm_in_child(pool: concurrent.futures.Executor) -> None:
    """Make a parent's process pool harmless in a forked child.

    The manager thread of a CPython process pool holds a weak reference to its pool,
    whose callback, when the pool is freed, takes the pool's shutdown lock and writes to
    a pipe the thread reads; the interpreter's exit writes there too. In a forked child
    that thread does not exist, the lock may have been held at the fork and stay held
    for ever, and the pipe is the parent's. So the weak reference goes (and its callback
    with it), and so does the thread's entry among those woken at exit. The caller also
    keeps the pool for the child's life: freeing it would still close objects that the
    parent's threads were using at the fork.
    """
    thread = _manager_thread(pool)
    if not isinstance(thread, threading.Thread):
        return
    if isinstance(getattr(thread, "executor_reference", None), weakref.ref):
        thread.executor_reference = None  # type: ignore[attr-defined]
    else:
        logger.debug("The manager thread %r holds no weak reference to its pool.", thread)
    wakeups = getattr(_cf_process, "_threads_wakeups", None)
    if isinstance(wakeups, t.MutableMapping):
        wakeups.pop(thread, None)
    else:
        logger.debug("concurrent.futures.process has no '_threads_wakeups' mapping.")


def replaces_retired_workers() -> bool:
    """Whether this Python's ProcessPoolExecutor replaces a worker that retires.

    Up to the fix for CPython gh-115634 (merged in 2026 for 3.13, 3.14 and 3.15; 3.11
    and 3.12 no longer take bug fixes), a worker that exits at ``max_tasks_per_child``
    while jobs are queued is not replaced when a stale idle-worker token says that one
    is idle. The fix brought a method that replaces dead workers unconditionally; its
    presence is what is checked, since the patch releases that carry it differ by branch.
    """
    classes = (
        concurrent.futures.ProcessPoolExecutor,
        getattr(_cf_process, "_ExecutorManagerThread", None),
    )
    return any(hasattr(cls, "_replace_dead_worker") for cls in classes if cls is not None)


def max_workers_of(pool: concurrent.futures.Executor) -> int | None:
    """How many workers ``pool`` runs at most, as it chose, or None if it does not say.

    CPython's pools keep it in ``_max_workers``, and have no public way to tell it.
    """
    chosen = getattr(pool, "_max_workers", None)
    return chosen if isinstance(chosen, int) and not isinstance(chosen, bool) else None
