"""Functions decorated with ``@executor.job``.

The decorated function is still the function: calling it runs it here and now (and
awaiting an ``async def`` one runs it in the caller's event loop). What the decorator adds
is ``submit``, ``submit_stored`` and ``map``, which run it on the executor.
"""

from __future__ import annotations

import functools
import sys
import typing as t

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:  # pragma: no cover
    from typing_extensions import ParamSpec

from ._arguments import MISSING
from ._arguments import pop_keyword

if t.TYPE_CHECKING:
    from .extension import Executor
    from .futures import FutureProxy
    from .results import MapResult

__all__ = ["AsyncExecutorJob", "ExecutorJob"]

P = ParamSpec("P")
R = t.TypeVar("R")
F = t.TypeVar("F", bound=t.Callable[..., t.Any])


class _Job(t.Generic[P, R]):
    # What sync and async jobs share. R is the type of the job's *result*: what
    # ``submit(...).result()`` returns and ``await submit(...)`` gives.

    is_async: t.ClassVar[bool] = False

    def __init__(self, executor: Executor, fn: t.Callable[P, t.Any]) -> None:
        self.executor = executor
        self.fn = fn
        functools.update_wrapper(self, fn)

    def submit(self, /, *args: P.args, **kwargs: P.kwargs) -> FutureProxy[R]:
        """Run the function on the executor; see :meth:`Executor.submit`."""
        # The job itself is what is submitted, not 'self.fn': a process pool pickles
        # functions by their module and name, which now names this object.
        return self.executor._submit(self, args, kwargs)

    @t.overload
    def submit_stored(
        self, future_key: t.Hashable, /, *args: P.args, **kwargs: P.kwargs
    ) -> FutureProxy[R]: ...

    # 'future_key' as a keyword, as 1.0 allowed: the arguments cannot be checked then.
    @t.overload
    def submit_stored(self, *, future_key: t.Hashable, **kwargs: t.Any) -> FutureProxy[R]: ...

    def submit_stored(  # type: ignore[misc]  # as 'Executor.submit'
        self, future_key: t.Hashable = MISSING, /, *args: t.Any, **kwargs: t.Any
    ) -> FutureProxy[R]:
        """Run the function and store its future; see :meth:`Executor.submit_stored`."""
        if future_key is MISSING:
            future_key = pop_keyword("submit_stored", "future_key", "a key", "first", kwargs)
        return self.executor._submit(self, args, kwargs, future_key=future_key)

    def map(
        self,
        *iterables: t.Iterable[t.Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> MapResult[R]:
        """Run the function on each item; see :meth:`Executor.map`."""
        return self.executor.map(
            self, *iterables, timeout=timeout, chunksize=chunksize, buffersize=buffersize
        )

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> t.Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> str:
        # Pickled by reference, as the module-level name that the decorator replaced,
        # so that process workers import the same job.
        return self.__qualname__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__module__}.{self.__qualname__}>"

    if t.TYPE_CHECKING:
        # Set by 'functools.update_wrapper' at run time, which type checkers do not
        # follow: declared here so that 'job.__name__' and the rest type-check.
        __module__: str
        __name__: str
        __qualname__: str
        __doc__: str | None
        __wrapped__: t.Callable[P, t.Any]


class ExecutorJob(_Job[P, R]):
    """A function decorated with :meth:`Executor.job`.

    .. versionchanged:: 2.0
        Works with process pools (for module-level functions) and before ``init_app``.
    """

    fn: t.Callable[P, R]
    if t.TYPE_CHECKING:
        __wrapped__: t.Callable[P, R]

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)


class AsyncExecutorJob(_Job[P, R]):
    """An ``async def`` function decorated with :meth:`Executor.job`.

    ``await job(...)`` runs it inline, in the caller's event loop. ``job.submit(...)``
    runs it to completion in a worker, and returns a future that can be awaited.

    .. versionadded:: 2.0
    """

    is_async = True
    fn: t.Callable[P, t.Coroutine[t.Any, t.Any, R]]
    if t.TYPE_CHECKING:
        __wrapped__: t.Callable[P, t.Coroutine[t.Any, t.Any, R]]

    def __call__(self, /, *args: P.args, **kwargs: P.kwargs) -> t.Coroutine[t.Any, t.Any, R]:
        return self.fn(*args, **kwargs)
