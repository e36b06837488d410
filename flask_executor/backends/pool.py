"""Any :class:`concurrent.futures.Executor` whose workers run in this process.

The job's future is a :class:`ThreadTask`, which runs the call in the job's contexts
and settles itself, as :class:`asyncio.Task` is the future of the coroutine it runs. The
pool gets the task's ``run`` through its public ``submit``; the pool's own future is
followed only as a safety net, for pools that fail a job without running it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import typing as t

from .. import context
from ..futures import FutureProxy
from . import Backend
from . import Follower
from . import notify_cancelled
from . import STARTABLE

if t.TYPE_CHECKING:
    import contextvars

    from ..config import ExecutorConfig

__all__ = ["PoolBackend", "ThreadTask"]

R = t.TypeVar("R")
_set_running_or_notify_cancel = concurrent.futures.Future.set_running_or_notify_cancel


class ThreadTask(FutureProxy[R]):
    """The future of a job for a worker thread of this process, which also runs the job.

    It has the two members that the workers of CPython's ThreadPoolExecutor use of their
    own work items, ``future`` and ``run()``, so that the thread backend's fast path can
    put it straight into such a pool's queue. They are for the workers, not for users.

    The call (function and arguments) is dropped as soon as the job starts, or is
    cancelled: a future may be kept long after its job, stored or awaited later, and must
    not keep a large argument alive with it.
    """

    # Set by the backend before the task is started.
    _variables: contextvars.Context
    _fn: t.Callable[..., R]
    _args: tuple[t.Any, ...]
    _kwargs: dict[str, t.Any]
    #: Set when the pool's own 'submit' runs the task (see 'PoolBackend.not_started').
    _not_started: set[FutureProxy[t.Any]] | None = None

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
        cancelled = super().cancel()
        if cancelled:
            self._cancelled()
        return cancelled

    def _cancelled(self) -> None:
        self._drop_call()
        notify_cancelled(self)

    def _drop_call(self) -> None:
        with contextlib.suppress(AttributeError):  # dropped already
            del self._fn, self._args, self._kwargs


class PoolBackend(Backend):
    """Any other pool: custom pools, and subclasses of CPython's thread pool.

    Such a pool is taken to run jobs in this process, with the live request and every
    context variable, as Flask-Executor 1.0 passed them.
    """

    future_class = ThreadTask
    #: Whether the pool's own future settles the task (gevent's, under monkey-patching).
    settles_from_pool = False

    @classmethod
    def handles(cls, config: ExecutorConfig) -> bool:
        return True  # the last line of the table

    def __init__(self, config: ExecutorConfig, *args: t.Any) -> None:
        super().__init__(config, *args)
        #: Futures of jobs that have not started. A task sets its own future, so when
        #: ``shutdown(cancel_futures=True)`` drops a job from the pool's queue, only
        #: this set lets its future be cancelled rather than left pending. Adding and
        #: discarding are atomic; no lock is needed.
        self.not_started: set[FutureProxy[t.Any]] = set()

    def start(self, future: FutureProxy[t.Any], call: t.Any) -> None:
        task = t.cast(ThreadTask[t.Any], future)
        task._fn, task._args, task._kwargs = call
        not_started = task._not_started = self.not_started
        not_started.add(task)
        try:
            source = self.pool.submit(self._runner(task))
        except BaseException:
            not_started.discard(task)
            raise
        # Following the pool's own future settles the task where the pool says a job is
        # done (gevent's pool), and is a safety net for pools that fail a job without
        # running it (a broken pool, or a custom pool that sends jobs elsewhere).
        add_done_callback = getattr(source, "add_done_callback", None)
        if add_done_callback is not None:
            add_done_callback(Follower(self, task))

    def result_of(self, value: t.Any) -> t.Any:
        if self.settles_from_pool:
            return value
        raise RuntimeError(
            "The pool reported this job done, but it never ran in this process. A custom"
            " pool whose workers are other processes must subclass"
            " 'concurrent.futures.ProcessPoolExecutor'."
        )

    def forget(self, future: FutureProxy[t.Any]) -> None:
        # A job its pool failed (or finished, for gevent's) without this task settling
        # it: nothing will take its call now, so neither the set nor the task keeps it.
        self.not_started.discard(future)
        t.cast(ThreadTask[t.Any], future)._drop_call()

    def _runner(self, task: ThreadTask[t.Any]) -> t.Callable[[], t.Any]:
        return task.run

    def cancel_not_started(self) -> None:
        # A worker that takes one of these jobs afterwards finds it cancelled and skips
        # it; one that took it first has marked it started, and 'cancel' leaves it alone.
        for future in list(self.not_started):
            future.cancel()
