"""Pools whose workers are other processes: CPython's ProcessPoolExecutor and its subclasses.

The call and a snapshot of its contexts are pickled in the submitting thread (a plain
function's reference only once, see :func:`_pickle_call`), and the worker pickles the
result before the pool sends it back (unless it is a plain ``str``, ``int``, ``float``,
``bool`` or ``None``, which cannot fail). Pickling the call here lets a value that cannot
be pickled fail its own job with a message that names it. Pickling the result there
means that a result which cannot be unpickled here fails its own job too: an object the
pool itself cannot unpickle breaks the whole pool, and every job in flight with it.

The job's :class:`ProcessTask` follows the pool's own future (:class:`_Follower`). On
CPython's own class, the fast path of :mod:`flask_executor._cpython` puts the job in the
pool's pending work behind a :class:`_PoolSide` instead, which stands in for the Future
the pool would have made and settles the task directly: that saves each job a second
future, the callback that chains the two and, for an idle pool, a thread hand-over
(docs/performance.rst).
"""

from __future__ import annotations

import concurrent.futures
import pickle
import threading
import types
import typing as t

from .. import _cpython
from .. import context
from ..futures import FutureProxy
from ..jobs import describe
from . import Backend
from . import notify_cancelled
from . import set_outcome_now
from . import STARTABLE

if t.TYPE_CHECKING:
    from ..config import ExecutorConfig

__all__ = ["ProcessBackend", "ProcessTask", "received"]

R = t.TypeVar("R")
_set_running_or_notify_cancel = concurrent.futures.Future.set_running_or_notify_cancel


class ProcessTask(FutureProxy[R]):
    """The future of a job that runs in a worker process.

    It follows the pool's own future, or, on the fast path, the pool settles it directly
    through a :class:`_PoolSide`.
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


#: What travels to the worker: a plain function's pickled reference, and the rest of the
#: call pickled (see :func:`_pickle_call`).
_Call = tuple[t.Optional[bytes], bytes]


class ProcessBackend(Backend):
    """Pools whose workers are other processes, so that jobs are pickled."""

    local = False
    future_class = ProcessTask

    @classmethod
    def handles(cls, config: ExecutorConfig) -> bool:
        # Python 3.14's InterpreterPoolExecutor too: its subinterpreters share no objects.
        remote: tuple[type, ...] = (concurrent.futures.ProcessPoolExecutor,)
        interpreter_pool = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
        if interpreter_pool is not None:
            remote += (interpreter_pool,)
        return issubclass(config.pool_class, remote)

    @classmethod
    def prepare(
        cls,
        fn: t.Callable[..., t.Any],
        args: tuple[t.Any, ...],
        kwargs: dict[str, t.Any],
        snapshot: tuple[t.Any, ...] | None,
    ) -> _Call:
        # The call is pickled here, in the submitting thread, and never by the pool's
        # feeder thread. Pickling a function imports its module, and a job submitted and
        # waited for while that module is still being imported (an app that warms its
        # pool at import time, under 'gunicorn --preload') would wait for ever for the
        # import lock that its own thread holds.
        try:
            return _pickle_call(fn, args, kwargs, t.cast("tuple[t.Any, ...]", snapshot))
        except Exception as e:
            raise _unpicklable_call_error(e, fn, args, kwargs) from None

    def __init__(
        self,
        config: ExecutorConfig,
        replace_broken: t.Callable[[concurrent.futures.Executor], None],
    ) -> None:
        super().__init__(config, replace_broken)
        off = None
        if not config.fast_paths:
            off = "EXECUTOR_FAST_PATHS is off"
        elif config.pool_kwargs.get("max_tasks_per_child") is not None:
            off = "its workers have 'max_tasks_per_child', of which the probe job would take one"
        self.fast_path = _cpython.FastPath("process", self.pool, off, _cpython.put_process_probe)

    def start(self, future: FutureProxy[t.Any], call: t.Any) -> None:
        fast_path = self.fast_path
        pool = t.cast(concurrent.futures.ProcessPoolExecutor, self.pool)
        if fast_path.on:
            _cpython.put_process_job(pool, _PoolSide(self, future), _run_pickled_call, call)
            return
        if fast_path.checking:
            fast_path.expire()
        source = pool.submit(_run_pickled_call, *call)
        future._source = source
        # If the job is already done, 'add_done_callback' runs the follower right here,
        # in the submitting thread, and the job's callbacks with it. The flag lets the
        # follower see that and move to a thread of its own: the callbacks of a job that
        # ran never run in the submitting thread.
        _submitting.active = True
        try:
            source.add_done_callback(_Follower(self, future))
        finally:
            _submitting.active = False

    def still_running(self) -> bool:
        return _cpython.manager_thread_runs(self.pool)

    def after_fork(self) -> None:
        _cpython.disarm_in_child(self.pool)


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

    __slots__ = ("backend", "sent", "task")

    def __init__(self, backend: Backend, task: FutureProxy[t.Any]) -> None:
        self.backend = backend
        self.task = task
        # Set by the manager thread, or by the fast path under the pool's lock, which
        # the pool's own calls to 'cancel' (at shutdown) come after; read by 'cancel'.
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
            self.backend.replace_broken(self.backend.pool)
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


class _Follower:
    """Copies the outcome of the pool's own future into the job's task."""

    __slots__ = ("backend", "future")

    def __init__(self, backend: Backend, future: FutureProxy[t.Any]) -> None:
        self.backend = backend
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
            self.backend.replace_broken(self.backend.pool)
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
