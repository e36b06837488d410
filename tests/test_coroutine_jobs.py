"""Coroutine functions as jobs, ``@executor.job`` on ``async def``, and ``map`` results.

A coroutine job runs to completion on the worker thread that picked it up, on that
thread's own event loop, with the same contexts as a sync job. ``map`` results are
iterated with ``for`` or ``async for``, in input order, within ``timeout``, and with
``buffersize`` bounding the jobs in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import threading
import typing as t

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor
from flask_executor import FutureProxy

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

# Generous bound for waits on events that another thread sets; never reached when the
# code works, and it turns a hang into a failure.
WAIT = 10.0


def make_executor(app: Flask, max_workers: int) -> Executor:
    app.config["EXECUTOR_MAX_WORKERS"] = max_workers
    return Executor(app)


@pytest.fixture
def single(app: Flask) -> t.Iterator[Executor]:
    """An executor whose pool has exactly one worker thread."""
    executor = make_executor(app, 1)
    yield executor
    with app.app_context():
        executor.shutdown(wait=True)


def block_worker(executor: Executor) -> tuple[threading.Event, FutureProxy[None]]:
    """Occupy a one-worker pool until the returned event is set."""
    started = threading.Event()
    release = threading.Event()

    def blocker() -> None:
        started.set()
        release.wait(WAIT)

    future = executor.submit(blocker)
    assert started.wait(WAIT)
    return release, future


# -- Contexts ---------------------------------------------------------------------------


async def read_contexts() -> dict[str, t.Any]:
    # Suspend once, so that what follows runs in a later step of the task: the contexts
    # must belong to the task, not merely to the call that created the coroutine.
    await asyncio.sleep(0)
    seen = {
        "app": current_app.name,
        "path": request.path,
        "header": request.headers["X-Request-Id"],
        "g": g.user,
        "var": request_id.get(),
        "thread": threading.get_ident(),
    }
    # Changing the job's g must not reach the view's: the job has a copy.
    g.user = "changed by the job"
    return seen


def expected_contexts(app: Flask) -> dict[str, t.Any]:
    return {
        "app": app.name,
        "path": "/contexts/7",
        "header": "abc",
        "g": "ada",
        "var": "rid-7",
    }


def test_coroutine_job_has_the_contexts_of_a_sync_view(app: Flask, executor: Executor) -> None:
    @app.get("/contexts/<int:n>")
    def view(n: int) -> dict[str, t.Any]:
        g.user = "ada"
        request_id.set(f"rid-{n}")
        seen = executor.submit(read_contexts).result(WAIT)
        return {"seen": seen, "g_after": g.user, "thread": threading.get_ident()}

    body = app.test_client().get("/contexts/7", headers={"X-Request-Id": "abc"}).json
    assert body is not None
    seen = body["seen"]
    assert {k: v for k, v in seen.items() if k != "thread"} == expected_contexts(app)
    assert seen["thread"] != body["thread"]
    assert body["g_after"] == "ada"


def test_coroutine_job_has_the_contexts_of_an_async_view(app: Flask, executor: Executor) -> None:
    @app.get("/contexts/<int:n>")
    async def view(n: int) -> dict[str, t.Any]:
        g.user = "ada"
        request_id.set(f"rid-{n}")
        seen = await executor.submit(read_contexts)
        return {"seen": seen, "g_after": g.user, "thread": threading.get_ident()}

    body = app.test_client().get("/contexts/7", headers={"X-Request-Id": "abc"}).json
    assert body is not None
    seen = body["seen"]
    assert {k: v for k, v in seen.items() if k != "thread"} == expected_contexts(app)
    assert seen["thread"] != body["thread"]
    assert body["g_after"] == "ada"


def test_coroutine_job_runs_in_a_fresh_app_context_with_teardown(
    app: Flask, executor: Executor
) -> None:
    torn_down = threading.Event()
    app.teardown_appcontext(lambda exc: torn_down.set())

    async def job() -> str:
        return current_app.name

    with app.app_context():
        assert executor.submit(job).result(WAIT) == app.name
        # The submitter's own context is still pushed: the teardown that ran was the job's.
        assert torn_down.wait(WAIT)


def test_coroutine_job_exception_is_the_futures_exception(executor: Executor) -> None:
    error = LookupError("from the coroutine")

    async def job() -> None:
        await asyncio.sleep(0)
        raise error

    future = executor.submit(job)
    assert future.exception(WAIT) is error


# -- One loop per worker thread, no extra thread ----------------------------------------


async def loop_and_thread() -> tuple[asyncio.AbstractEventLoop, int]:
    return asyncio.get_running_loop(), threading.get_ident()


def test_one_worker_reuses_one_loop(single: Executor) -> None:
    worker_thread = single.submit(threading.get_ident).result(WAIT)
    loop_1, thread_1 = single.submit(loop_and_thread).result(WAIT)
    loop_2, thread_2 = single.submit(loop_and_thread).result(WAIT)

    # The objects themselves are compared, not their id(): a closed loop's id could be
    # reused by a new one.
    assert loop_2 is loop_1
    assert not loop_1.is_closed()
    # The coroutine runs on the worker thread itself, as a sync job does; no thread is
    # put between the pool and the coroutine.
    assert thread_1 == thread_2 == worker_thread


def test_each_worker_thread_has_its_own_loop(app: Flask) -> None:
    executor = make_executor(app, 2)
    # Both jobs must be running at once to be sure that two workers ran them.
    both_running = threading.Barrier(2, timeout=WAIT)

    async def job() -> tuple[asyncio.AbstractEventLoop, int]:
        both_running.wait()
        return asyncio.get_running_loop(), threading.get_ident()

    with app.app_context():
        try:
            (loop_a, thread_a), (loop_b, thread_b) = (
                f.result(WAIT) for f in [executor.submit(job), executor.submit(job)]
            )
        finally:
            executor.shutdown(wait=True)
    assert thread_a != thread_b
    assert loop_a is not loop_b


def test_tasks_a_job_leaves_behind_are_cancelled_before_the_next_job(single: Executor) -> None:
    events: list[str] = []

    async def lingers() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # Cleanup still runs inside the job that started the task.
            events.append(f"cancelled in {current_app.name}")
            raise
        events.append("finished")

    async def leaves_a_task() -> None:
        asyncio.get_running_loop().create_task(lingers())
        await asyncio.sleep(0)  # let it start and suspend

    async def next_job() -> tuple[list[str], int]:
        return list(events), len(asyncio.all_tasks())

    single.submit(leaves_a_task).result(WAIT)
    seen, tasks = single.submit(next_job).result(WAIT)
    assert seen == ["cancelled in flask_executor_test"]
    assert tasks == 1  # the next job's own task


# -- @executor.job on async def -----------------------------------------------------------


def test_async_job_submit_and_submit_stored_return_awaitable_futures(
    app: Flask, executor: Executor
) -> None:
    @executor.job
    async def afib(n: int) -> int:
        a, b = 0, 1
        for _ in range(n):
            await asyncio.sleep(0)
            a, b = b, a + b
        return a

    async def main() -> list[int]:
        submitted = afib.submit(10)
        stored = afib.submit_stored("fib-12", 12)
        assert isinstance(submitted, FutureProxy)
        assert executor.futures.get("fib-12") is stored
        return [await submitted, await stored]

    with app.app_context():
        assert asyncio.run(main()) == [55, 144]
        # The same futures serve sync callers.
        assert afib.submit(5).result(WAIT) == 5
        assert executor.futures.result("fib-12") == 144


def test_async_job_map_yields_results_for_sync_and_async_iteration(
    app: Flask, executor: Executor
) -> None:
    @executor.job
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return 2 * n

    async def collect() -> list[int]:
        return [n async for n in double.map(range(5))]

    with app.app_context():
        assert list(double.map(range(5))) == [0, 2, 4, 6, 8]
        assert asyncio.run(collect()) == [0, 2, 4, 6, 8]


def test_awaiting_an_async_job_runs_it_inline_without_the_pool(
    app: Flask, single: Executor
) -> None:
    @single.job
    async def where(n: int) -> tuple[int, asyncio.AbstractEventLoop, int]:
        await asyncio.sleep(0)
        return n, asyncio.get_running_loop(), threading.get_ident()

    async def main() -> tuple[
        tuple[int, asyncio.AbstractEventLoop, int], asyncio.AbstractEventLoop
    ]:
        # The bound turns "it went through the busy pool" into a failure, not a hang.
        result = await asyncio.wait_for(where(5), WAIT)
        return result, asyncio.get_running_loop()

    with app.app_context():
        # The only worker is busy until the end: had the call gone through the pool, it
        # could not have finished.
        release, blocker = block_worker(single)
        try:
            (n, job_loop, job_thread), caller_loop = asyncio.run(main())
        finally:
            release.set()
        blocker.result(WAIT)
    assert n == 5
    assert job_loop is caller_loop
    assert job_thread == threading.get_ident()


def test_awaiting_an_async_job_in_a_view_runs_in_the_views_loop(
    app: Flask, executor: Executor
) -> None:
    @executor.job
    async def where() -> tuple[asyncio.AbstractEventLoop, int, str]:
        return asyncio.get_running_loop(), threading.get_ident(), request.path

    @app.get("/inline")
    async def view() -> dict[str, t.Any]:
        loop, thread, path = await where()
        return {
            "same_loop": loop is asyncio.get_running_loop(),
            "same_thread": thread == threading.get_ident(),
            "path": path,
        }

    body = app.test_client().get("/inline").json
    assert body == {"same_loop": True, "same_thread": True, "path": "/inline"}


# -- map results ------------------------------------------------------------------------


def reverse_finisher(count: int) -> t.Callable[[int], int]:
    """A job for items 0..count-1 in which item i finishes only after item i + 1."""
    finished = [threading.Event() for _ in range(count + 1)]
    finished[count].set()

    def job(i: int) -> int:
        assert finished[i + 1].wait(WAIT)
        finished[i].set()
        return i * i

    return job


def as_coroutine_function(fn: t.Callable[[int], int]) -> t.Callable[[int], t.Awaitable[int]]:
    async def job(i: int) -> int:
        return fn(i)

    return job


@pytest.mark.parametrize("kind", ["sync job", "coroutine job"])
@pytest.mark.parametrize("iteration", ["for", "async for"])
def test_map_yields_in_input_order_whatever_order_jobs_finish(
    app: Flask, kind: str, iteration: str
) -> None:
    count = 6
    # Every item needs a worker of its own: item 0 waits for all the others.
    executor = make_executor(app, count)
    job: t.Callable[[int], t.Any] = reverse_finisher(count)
    if kind == "coroutine job":
        job = as_coroutine_function(job)

    async def collect() -> list[int]:
        return [r async for r in executor.map(job, range(count))]

    with app.app_context():
        try:
            if iteration == "for":
                results = list(executor.map(job, range(count)))
            else:
                results = asyncio.run(collect())
        finally:
            executor.shutdown(wait=True)
    assert results == [i * i for i in range(count)]


@pytest.mark.parametrize("iteration", ["for", "async for"])
def test_map_timeout_raises_and_cancels_the_jobs_not_started(
    app: Flask, single: Executor, iteration: str
) -> None:
    ran: list[int] = []

    async def take_one(results: t.AsyncIterator[int]) -> int:
        return await results.__anext__()

    with app.app_context():
        release, blocker = block_worker(single)
        try:
            # The only worker is busy, so no item can finish before the timeout.
            results = single.map(ran.append, range(3), timeout=0.05)
            with pytest.raises(concurrent.futures.TimeoutError):
                if iteration == "for":
                    next(results)
                else:
                    asyncio.run(take_one(results))
        finally:
            release.set()
        blocker.result(WAIT)
        single.shutdown(wait=True)
    # Every queued item was cancelled, the one waited on included.
    assert ran == []


@pytest.mark.parametrize("iteration", ["for", "async for"])
def test_map_hands_out_results_already_in_after_the_deadline(
    app: Flask, executor: Executor, iteration: str
) -> None:
    count = 3
    all_done = threading.Event()
    done: list[object] = []

    def count_done(future: object) -> None:
        # A done callback runs after the future is marked done, unlike an event set by
        # the job itself.
        done.append(future)
        if len(done) == count:
            all_done.set()

    executor.add_default_done_callback(count_done)

    async def collect(results: t.AsyncIterable[int]) -> list[int]:
        return [r async for r in results]

    with app.app_context():
        # A timeout of 0 has expired by the time iteration starts.
        results = executor.map(lambda n: n + 1, range(count), timeout=0)
        assert all_done.wait(WAIT)
        if iteration == "for":
            assert list(results) == [1, 2, 3]
        else:
            assert asyncio.run(collect(results)) == [1, 2, 3]


class Window:
    """Tracks an endless input and the jobs that ``map`` runs on it."""

    def __init__(self, buffersize: int) -> None:
        self.buffersize = buffersize
        self.pulled = 0
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.started = threading.Semaphore(0)
        self.release = [threading.Event() for _ in range(64)]

    def items(self) -> t.Iterator[int]:
        # Read by 'map' in the consuming thread, as results are taken.
        for i in itertools.count():
            self.pulled += 1
            yield i

    def job(self, i: int) -> int:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.release()
        assert self.release[i].wait(WAIT)
        with self.lock:
            self.running -= 1
        return i

    def wait_started(self, n: int) -> None:
        for _ in range(n):
            assert self.started.acquire(timeout=WAIT)


@pytest.mark.parametrize("iteration", ["for", "async for"])
def test_map_buffersize_bounds_the_jobs_in_flight_on_an_endless_input(
    app: Flask, iteration: str
) -> None:
    buffersize = 3
    # More workers than the window, so that only the window can be what limits.
    executor = make_executor(app, buffersize + 4)
    window = Window(buffersize)
    taken: list[int] = []

    def after_take(k: int, value: int) -> None:
        assert value == k
        taken.append(value)
        # The result is taken, so exactly one more item entered the window.
        assert window.pulled == k + 1 + buffersize
        window.wait_started(1)

    async def consume_async(results: t.Any, n: int) -> None:
        iterator = results.__aiter__()
        for k in range(n):
            window.release[k].set()
            after_take(k, await iterator.__anext__())

    with app.app_context():
        try:
            results = executor.map(window.job, window.items(), buffersize=buffersize)
            assert window.pulled == buffersize
            window.wait_started(buffersize)
            assert window.pulled == buffersize
            if iteration == "for":
                iterator = iter(results)
                for k in range(40):
                    # Each item is released just before it is taken, so the jobs
                    # finish in input order and the window slides one item at a time.
                    window.release[k].set()
                    after_take(k, next(iterator))
            else:
                asyncio.run(consume_async(results, 40))
            results.close()
            for event in window.release:
                event.set()
        finally:
            executor.shutdown(wait=True)
    assert taken == list(range(40))
    assert window.pulled == 40 + buffersize
    assert window.most_running == buffersize


class Doubler:
    """A callable object whose ``__call__`` is a coroutine function."""

    async def __call__(self, n: int) -> int:
        await asyncio.sleep(0)
        return 2 * n

    async def add_one(self, n: int) -> int:
        await asyncio.sleep(0)
        return n + 1


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        pytest.param(Doubler(), [0, 2, 4], id="object with async __call__"),
        pytest.param(Doubler().add_one, [1, 2, 3], id="bound async method"),
        pytest.param(functools.partial(add, 10), [10, 11, 12], id="partial of async def"),
    ],
)
def test_other_coroutine_callables_run_as_coroutine_jobs(
    app: Flask, executor: Executor, fn: t.Callable[[int], t.Awaitable[int]], expected: list[int]
) -> None:
    with app.app_context():
        assert executor.submit(fn, 1).result(WAIT) == expected[1]
        assert list(executor.map(fn, range(3))) == expected


def test_coroutine_function_map_in_chunks_on_a_process_pool(app: Flask) -> None:
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": "fork"}
    executor = Executor(app)
    with app.app_context():
        try:
            # A partial of a module-level function, so that the worker can unpickle it.
            assert list(executor.map(functools.partial(add, 10), range(4), chunksize=2)) == [
                10,
                11,
                12,
                13,
            ]
        finally:
            executor.shutdown(wait=True)
