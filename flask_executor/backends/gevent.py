"""gevent's :class:`gevent.threadpool.ThreadPoolExecutor`.

Under monkey-patching, gevent's pool runs jobs on native threads while the code that
waits for them is a greenlet on the hub's thread, and the future's lock is a gevent
lock. A future set from the native thread does not reliably wake that greenlet (never,
with gevent 26.7 on Python 3.9 under ``gunicorn -k gevent``). gevent's own future
reports in the hub, so the job's task is settled from it there. Without monkey-patching
nothing runs the hub while a thread waits, and the pool is like any other (:mod:`.pool`).
"""

from __future__ import annotations

import sys
import typing as t

from .. import context
from ..futures import FutureProxy
from .pool import PoolBackend
from .pool import ThreadTask

if t.TYPE_CHECKING:
    from ..config import ExecutorConfig

__all__ = ["GeventBackend", "GeventTask"]

R = t.TypeVar("R")


class GeventTask(ThreadTask[R]):
    """A thread task that the pool's own future settles, in the hub.

    The job's worker thread may not take this future's lock (a gevent lock, the hub's),
    so it marks the job started under an OS lock of its own, after which 'cancel' cannot
    succeed; until then the future stays pending while the job runs.
    """

    _start_lock: t.Any = None
    _started_elsewhere = False

    def cancel(self) -> bool:
        """Cancel the job if it has not started. Return whether it is cancelled."""
        start_lock = self._start_lock
        if start_lock is None:
            return super().cancel()
        with start_lock:
            cancelled = not self._started_elsewhere and FutureProxy.cancel(self)
        if cancelled:
            self._cancelled()
        return cancelled

    def running(self) -> bool:
        """Return whether the job is running now."""
        if self._started_elsewhere and not self.done():
            return True
        return super().running()

    def _run_for_pool(self) -> R | None:
        # Runs the job and returns its outcome, leaving this future to the pool's,
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


class GeventBackend(PoolBackend):
    """gevent's thread pool: settled from its own futures under monkey-patching."""

    future_class = GeventTask

    @classmethod
    def handles(cls, config: ExecutorConfig) -> bool:
        threadpool = sys.modules.get("gevent.threadpool")
        return threadpool is not None and issubclass(
            config.pool_class, threadpool.ThreadPoolExecutor
        )

    def __init__(self, config: ExecutorConfig, *args: t.Any) -> None:
        super().__init__(config, *args)
        from gevent import monkey

        self.settles_from_pool = bool(monkey.is_module_patched("threading"))
        # A lock of the operating system's, which monkey-patching does not replace: the
        # worker thread and the hub may both take it.
        self._allocate_lock = monkey.get_original("_thread", "allocate_lock")

    def _runner(self, task: ThreadTask[t.Any]) -> t.Callable[[], t.Any]:
        if not self.settles_from_pool:
            return task.run
        gevent_task = t.cast(GeventTask[t.Any], task)
        gevent_task._start_lock = self._allocate_lock()
        return gevent_task._run_for_pool
