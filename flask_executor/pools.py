"""Building an app's pool, and keeping it usable: after a fork, after a crash, at shutdown.

A :class:`PoolManager` owns one pool, through the :class:`~flask_executor.backends.Backend`
that runs it. The pool is built lazily, at the first job, for two reasons: a pool made
before ``os.fork()`` (``gunicorn --preload``) has no worker threads or processes in the
child, so each process must build its own; and an app that never submits a job never
starts a worker.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import threading
import typing as t
import weakref

from ._fork import reset_after_fork
from .backends import _orphans
from .backends import backend_class
from .backends import set_outcome_now

if t.TYPE_CHECKING:
    from .backends import Backend
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
        #: The kind of pool, chosen once, here (see :func:`~.backends.backend_class`).
        self.backend_class = backend_class(config)
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self._is_shut_down = False
        self._retired: Backend | None = None
        #: Broken pools whose own threads may still run (see 'replace_broken').
        self._broken: list[Backend] = []
        reset_after_fork(self)
        _managers.add(self)

    @property
    def backend(self) -> Backend:
        """The backend of the pool, built on first use.

        :raises RuntimeError: after :meth:`shutdown`.
        """
        backend = self._backend
        if backend is None:
            backend = self._build()
        return backend

    @property
    def pool(self) -> concurrent.futures.Executor:
        """The pool, built on first use.

        :raises RuntimeError: after :meth:`shutdown`.
        """
        return self.backend.pool

    def _build(self) -> Backend:
        with self._lock:
            if self._is_shut_down:
                raise RuntimeError(
                    f"The executor {self.label} has been shut down, so it cannot run new jobs."
                )
            if self._backend is None:
                self._backend = self.backend_class(self.config, self.replace_broken)
            return self._backend

    def start(
        self,
        future: FutureProxy[t.Any],
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        snapshot: tuple[t.Any, ...] | None,
    ) -> None:
        """Start ``fn(*args, **kwargs)`` on the pool; ``future`` gets its outcome."""
        try:
            call = self.backend_class.prepare(fn, args, kwargs, snapshot)
        except Exception as e:
            set_outcome_now(future, e)
            return
        backend = self.backend
        try:
            backend.start(future, call)
        except concurrent.futures.BrokenExecutor:
            # The pool broke since the last job's outcome came back; one new pool is tried.
            self.replace_broken(backend.pool)
            backend = self.backend
            try:
                backend.start(future, call)
            except concurrent.futures.BrokenExecutor as e:
                # That one broke too before it took the job (a thread pool whose
                # initializer always raises): the job fails, as any job on a pool that
                # breaks under it does, and the next job gets a new pool again.
                self.replace_broken(backend.pool)
                set_outcome_now(future, e)

    def replace_broken(self, broken: concurrent.futures.Executor) -> None:
        """Drop ``broken`` so that the next job builds a new pool.

        Called when a job's future fails with
        :class:`~concurrent.futures.BrokenExecutor` (a process pool whose worker died), or
        when the pool refuses a job for that reason. Only the first report for a pool
        replaces it; the jobs that were in flight with it all report the same break.
        """
        with self._lock:
            # Kept until its own threads have ended. A process pool's manager thread
            # holds the pool's shutdown lock while it fails the jobs; had the jobs held
            # the last references to the pool, its finalizer would take that lock too
            # and wait for ever (CPython 3.12 and 3.13 do). Pools whose threads are gone
            # are let go of here, in a thread that holds none of their locks.
            self._broken = [backend for backend in self._broken if backend.still_running()]
            backend = self._backend
            if backend is None or backend.pool is not broken:
                return
            self._broken.append(backend)
            self._backend = None
        if isinstance(broken, concurrent.futures.ThreadPoolExecutor):
            logger.warning(
                "The pool of the executor %s broke (a worker thread's initializer raised)."
                " The jobs queued then failed; a new pool will run the next jobs.",
                self.label,
            )
            # Its workers whose initializer succeeded still wait on its queue; shutting
            # it down wakes them to end, once any job they run now is done. From a
            # thread of its own: this may run in one of the pool's workers, which holds
            # the pool's shutdown lock while it fails the queued jobs.
            threading.Thread(target=broken.shutdown, kwargs={"wait": False}, daemon=True).start()
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
            backend, self._backend = self._backend, None
            # Kept so that a later shutdown(wait=True) still waits for the jobs that an
            # earlier shutdown(wait=False) left running.
            if backend is None:
                backend = self._retired
            else:
                self._retired = backend
        if backend is not None:
            backend.shutdown(wait, cancel_futures)

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._is_shut_down

    def _reset_after_fork(self) -> None:
        # In the child, only the forking thread exists. The parent's pools have no
        # workers here and their locks may have been held by threads that are gone, so
        # they are let go of, and the next job builds a fresh pool in this process.
        # Not freed, though, and made harmless first ('Backend.after_fork').
        for backend in (self._backend, self._retired, *self._broken):
            if backend is not None:
                backend.after_fork()
                _pools_of_the_parent.append(backend)
        self._lock = threading.Lock()
        self._backend = self._retired = None
        self._broken = []


_pools_of_the_parent: list[Backend] = []
_managers: weakref.WeakSet[PoolManager] = weakref.WeakSet()


@atexit.register
def _let_go_of_pools() -> None:
    # By now the interpreter has waited for every pool's jobs (concurrent.futures joins
    # the pools' threads before 'atexit' functions run). A pool still referenced from
    # here would be freed only while the interpreter tears its modules down, too late
    # for its finalizer, which then prints an error on every exit. The parent's pools
    # in a forked child stay: they are disarmed, and are freed with the rest.
    for manager in list(_managers):
        manager._backend = manager._retired = None
        manager._broken = []
    _orphans.kept = []
