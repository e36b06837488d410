"""``executor.map``: contexts copied per item, order, timeouts, errors, buffersize, chunksize.

Issue 2, behaviour item 6. Flask-Executor 1.0 wrapped the function *once* with
``copy_current_request_context`` and handed it to the pool's ``map``: every item pushed
the same request context object, from several threads at once. Its issues #44 and #53
("Token was created in a different Context") came from that; the first test keeps the
failure reproduced on the Flask installed here.
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import itertools
import threading
import typing as t

import pytest
from flask import copy_current_request_context
from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor
from flask_executor import MapResult

FLASK_VERSION = tuple(int(part) for part in importlib.metadata.version("flask").split(".")[:2])

ITEMS = 40
WORKERS = 4


class Interleaving:
    """Makes items 0 and 1 hold their contexts at the same time, and leave in a set order.

    Item 0 enters, then item 1 enters (so item 1 pushed its context last); item 0 leaves
    first, while item 1 is still inside; item 1 leaves only after item 0 is completely
    done. With one request context object shared by both, item 0 then pops the token
    item 1 pushed. Events, not timing, fix the order, so the outcome is the same each run.
    """

    def __init__(self) -> None:
        self.zero_inside = threading.Event()
        self.one_inside = threading.Event()
        self.zero_left = threading.Event()

    def before_one_starts(self, n: int) -> None:
        # Called before item n's context is pushed: item 1 pushes only after item 0 did.
        if n == 1:
            assert self.zero_inside.wait(10)

    def inside(self, n: int) -> None:
        if n == 0:
            self.zero_inside.set()
            assert self.one_inside.wait(10)
        elif n == 1:
            self.one_inside.set()
            # Item 0 is popped (and its done callback has run) before item 1 leaves.
            assert self.zero_left.wait(10)


def work(n: int) -> int:
    # Items of varying length, as in the reports of the bug.
    return sum(range((n % 7) * 2000))


def job_body(order: Interleaving, n: int) -> tuple[int, str, str | None, str, int]:
    order.inside(n)
    return n, request.path, request.args.get("q"), g.user, work(n)


def expected_results(path: str = "/batch", q: str = "1") -> list[tuple[int, str, str, str, int]]:
    return [(n, path, q, "ada", work(n)) for n in range(ITEMS)]


@pytest.mark.skipif(
    FLASK_VERSION != (3, 1),
    reason="Reproduces 1.0's failure with Flask 3.1's request context; other versions differ.",
)
def test_reproduce_1_0_shared_request_context_failure(app: Flask) -> None:
    order = Interleaving()

    with app.test_request_context("/batch?q=1"):
        g.user = "ada"

        # What 1.0's map did: wrap once, share the wrapped function between threads.
        wrapped = copy_current_request_context(lambda n: job_body(order, n))

        def item(n: int) -> object:
            order.before_one_starts(n)
            try:
                return wrapped(n)
            finally:
                if n == 0:
                    order.zero_left.set()

        pool = concurrent.futures.ThreadPoolExecutor(WORKERS)
        try:
            with pytest.raises(ValueError, match="was created in a different Context"):
                list(pool.map(item, range(ITEMS)))
        finally:
            pool.shutdown(wait=True)


def test_map_copies_the_context_per_item(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = WORKERS
    executor = Executor(app)
    order = Interleaving()

    def after_item(future: concurrent.futures.Future[t.Any]) -> None:
        # Runs once item 0's job, app context teardown included, is over.
        if future.result()[0] == 0:
            order.zero_left.set()

    executor.add_default_done_callback(after_item)

    def item(n: int) -> tuple[int, str, str | None, str, int]:
        order.before_one_starts(n)
        return job_body(order, n)

    try:
        with app.test_request_context("/batch?q=1"):
            g.user = "ada"
            results = list(executor.map(item, range(ITEMS), timeout=30))
    finally:
        executor.shutdown(wait=True)
    assert results == expected_results()


def test_map_in_a_view_many_requests(app: Flask) -> None:
    # The reported setting: map inside views, items of varying length, threads reused.
    app.config["EXECUTOR_MAX_WORKERS"] = WORKERS
    executor = Executor(app)

    @app.route("/batch/<name>")
    def batch(name: str) -> dict[str, t.Any]:
        g.user = name

        def item(n: int) -> tuple[int, str, str, int]:
            return n, request.view_args["name"], g.user, work(n)  # type: ignore[index]

        return {"results": list(executor.map(item, range(ITEMS), timeout=30))}

    client = app.test_client()
    try:
        for name in ["ada", "grace", "edsger", "barbara", "alan"]:
            assert client.get(f"/batch/{name}").json == {
                "results": [[n, name, name, work(n)] for n in range(ITEMS)]
            }
    finally:
        executor.shutdown(wait=True)


def test_each_item_has_its_own_g(app: Flask, executor: Executor) -> None:
    def item(n: int) -> tuple[str, int | None]:
        previous = g.get("n")
        g.n = n
        return g.user, previous

    with app.test_request_context("/"):
        g.user = "ada"
        assert list(executor.map(item, range(30))) == [("ada", None)] * 30
        assert "n" not in g


# -- Results -------------------------------------------------------------------------------


def test_results_are_in_input_order(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 5
    executor = Executor(app)
    # Each item waits for the next one to finish: they finish in reverse order.
    finished = [threading.Event() for _ in range(5)]
    completion: list[int] = []

    def item(n: int) -> int:
        if n < 4:
            assert finished[n + 1].wait(10)
        completion.append(n)
        finished[n].set()
        return n * 10

    try:
        results = executor.map(item, range(5))
        assert isinstance(results, MapResult)
        assert list(results) == [0, 10, 20, 30, 40]
        assert completion == [4, 3, 2, 1, 0]
    finally:
        executor.shutdown(wait=True)


def test_several_iterables_stop_at_the_shortest(executor: Executor) -> None:
    assert list(executor.map(pow, [2, 3, 4], [5, 6])) == [32, 729]
    assert list(executor.map(lambda a, b, c: a + b + c, "ab", "cd", "ef")) == ["ace", "bdf"]
    assert list(executor.map(pow, [], [1])) == []


def test_jobs_start_when_map_is_called(app: Flask, executor: Executor) -> None:
    # As concurrent.futures does: the results need not be read for the jobs to run.
    ran: list[int] = []
    lock = threading.Lock()

    def item(n: int) -> None:
        with lock:
            ran.append(n)

    executor.map(item, range(10))
    executor.shutdown(wait=True)
    assert sorted(ran) == list(range(10))


def test_exception_is_raised_at_its_position(executor: Executor) -> None:
    def item(n: int) -> int:
        if n == 3:
            raise KeyError(n)
        return n

    results = iter(executor.map(item, range(6)))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(results)
    # Iteration ends after the error, as with concurrent.futures.
    assert list(results) == []


def test_timeout_raises_and_cancels_the_rest(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def item(n: int) -> int:
        if n == 0:
            started.set()
            release.wait(10)
        ran.append(n)
        return n

    try:
        results = executor.map(item, range(6), timeout=0.05)
        assert started.wait(10)
        with pytest.raises(concurrent.futures.TimeoutError):
            list(results)
    finally:
        release.set()
        executor.shutdown(wait=True)
    # The items still queued when the timeout struck were cancelled, not run.
    assert ran == [0]


def test_timeout_not_reached(executor: Executor) -> None:
    assert list(executor.map(abs, range(-3, 3), timeout=30)) == [3, 2, 1, 0, 1, 2]


# -- buffersize ----------------------------------------------------------------------------


@pytest.mark.parametrize("buffersize", [1, 3, 8])
def test_buffersize_bounds_jobs_in_flight(app: Flask, buffersize: int) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 16
    executor = Executor(app)
    lock = threading.Lock()
    running = 0
    most_running = 0
    pulled = 0
    # The first 'buffersize' jobs meet: that many really are running at once.
    first_ones = threading.Barrier(buffersize, timeout=10)

    def source() -> t.Iterator[int]:
        nonlocal pulled
        for n in itertools.count():
            pulled += 1
            yield n

    def item(n: int) -> int:
        nonlocal running, most_running
        with lock:
            running += 1
            most_running = max(most_running, running)
        try:
            if n < buffersize:
                first_ones.wait()
            return work(n)
        finally:
            with lock:
                running -= 1

    try:
        # An endless input: only the bound keeps this from submitting for ever.
        results = executor.map(item, source(), buffersize=buffersize, timeout=30)
        taken = []
        for consumed, value in enumerate(results, start=1):
            taken.append(value)
            assert pulled <= consumed + buffersize
            if consumed == 60:
                break
        results.close()
    finally:
        executor.shutdown(wait=True)
    assert taken == [work(n) for n in range(60)]
    assert most_running == buffersize


def test_buffersize_with_finite_input(executor: Executor) -> None:
    assert list(executor.map(abs, range(-10, 10), buffersize=4)) == [abs(n) for n in range(-10, 10)]


# -- chunksize -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 2, 7, 100])
def test_chunksize_is_ignored_by_thread_pools(
    app: Flask, executor: Executor, chunksize: int
) -> None:
    # Each item still runs as its own job, with the request of the caller.
    with app.test_request_context("/chunks"):
        results = list(
            executor.map(
                lambda n: (n, request.path, current_app.name), range(20), chunksize=chunksize
            )
        )
    assert results == [(n, "/chunks", app.name) for n in range(20)]


def test_chunksize_with_several_iterables_and_timeout(executor: Executor) -> None:
    assert list(executor.map(pow, range(10), [2] * 10, chunksize=3, timeout=30)) == [
        n**2 for n in range(10)
    ]


def _input_that_fails_after(n: int) -> t.Iterator[int]:
    yield from range(n)
    raise KeyError("the input ran dry")


@pytest.mark.parametrize("buffersize", [1, 2, 4])
def test_an_input_error_comes_after_every_result_before_it(
    executor: Executor, buffersize: int
) -> None:
    # The window is topped up when a result is taken; the input's error there used to
    # drop the result in hand and cancel the jobs still in the window.
    results = executor.map(
        pow, _input_that_fails_after(4), itertools.repeat(2), buffersize=buffersize
    )
    taken: list[int] = []
    with pytest.raises(KeyError, match="the input ran dry"):
        for value in results:
            taken.append(value)
    assert taken == [0, 1, 4, 9]
    assert list(results) == []


@pytest.mark.parametrize("buffersize", [1, 2, 4])
def test_an_input_error_comes_after_every_result_before_it_async(
    executor: Executor, buffersize: int
) -> None:
    import asyncio

    async def take_all() -> list[int]:
        taken: list[int] = []
        results = executor.map(
            pow, _input_that_fails_after(4), itertools.repeat(2), buffersize=buffersize
        )
        with pytest.raises(KeyError, match="the input ran dry"):
            async for value in results:
                taken.append(value)
        return taken

    assert asyncio.run(take_all()) == [0, 1, 4, 9]
