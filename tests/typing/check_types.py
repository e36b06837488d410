"""Typing checks: ``mypy --strict`` reads this file; nothing here runs.

Each ``assert_type`` fails the type check if the inferred type differs. Each
``# type: ignore[code]`` line is a call that must be an error: strict mode turns on
``warn_unused_ignores``, so if the call ever type-checked, the ignore would be reported
as unused and the check would fail.
"""

from __future__ import annotations

import typing as t

from flask import Flask
from flask_executor import AsyncExecutorJob
from flask_executor import Executor
from flask_executor import ExecutorJob
from flask_executor import FutureProxy
from flask_executor import JobState
from flask_executor import MapResult
from typing_extensions import assert_type

app = Flask(__name__)
executor = Executor(app)


@executor.job
def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@executor.job
async def afib(n: int) -> int:
    return n if n < 2 else await afib(n - 1) + await afib(n - 2)


def add(a: int, b: int) -> int:
    return a + b


async def aadd(a: int, b: int) -> int:
    return a + b


def greet(name: str, *, punctuation: str = "!") -> str:
    return name + punctuation


def check_jobs() -> None:
    # Annotated assignments: assert_type would compare the parameter names too.
    sync_job: ExecutorJob[[int], int] = fib
    async_job: AsyncExecutorJob[[int], int] = afib
    del sync_job, async_job
    assert_type(fib(5), int)
    assert_type(fib.submit(5), FutureProxy[int])
    assert_type(afib.submit(5), FutureProxy[int])
    assert_type(fib.submit_stored("key", 5), FutureProxy[int])
    assert_type(afib.submit_stored("key", 5), FutureProxy[int])
    assert_type(fib.submit_stored(future_key="key", n=5), FutureProxy[int])
    assert_type(fib.map(range(3)), MapResult[int])
    assert_type(afib.map(range(3), buffersize=2), MapResult[int])
    for n in fib.map(range(3)):
        assert_type(n, int)


def check_submit() -> None:
    assert_type(executor.submit(add, 1, 2), FutureProxy[int])
    assert_type(executor.submit(aadd, 1, 2), FutureProxy[int])
    assert_type(executor.submit(greet, "ada", punctuation="?"), FutureProxy[str])
    assert_type(executor.submit_stored("key", add, 1, 2), FutureProxy[int])
    assert_type(executor.submit(add, 1, 2).result(), int)
    # Keywords, as Flask-Executor 1.0 took them: the result type still comes through.
    assert_type(executor.submit(fn=add, a=1, b=2), FutureProxy[int])
    assert_type(executor.submit(fn=aadd, a=1, b=2), FutureProxy[int])
    assert_type(executor.submit_stored(future_key="key", fn=add, a=1, b=2), FutureProxy[int])
    assert_type(executor.submit_stored("key", fn=greet, name="ada"), FutureProxy[str])


def check_concurrent_futures_executor() -> None:
    import concurrent.futures

    base: concurrent.futures.Executor = executor
    del base
    with executor as entered:
        assert_type(entered, Executor)
    assert_type(executor.pool, concurrent.futures.Executor)
    assert_type(executor.max_workers, t.Optional[int])


async def check_await() -> None:
    assert_type(await fib.submit(5), int)
    assert_type(await afib.submit(5), int)
    assert_type(await afib(5), int)
    assert_type(await executor.submit(add, 1, 2), int)
    assert_type(await executor.submit(aadd, 1, 2), int)
    assert_type(await executor.submit_stored("key", aadd, 1, 2), int)
    async for n in afib.map(range(3)):
        assert_type(n, int)


def check_errors() -> None:
    fib.submit("x")  # type: ignore[arg-type]
    afib.submit("x")  # type: ignore[arg-type]
    # Overloaded for 'future_key=' as a keyword, so a bad argument matches no overload.
    fib.submit_stored("key", "x")  # type: ignore[call-overload]
    # 'submit' is overloaded (coroutine functions first), so mypy reports a bad
    # argument to it as matching no overload.
    executor.submit(add, 1, "2")  # type: ignore[call-overload]
    executor.submit(add, 1)  # type: ignore[call-overload]
    executor.submit(aadd, "1", 2)  # type: ignore[call-overload]
    executor.submit_stored("key", add, "1", 2)  # type: ignore[call-overload]
    executor.submit()  # type: ignore[call-overload]
    executor.submit(fn=add, a=1, b=2).result().upper()  # type: ignore[attr-defined]


def check_future_is_a_future(future: FutureProxy[int]) -> None:
    import concurrent.futures

    base: concurrent.futures.Future[int] = future
    awaitable: t.Awaitable[int] = future
    del base, awaitable


async def check_job_metadata() -> None:
    # Set by functools.update_wrapper at run time; declared for type checkers.
    assert_type(fib.__name__, str)
    assert_type(fib.__qualname__, str)
    assert_type(fib.__module__, str)
    assert_type(fib.__doc__, t.Optional[str])
    assert_type(afib.__name__, str)
    assert_type(fib.__wrapped__(5), int)
    assert_type(await afib.__wrapped__(5), int)
    fib.__wrapped__("x")  # type: ignore[arg-type]
    fib.__nmae__  # type: ignore[attr-defined]  # noqa: B018


def check_job_state(future: FutureProxy[int]) -> None:
    assert_type(future.state, JobState)
    assert_type(executor.futures.state("key"), t.Optional[JobState])
    assert_type(executor.futures.done("key"), t.Optional[bool])
    assert_type(executor.futures.running("key"), t.Optional[bool])
    assert_type(executor.futures.cancelled("key"), t.Optional[bool])
    assert_type(executor.futures.cancel("key"), t.Optional[bool])
    assert_type(executor.futures.exception("key", timeout=1), t.Optional[BaseException])
    executor.futures.result("key", timeout=1)
    executor.futures.add_done_callback("key", lambda f: None)
    # A misspelt method is an error now that the collection has no '__getattr__'.
    executor.futures.dnoe("key")  # type: ignore[attr-defined]
    executor.futures.result("key", 1, 2)  # type: ignore[call-arg]
    json_value: str = JobState.RUNNING
    del json_value
