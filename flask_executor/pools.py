"""Building an app's pool, and keeping it usable: after a fork, after a crash, at shutdown.

A :class:`PoolManager` owns one pool. The pool is built lazily, at the first job, for two
reasons: a pool made before ``os.fork()`` (``gunicorn --preload``) has no worker threads
or processes in the child, so each process must build its own; and an app that never
submits a job never starts a worker.
"""

from __future__ import annotations

import atexit
import concurrent.futures
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
        self._broken_pool: concurrent.futures.Executor | None = None
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
        :class:`~concurrent.futures.BrokenExecutor` (a process pool whose worker died).
        Only the first report for a pool replaces it; the jobs that were in flight with
        it all report the same break.
        """
        with self._lock:
            # Held until the next pool breaks. This runs in the broken pool's manager
            # thread, which holds the pool's shutdown lock; if the last reference to the
            # pool went with its jobs, the pool's finalizer would take that lock as well
            # and wait for ever (CPython 3.12.1 does).
            self._broken_pool = broken
            if self._pool is not broken:
                return
            self._pool = None
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
        # In the child, only the forking thread exists. The parent's pool has no workers
        # here and its locks may have been held by threads that are gone, so it is let
        # go of, and the next job builds a fresh pool in this process. Let go of, not
        # freed: freeing a pool runs CPython's finalizer of its manager thread, which
        # takes the pool's lock (held for ever, if a thread of the parent held it at the
        # fork; seen with the broken pool kept above) and writes to a pipe that the
        # parent's pool still reads.
        _pools_of_the_parent.extend(
            pool for pool in (self._pool, self._retired_pool, self._broken_pool) if pool is not None
        )
        self._lock = threading.Lock()
        self._pool = self._retired_pool = self._broken_pool = None
        self.not_started = set()


_pools_of_the_parent: list[concurrent.futures.Executor] = []
_managers: weakref.WeakSet[PoolManager] = weakref.WeakSet()


@atexit.register
def _let_go_of_pools() -> None:
    # By now the interpreter has waited for every pool's jobs (concurrent.futures joins
    # the pools' threads before 'atexit' functions run). A pool still referenced from
    # here would be freed only while the interpreter tears its modules down, too late
    # for its finalizer, which then prints an error on every exit.
    for manager in list(_managers):
        manager._pool = manager._retired_pool = manager._broken_pool = None
    _pools_of_the_parent.clear()
