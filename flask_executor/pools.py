"""Building an app's pool, and keeping it usable: after a fork, after a crash, at shutdown.

A :class:`PoolManager` owns one pool. The pool is built lazily, at the first job, for two
reasons: a pool made before ``os.fork()`` (``gunicorn --preload``) has no worker threads
or processes in the child, so each process must build its own; and an app that never
submits a job never starts a worker.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import concurrent.futures.process as _cf_process
import logging
import threading
import typing as t
import weakref

from . import process_tasks
from . import tasks
from ._fork import reset_after_fork

if t.TYPE_CHECKING:
    from .config import ExecutorConfig
    from .futures import FutureProxy

__all__ = ["PoolManager"]

logger = logging.getLogger("flask_executor")


class PoolManager:
    """Owns the pool of one executor on one app.

    :param config: The executor's config on that app.
    :param label: Names the executor and app in log lines and errors.
    """

    def __init__(self, config: ExecutorConfig, label: str) -> None:
        self.config = config
        self.label = label
        self._pool: concurrent.futures.Executor | None = None
        self._lock = threading.Lock()
        self._is_shut_down = False
        self._retired_pool: concurrent.futures.Executor | None = None
        #: Broken pools whose manager thread may still run (see 'replace_broken').
        self._broken_pools: list[concurrent.futures.Executor] = []
        #: Whether jobs may skip the pool's 'submit' ('takes_work_items' in 'tasks' for
        #: thread pools, in 'process_tasks' for process pools).
        self.takes_work_items = False
        #: Whether proxies are settled from the pool's futures ('tasks.settles_through_pool').
        self.settles_through_pool = False
        #: Futures of thread jobs that have not started. A thread job sets its own
        #: future, so when ``shutdown(cancel_futures=True)`` drops a job from the pool's
        #: queue, only this set lets its future be cancelled rather than left pending.
        #: Adding and discarding are atomic; no lock is needed.
        self.not_started: set[FutureProxy[t.Any]] = set()
        reset_after_fork(self)
        _managers.add(self)

    @property
    def pool(self) -> concurrent.futures.Executor:
        """The pool, built on first use.

        :raises RuntimeError: after :meth:`shutdown`.
        """
        pool = self._pool
        if pool is None:
            pool = self._build()
        return pool

    def _build(self) -> concurrent.futures.Executor:
        with self._lock:
            if self._is_shut_down:
                raise RuntimeError(
                    f"The executor {self.label} has been shut down, so it cannot run new jobs."
                )
            if self._pool is None:
                pool = self.config.pool_class(**self.config.pool_kwargs)
                self.takes_work_items = tasks.takes_work_items(
                    pool
                ) or process_tasks.takes_work_items(pool)
                self.settles_through_pool = tasks.settles_through_pool(pool)
                self._pool = pool
            return self._pool

    def replace_broken(self, broken: concurrent.futures.Executor) -> None:
        """Drop ``broken`` so that the next job builds a new pool.

        Called when a job's future fails with
        :class:`~concurrent.futures.BrokenExecutor` (a process pool whose worker died),
        or when a job is handed to a broken pool (a thread pool whose initializer
        raised). Only the first report for a pool replaces it; the jobs that were in
        flight with it all report the same break.
        """
        is_thread_pool = isinstance(broken, concurrent.futures.ThreadPoolExecutor)
        with self._lock:
            # Kept until its manager thread has ended. This runs in that thread, which
            # holds the pool's shutdown lock while it fails the jobs; had the jobs held
            # the last references to the pool, its finalizer would take that lock too
            # and wait for ever (CPython 3.12 and 3.13 do). Pools whose thread is gone
            # are let go of here, in a thread that holds none of their locks. A thread
            # pool has no such thread, and is not kept.
            self._broken_pools = [pool for pool in self._broken_pools if _manager_thread_runs(pool)]
            if not is_thread_pool and broken not in self._broken_pools:
                self._broken_pools.append(broken)
            if self._pool is not broken:
                return
            self._pool = None
        if is_thread_pool:
            logger.warning(
                "The pool of the executor %s broke (a worker thread's initializer raised)."
                " The jobs queued then failed; a new pool will run the next jobs.",
                self.label,
            )
            # Its workers whose initializer succeeded still wait on its queue; shutting
            # it down wakes them to end, once any job they run now is done. This runs in
            # a submitting thread, never in one of the pool's, so it may take its lock.
            broken.shutdown(wait=False)
            return
        logger.warning(
            "The pool of the executor %s broke (a worker died, for example killed or out"
            " of memory). The jobs in flight failed; a new pool will run the next jobs.",
            self.label,
        )
        # Nothing more to do: a broken pool has already terminated its workers and its
        # manager thread is on its way out. Calling its 'shutdown' from here, which is
        # that thread's done callback, blocks on Python 3.13 and would leave the jobs'
        # futures unset.

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the pool down; see :meth:`~flask_executor.Executor.shutdown`."""
        with self._lock:
            self._is_shut_down = True
            pool, self._pool = self._pool, None
            # Kept so that a later shutdown(wait=True) still waits for the jobs that an
            # earlier shutdown(wait=False) left running.
            if pool is None:
                pool = self._retired_pool
            else:
                self._retired_pool = pool
        if pool is None:
            return
        if cancel_futures:
            # A thread job sets its own future, so the pool cancelling its work items
            # does not reach ours: cancel them here, before any waiting. A worker that
            # takes one of these jobs afterwards finds it cancelled and skips it; one
            # that took it first has marked it started, and 'cancel' leaves it alone
            # (on gevent's path too: see 'ThreadTask._start_lock').
            for future in list(self.not_started):
                future.cancel()
        # One call, not two: a second 'shutdown' would reset a process pool's
        # cancel-pending flag before its manager thread reads it, and would not wait,
        # because the first call already let go of that thread.
        pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._is_shut_down

    def _reset_after_fork(self) -> None:
        # In the child, only the forking thread exists. The parent's pools have no
        # workers here and their locks may have been held by threads that are gone, so
        # they are let go of, and the next job builds a fresh pool in this process.
        # Not freed, though, and disarmed first (see '_disarm_in_child').
        for pool in (self._pool, self._retired_pool, *self._broken_pools):
            if pool is not None:
                _disarm_in_child(pool)
                _pools_of_the_parent.append(pool)
        self._lock = threading.Lock()
        self._pool = self._retired_pool = None
        self._broken_pools = []
        self.not_started = set()


def _manager_thread_runs(pool: concurrent.futures.Executor) -> bool:
    thread = getattr(pool, "_executor_manager_thread", None)
    return isinstance(thread, threading.Thread) and thread.is_alive()


def _disarm_in_child(pool: concurrent.futures.Executor) -> None:
    # The manager thread of a CPython process pool holds a weak reference to its pool,
    # whose callback, when the pool is freed, takes the pool's shutdown lock and writes
    # to a pipe the thread reads; the interpreter's exit writes there too. In a forked
    # child that thread does not exist, the lock may have been held at the fork and
    # stay held for ever, and the pipe is the parent's. So the weak reference goes
    # (and its callback with it), and so does the thread's entry among those woken at
    # exit. The pools are also kept for the child's life: freeing one here would still
    # close objects that the parent's threads were using at the fork.
    thread = getattr(pool, "_executor_manager_thread", None)
    if not isinstance(thread, threading.Thread):
        return
    if hasattr(thread, "executor_reference"):
        thread.executor_reference = None
    wakeups = getattr(_cf_process, "_threads_wakeups", None)
    if wakeups is not None:
        wakeups.pop(thread, None)


_pools_of_the_parent: list[concurrent.futures.Executor] = []
_managers: weakref.WeakSet[PoolManager] = weakref.WeakSet()


@atexit.register
def _let_go_of_pools() -> None:
    # By now the interpreter has waited for every pool's jobs (concurrent.futures joins
    # the pools' threads before 'atexit' functions run). A pool still referenced from
    # here would be freed only while the interpreter tears its modules down, too late
    # for its finalizer, which then prints an error on every exit. The parent's pools
    # in a forked child stay: they are disarmed, and are freed with the rest.
    for manager in list(_managers):
        manager._pool = manager._retired_pool = None
        manager._broken_pools = []
