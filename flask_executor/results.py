"""The results of ``map``: iterated with ``for`` or ``async for``, in order.

Without ``buffersize``, every item is submitted when ``map`` is called, as
:meth:`concurrent.futures.Executor.map` does, so dropping the result does not stop the
jobs. With ``buffersize=N``, at most N jobs are in flight: the next item is taken from
the input only when a result is taken from the output. That keeps memory flat for huge or
endless inputs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import time
import typing as t

if t.TYPE_CHECKING:
    from .futures import FutureProxy

__all__ = ["MapResult"]

R = t.TypeVar("R")


class MapResult(t.Generic[R]):
    """The results of :meth:`~flask_executor.Executor.map`, in the order of the input.

    Iterate with ``for`` in sync code or ``async for`` in a coroutine; either waits for
    each result in turn, and raises the first job exception it meets. With
    ``buffersize``, an exception raised by the input while it is read during iteration
    is raised after the results of every item before it. ``timeout`` counts
    from the call to ``map``, as in :mod:`concurrent.futures`: when it runs out, the
    iteration raises :exc:`TimeoutError`.

    When iteration stops on an exception or a timeout, the jobs that have not started
    are cancelled. Call :meth:`close` to cancel them when you stop early yourself.
    """

    def __init__(
        self,
        start: t.Callable[[tuple[t.Any, ...]], FutureProxy[t.Any]],
        arguments: t.Iterator[tuple[t.Any, ...]],
        *,
        timeout: float | None,
        buffersize: int | None,
        chunked: bool = False,
    ) -> None:
        self._start = start
        self._arguments: t.Iterator[tuple[t.Any, ...]] | None = arguments
        self._in_flight: collections.deque[FutureProxy[t.Any]] = collections.deque()
        self._buffersize = buffersize
        self._deadline = None if timeout is None else time.monotonic() + timeout
        # A chunked job returns a list of results; they wait here to be handed out.
        self._chunked = chunked
        self._ready: collections.deque[R] = collections.deque()
        # An error met while topping the window up during iteration (the input raised,
        # or the executor refused the job): raised once the results before it are out.
        self._error: Exception | None = None
        # At the call to 'map', an error is raised at once, as concurrent.futures does.
        self._fill()

    def _fill(self) -> None:
        arguments = self._arguments
        if arguments is None:
            return
        limit = self._buffersize
        in_flight = self._in_flight
        if limit is None:
            in_flight.extend(map(self._start, arguments))
            self._arguments = None
            return
        for args in itertools.islice(arguments, limit - len(in_flight)):
            in_flight.append(self._start(args))
        if len(in_flight) < limit:
            self._arguments = None

    def _top_up(self) -> None:
        # During iteration. The result just taken, and those of the jobs still in the
        # window, were computed from items before the one that failed: raising here would
        # drop the result in hand, and 'close' would cancel the rest. The error waits
        # for its turn instead, and no more items are read.
        try:
            self._fill()
        except Exception as exc:
            self._arguments = None
            self._error = exc

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _take_head(self) -> None:
        # The oldest job's result has been taken: it leaves the window, and only now does
        # the next item enter it. Topping up before the result is in would put N + 1 jobs
        # in flight, and would pull one item too many from the input when the wait ends
        # in a timeout or an exception.
        self._in_flight.popleft()
        self._top_up()

    def _hand_out(self, value: t.Any) -> R:
        if self._chunked:
            self._ready.extend(value)
            return self._ready.popleft()
        return t.cast(R, value)

    def __iter__(self) -> MapResult[R]:
        return self

    def __next__(self) -> R:
        if self._ready:
            return self._ready.popleft()
        while self._in_flight:
            # The head stays in the window while it is waited on, so that 'close' cancels
            # it too if the wait ends in a timeout.
            try:
                value = self._in_flight[0].result(self._remaining())
                self._take_head()
            except BaseException:
                self.close()
                raise
            if not self._chunked or value:
                return self._hand_out(value)
        self._raise_error()
        raise StopIteration

    def __aiter__(self) -> MapResult[R]:
        return self

    async def __anext__(self) -> R:
        if self._ready:
            return self._ready.popleft()
        while self._in_flight:
            future = self._in_flight[0]
            try:
                remaining = self._remaining()
                if remaining is None or future.done():
                    # A result that is already in is handed out even after the deadline,
                    # as 'Future.result(timeout)' does for sync iteration.
                    value = await future
                else:
                    value = await _wait_for(future, remaining)
                self._take_head()
            except BaseException:
                self.close()
                raise
            if not self._chunked or value:
                return self._hand_out(value)
        self._raise_error()
        raise StopAsyncIteration

    def close(self) -> None:
        """Stop: cancel the jobs that have not started and submit no more."""
        self._arguments = None
        while self._in_flight:
            self._in_flight.popleft().cancel()

    def __repr__(self) -> str:
        return f"<MapResult {len(self._in_flight)} in flight>"


async def _wait_for(future: FutureProxy[t.Any], timeout: float) -> t.Any:
    import asyncio

    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        # Before Python 3.11 asyncio has a TimeoutError of its own; raise the one that
        # sync iteration raises, so that one 'except' serves both.
        raise concurrent.futures.TimeoutError() from None
