"""Backends: one class for each kind of pool, behind one interface.

An executor's backend class is chosen once, from its config, when the executor is bound
to an app (:func:`backend_class`, the one table), and an instance of it is made with
each pool the executor builds. Everything that differs between kinds of pools lives in
the backend: what a job's future is, how the job reaches the pool, how its outcome
comes back, how it is cancelled, and what the pool needs at a break, after a fork and
at shutdown. The rest of the package asks the backend, never the pool's type.
"""

from __future__ import annotations

import concurrent.futures
import threading
import typing as t
import weakref

from werkzeug.utils import import_string

from .._fork import reset_after_fork

if t.TYPE_CHECKING:
    from ..config import ExecutorConfig
    from ..futures import FutureProxy

# Sorted as sorted() sorts, which tests/test_public_api.py checks.
__all__ = [  # noqa: RUF022
    "BACKENDS",
    "Backend",
    "Follower",
    "STARTABLE",
    "backend_class",
    "notify_cancelled",
    "set_outcome_now",
    "submitting",
]

_set_running_or_notify_cancel = concurrent.futures.Future.set_running_or_notify_cancel

#: Every backend, asked in this order; the first whose :meth:`Backend.handles` accepts
#: the config runs the executor's jobs. A new backend is a module and a line here.
BACKENDS = (
    "flask_executor.backends.process:ProcessBackend",
    "flask_executor.backends.gevent:GeventBackend",
    "flask_executor.backends.thread:ThreadBackend",
    "flask_executor.backends.pool:PoolBackend",  # any other concurrent.futures.Executor
)


def backend_class(config: ExecutorConfig) -> type[Backend]:
    """The backend that runs the jobs of an executor with this config."""
    for name in BACKENDS:
        cls: type[Backend] = import_string(name)
        if cls.handles(config):
            return cls
    raise LookupError(f"No backend runs pools of the class {config.pool_class!r}.")


class Backend:
    """One pool of one kind, and how jobs get onto it and their outcomes back.

    Made when the pool is built, which is lazily, at the first job, in the process that
    runs it (after a fork, a fresh one). Subclasses set :attr:`future_class` and
    implement :meth:`handles` and :meth:`start`; the rest has defaults.

    :param config: The executor's config on the app.
    :param replace_broken: The manager's bound method, called with the pool when a
        job's outcome shows that the pool broke, so that the next job gets a new one.
    """

    #: Whether jobs run in this process. Their futures then carry the caller's live
    #: contexts; otherwise :meth:`prepare` gets a picklable snapshot of them as well.
    local: t.ClassVar[bool] = True
    #: The class of each job's future: made before the pool sees the job, so that the
    #: job's callbacks are attached before it can finish.
    future_class: t.ClassVar[type[FutureProxy[t.Any]]]

    @classmethod
    def handles(cls, config: ExecutorConfig) -> bool:
        """Whether this backend runs the pools of ``config``."""
        raise NotImplementedError

    @classmethod
    def prepare(
        cls,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        snapshot: tuple[t.Any, ...] | None,
    ) -> t.Any:
        """Turn a call into what :meth:`start` takes, in the submitting thread.

        Runs before the pool is built. An :exc:`Exception` raised here fails only the
        job's future (a call that cannot be pickled, say), not ``submit``.
        """
        return fn, args, kwargs

    def __init__(
        self,
        config: ExecutorConfig,
        replace_broken: t.Callable[[concurrent.futures.Executor], None],
    ) -> None:
        self.pool: concurrent.futures.Executor = config.pool_class(**config.pool_kwargs)
        # Weakly: the manager that owns this backend passes its own method, and a strong
        # reference would make the two a cycle, which keeps the pool, and its idle
        # threads, alive after the app and executor are gone until the garbage collector
        # happens to run.
        self._replace_broken = weakref.WeakMethod(t.cast(t.Any, replace_broken))

    def replace_broken(self, pool: concurrent.futures.Executor) -> None:
        """Ask the manager for a new pool next time, ``pool`` being broken."""
        replace_broken = self._replace_broken()
        if replace_broken is not None:
            replace_broken(pool)
        else:
            # The manager is gone (the app was bound again, or dropped), so it keeps no
            # broken pool alive while the pool's own threads run ('PoolManager._broken').
            # Kept here instead: a process pool's manager thread, which runs this, holds
            # the pool's lock while it fails the jobs and then lets go of them; had they
            # held the last references to the pool, its finalizer would take that lock
            # too, in the same thread, and wait for ever (CPython 3.12 and 3.13).
            _orphans.keep(self)

    def result_of(self, value: t.Any) -> t.Any:
        """The job's result, from the result of the pool's own future (see :class:`Follower`).

        :raises Exception: to fail the job with it instead.
        """
        return value

    def start(self, future: FutureProxy[t.Any], call: t.Any) -> None:
        """Hand the prepared call to the pool, and see that ``future`` gets its outcome.

        :raises concurrent.futures.BrokenExecutor: if the pool broke earlier; the
            caller replaces it and starts the job once more on a new one.
        """
        raise NotImplementedError

    def forget(self, future: FutureProxy[t.Any]) -> None:
        """Let go of what is kept for a job that its pool settled through its own future.

        Called by :class:`Follower` before it settles ``future``: the job did not settle
        it, so whatever waits for the job to take its call never will.
        """

    def cancel_not_started(self) -> None:
        """Cancel the futures of the jobs that the pool holds and has not started.

        Called before ``shutdown(cancel_futures=True)``, for pools whose own cancelling
        does not reach the jobs' futures.
        """

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """Shut the pool down, as :meth:`concurrent.futures.Executor.shutdown`."""
        if cancel_futures:
            self.cancel_not_started()
        # One call, not two: a second 'shutdown' would reset a process pool's
        # cancel-pending flag before its manager thread reads it, and would not wait,
        # because the first call already let go of that thread.
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def still_running(self) -> bool:
        """Whether a broken pool's own threads may still use it (it is kept till then)."""
        return False

    def after_fork(self) -> None:
        """In a forked child, make the parent's pool harmless; it is never used again."""


class Follower:
    """Settles a job's future from the pool's own future, unless the job settled it.

    For pools whose own future says when a job is done: a process pool's, gevent's, and
    any other pool's, as a safety net for a pool that fails a job without running it.
    """

    __slots__ = ("backend", "future")

    def __init__(self, backend: Backend, future: FutureProxy[t.Any]) -> None:
        self.backend = backend
        self.future = future

    def __call__(self, source: concurrent.futures.Future[t.Any]) -> None:
        if getattr(submitting, "active", False):
            # The job was done before 'add_done_callback' returned, which then runs this
            # in the submitting thread: the callbacks of a job that ran never run there.
            threading.Thread(target=self.follow, args=(source,), daemon=True).start()
        else:
            self.follow(source)

    def follow(self, source: concurrent.futures.Future[t.Any]) -> None:
        # Runs in the pool's thread that reports outcomes.
        future, backend = self.future, self.backend
        exc = None if source.cancelled() else source.exception()
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            backend.replace_broken(backend.pool)
        if future.done():
            # Settled by the job or by hand, or cancelled: a job cancelled before it
            # started on gevent's path has its waiters ('wait', 'as_completed') told here.
            if future._state == "CANCELLED":
                notify_cancelled(future)
            return
        backend.forget(future)
        try:
            if source.cancelled():
                if concurrent.futures.Future.cancel(future):
                    notify_cancelled(future)
            elif exc is not None:
                set_outcome_now(future, exc)
            else:
                try:
                    result = backend.result_of(source.result())
                except BaseException as e:
                    set_outcome_now(future, e)
                else:
                    if _set_running_or_notify_cancel(future):
                        future.set_result(result)
        except (RuntimeError, concurrent.futures.InvalidStateError):
            pass  # settled by hand in the instant since the check


class _Orphans:
    """Broken backends whose manager is gone, each kept until the thread that reported
    the break has ended (see :meth:`Backend.replace_broken`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: list[tuple[threading.Thread, Backend]] = []

    def keep(self, backend: Backend) -> None:
        with self.lock:
            # Those whose thread has ended are let go of here, in a thread that holds
            # none of their locks.
            self.kept = [(thread, kept) for thread, kept in self.kept if thread.is_alive()]
            self.kept.append((threading.current_thread(), backend))

    def _reset_after_fork(self) -> None:
        # In a forked child the parent's threads are gone, and freeing the parent's pools
        # could take a lock held at the fork: they are made harmless and kept for good.
        self.lock = threading.Lock()
        for _, backend in self.kept:
            backend.after_fork()
            _orphans_of_the_parent.append(backend)
        self.kept = []


_orphans = _Orphans()
_orphans_of_the_parent: list[Backend] = []
reset_after_fork(_orphans)

#: Set while a thread adds a :class:`Follower` to a future that may be done already.
submitting = threading.local()

#: The states a future can be started from: 'set_running_or_notify_cancel' accepts them.
STARTABLE = ("PENDING", "CANCELLED")


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
