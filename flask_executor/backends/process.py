"""Pools whose workers are other processes: CPython's ProcessPoolExecutor and its subclasses.

The call and a snapshot of its contexts are pickled in the submitting thread (a plain
function's reference only once, see :func:`_pickle_call`), and the worker pickles the
result before the pool sends it back (unless it is a plain ``str``, ``int``, ``float``,
``bool`` or ``None``, which cannot fail). Pickling the call here lets a value that cannot
be pickled fail its own job with a message that names it. Pickling the result there
means that a result which cannot be unpickled here fails its own job too: an object the
pool itself cannot unpickle breaks the whole pool, and every job in flight with it.

The job's :class:`ProcessTask` follows the pool's own future for the job. On CPython's
own class, the fast path of :mod:`flask_executor._cpython` queues the job without
``submit``, and a job for an idle pool goes straight to the workers, which saves a
thread hand-over (docs/performance.rst).
"""

from __future__ import annotations

import concurrent.futures
import pickle
import types
import typing as t

from .. import _cpython
from .. import context
from ..futures import FutureProxy
from ..jobs import describe
from . import Backend
from . import Follower
from . import notify_cancelled
from . import submitting

if t.TYPE_CHECKING:
    from ..config import ExecutorConfig

__all__ = ["ProcessBackend", "ProcessTask", "received"]

R = t.TypeVar("R")


class ProcessTask(FutureProxy[R]):
    """The future of a job that runs in a worker process: it follows the pool's own."""

    def cancel(self) -> bool:
        """Cancel the job if it has not been sent to a worker. Return whether it is."""
        if self._source is not None:
            return super().cancel()  # cancelling the pool's future cancels this one
        # Not handed to the pool yet (its call is being pickled): the backend sees this.
        cancelled = concurrent.futures.Future.cancel(self)
        if cancelled:
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
        remote = (concurrent.futures.ProcessPoolExecutor,)
        interpreters = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
        return issubclass(config.pool_class, remote + ((interpreters,) if interpreters else ()))

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

    def __init__(self, config: ExecutorConfig, *args: t.Any) -> None:
        super().__init__(config, *args)
        # The probe job counts as a job of the worker that runs it ('max_tasks_per_child').
        off = None if config.fast_paths else _cpython.SWITCHED_OFF
        self.fast_path = _cpython.FastPath("process", self.pool, off)

    def start(self, future: FutureProxy[t.Any], call: t.Any) -> None:
        fast_path = self.fast_path
        pool = t.cast(concurrent.futures.ProcessPoolExecutor, self.pool)
        if fast_path.on:
            # The job's own future for the pool, followed from before it is queued: a job
            # that cannot be queued fails through it. Once it is the task's source, a
            # cancel goes to it, and the pool drops the job.
            source: concurrent.futures.Future[t.Any] = _cpython.WorkItemFuture()
            future._source = source
            if future.cancelled():
                return  # cancelled while its call was pickled
            source.add_done_callback(Follower(self, future))
            _cpython.put_process_job(pool, source, _run_pickled_call, call)
            return
        fast_path.expire()
        source = future._source = pool.submit(_run_pickled_call, *call)
        submitting.active = True  # the job may be done already (see 'Follower')
        try:
            source.add_done_callback(Follower(self, future))
        finally:
            submitting.active = False

    def result_of(self, value: t.Any) -> t.Any:
        return received(value)

    def still_running(self) -> bool:
        return _cpython.manager_thread_runs(self.pool)

    def after_fork(self) -> None:
        _cpython.disarm_in_child(self.pool)


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
