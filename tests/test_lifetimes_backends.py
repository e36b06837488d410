"""Lifetimes that belong to the backends (``tasks.py``, the pools): nothing a job used
outlives it, there either.

Kept apart from ``tests/test_lifetimes.py`` because the code they test is being moved
into a package of its own; the tests check behaviour only, through the public API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import typing as t
import weakref

import pytest
from flask import Flask
from flask import g
from flask import has_app_context
from flask_executor import Executor

RESULT_TIMEOUT = 30


class Marker:
    """Something a job uses, which can be referred to weakly."""


class RefusingPool(concurrent.futures.Executor):
    """A custom pool that fails every job through its own future, without running it
    (as one that lost its connection to where it sends jobs would)."""

    def __init__(self, **_: t.Any) -> None:
        pass

    def submit(self, fn: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        future: concurrent.futures.Future[t.Any] = concurrent.futures.Future()
        future.set_exception(ConnectionError("the pool refused the job"))
        return future


def use(marker: Marker) -> None:
    raise AssertionError("never runs")


@pytest.mark.timeout(30)
def test_a_job_that_its_pool_fails_lets_go_of_its_arguments(app: Flask) -> None:
    app.config.update(EXECUTOR_TYPE="custom", EXECUTOR_POOL_CLASS=RefusingPool)
    executor = Executor(app)
    argument = Marker()
    ref = weakref.ref(argument)
    with app.app_context():
        future = executor.submit(use, argument)
    del argument
    assert isinstance(future.exception(RESULT_TIMEOUT), ConnectionError)
    # The executor, its pool and the future are all still held: the job is over.
    gc.collect()
    assert ref() is None
    with app.app_context():
        executor.shutdown(wait=True)
    assert isinstance(future.exception(), ConnectionError)


@pytest.mark.timeout(30)
def test_an_abandoned_async_generator_is_finalized_within_its_own_job(app: Flask) -> None:
    # One worker, so both jobs run on the same thread, and the same event loop.
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    finalized: list[tuple[str | None, bool]] = []
    finalized_once = threading.Event()

    async def numbers() -> t.AsyncIterator[int]:
        try:
            for n in range(10):
                yield n
        finally:
            # Whose job is running now, and with an app context or not.
            finalized.append((g.get("job") if has_app_context() else None, has_app_context()))
            finalized_once.set()

    class Cursor:
        # An object in a reference cycle, as many are: freed only by the collector,
        # whenever it runs, in whichever thread.
        def __init__(self) -> None:
            self.me = self
            self.rows = numbers()

    async def first() -> int:
        g.job = "first"
        cursor = Cursor()
        async for n in cursor.rows:
            if n == 2:
                break  # abandoned, and still referred to by the cycle
        return n

    async def second() -> str:
        g.job = "second"
        await asyncio.sleep(0)
        return "second"

    try:
        with app.app_context():
            first_job = executor.submit(first)
            assert first_job.result(RESULT_TIMEOUT) == 2
        # The job is over: what it started is closed within it, with its app context.
        assert finalized == [("first", True)]
        gc.collect()  # here, outside any context: frees the cycle
        with app.app_context():
            assert executor.submit(second).result(RESULT_TIMEOUT) == "second"
    finally:
        with app.app_context():
            executor.shutdown(wait=True)
    assert finalized_once.is_set()
    assert finalized == [("first", True)]
