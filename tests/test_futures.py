"""Futures: real ``concurrent.futures.Future`` objects for every pool, callbacks, the collection.

Issue 2, behaviour items 4 (real futures) and 8 (``executor.futures``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import sys
import threading
import typing as t
import weakref

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import has_request_context
from flask import request
from flask_executor import Executor
from flask_executor import FutureCollection
from flask_executor import FutureProxy

# -- Pools ---------------------------------------------------------------------------------


class SubclassedThreadPool(concurrent.futures.ThreadPoolExecutor):
    """A user's own thread pool class."""


class Handle:
    """A pool's own future-like object that is not a concurrent.futures.Future."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[t.Callable[[Handle], object]] = []
        self._done = False
        self._value: object = None
        self._error: BaseException | None = None

    def add_done_callback(self, fn: t.Callable[[Handle], object]) -> None:
        with self._lock:
            if not self._done:
                self._callbacks.append(fn)
                return
        fn(self)

    def finish(self, value: object, error: BaseException | None) -> None:
        with self._lock:
            self._value, self._error, self._done = value, error, True
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return not self._done

    def cancel(self) -> bool:
        return False

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._error

    def result(self, timeout: float | None = None) -> object:
        if self._error is not None:
            raise self._error
        return self._value


class HandlePool(concurrent.futures.Executor):
    """A custom pool whose submit returns a Handle: one new thread per job."""

    def __init__(self, max_workers: int | None = None) -> None:
        self._threads: list[threading.Thread] = []

    def submit(self, fn: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        handle = Handle()
        # The job waits until its handle is returned, as a queued job would.
        returned = threading.Event()

        def run() -> None:
            returned.wait(10)
            try:
                value = fn(*args, **kwargs)
            except BaseException as e:
                handle.finish(None, e)
            else:
                handle.finish(value, None)

        thread = threading.Thread(target=run)
        self._threads.append(thread)
        thread.start()
        returned.set()
        return handle

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if wait:
            for thread in self._threads:
                thread.join(10)


class FinishedBeforeReturnPool(concurrent.futures.ProcessPoolExecutor):
    """A real process pool whose submit returns only once the job is done.

    This forces, every time, what a loaded machine does now and then: the submitting
    thread is descheduled between the pool taking the job and handing back its future,
    and the worker finishes meanwhile.
    """

    def submit(self, fn: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        future = super().submit(fn, *args, **kwargs)
        concurrent.futures.wait([future], timeout=30)
        return future


POOLS = [
    pytest.param({}, id="thread"),
    pytest.param({"EXECUTOR_TYPE": "process", "EXECUTOR_MAX_WORKERS": 2}, id="process"),
    pytest.param(
        {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": SubclassedThreadPool},
        id="custom-thread-pool",
    ),
    # Imported, not monkey-patched: gevent's pool runs real threads, and its submit
    # returns its own future-like object, which is not a concurrent.futures.Future.
    pytest.param(
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": "gevent.threadpool:ThreadPoolExecutor",
            "EXECUTOR_MAX_WORKERS": 4,
        },
        id="gevent-threadpool",
    ),
    pytest.param(
        {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": HandlePool}, id="custom-non-future"
    ),
]


def executor_on(app: Flask, config: dict[str, t.Any]) -> t.Iterator[Executor]:
    """An executor with ``config`` on ``app``, shut down after the test."""
    app.config.update(config)
    executor = Executor(app)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture(params=POOLS)
def any_executor(request: pytest.FixtureRequest, app: Flask) -> t.Iterator[Executor]:
    yield from executor_on(app, request.param)


# Module-level, so that process pools (and pools not known to run threads here) can
# pickle them.
def square(x: int) -> int:
    return x * x


def fail(message: str) -> None:
    raise LookupError(message)


def get_ident() -> int:
    return threading.get_ident()


# -- Real futures --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_submit_returns_a_real_future(any_executor: Executor) -> None:
    future = any_executor.submit(square, 7)
    assert isinstance(future, concurrent.futures.Future)
    assert isinstance(future, FutureProxy)
    assert future.result(timeout=30) == 49
    assert future.done() and not future.running() and not future.cancelled()
    assert future.exception() is None


@pytest.mark.timeout(60)
def test_failure_is_the_jobs_exception(any_executor: Executor) -> None:
    future = any_executor.submit(fail, "gone")
    with pytest.raises(LookupError, match="gone"):
        future.result(timeout=30)
    assert isinstance(future.exception(), LookupError)


@pytest.mark.timeout(60)
def test_stored_and_job_futures_are_real(any_executor: Executor) -> None:
    stored = any_executor.submit_stored("key", square, 3)
    assert isinstance(stored, FutureProxy)
    assert any_executor.futures.get("key") is stored
    assert stored.result(timeout=30) == 9


@pytest.mark.timeout(60)
def test_wait_and_as_completed_accept_them(any_executor: Executor) -> None:
    futures = [any_executor.submit(square, i) for i in range(10)]
    done, not_done = concurrent.futures.wait(futures, timeout=30)
    assert not_done == set()
    assert done == set(futures)
    completed = list(concurrent.futures.as_completed(futures, timeout=30))
    assert sorted(f.result() for f in completed) == [i * i for i in range(10)]
    first = concurrent.futures.wait(
        [any_executor.submit(square, 2)], timeout=30, return_when=concurrent.futures.FIRST_COMPLETED
    )
    assert [f.result() for f in first.done] == [4]


@pytest.mark.timeout(60)
def test_asyncio_wrap_future_accepts_them(any_executor: Executor) -> None:
    async def main() -> list[int]:
        futures = [asyncio.wrap_future(any_executor.submit(square, i)) for i in range(5)]
        return list(await asyncio.wait_for(asyncio.gather(*futures), 30))

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]

    async def failing() -> None:
        await asyncio.wrap_future(any_executor.submit(fail, "async"))

    with pytest.raises(LookupError, match="async"):
        asyncio.run(failing())


def test_custom_in_process_pool_runs_a_closure(app: Flask) -> None:
    app.config.update(EXECUTOR_TYPE="custom", EXECUTOR_POOL_CLASS=HandlePool)
    executor = Executor(app)
    local = "closure"
    try:
        assert executor.submit(lambda: local).result(10) == "closure"
    finally:
        executor.shutdown(wait=True)


# -- Callbacks run in the worker -----------------------------------------------------------


@pytest.mark.timeout(120)
def test_default_callbacks_never_run_in_the_submitting_thread(any_executor: Executor) -> None:
    # In 1.0, the callbacks were added after the pool had the job; a job that was
    # already done by then ran them in the submitting thread. Instant jobs, many times,
    # give that race every chance.
    seen: list[int] = []
    lock = threading.Lock()

    def record(future: concurrent.futures.Future[t.Any]) -> None:
        with lock:
            seen.append(threading.get_ident())

    any_executor.add_default_done_callback(record)
    jobs = 300
    futures = [any_executor.submit(int) for _ in range(jobs)]
    futures += [any_executor.submit_stored(i, int) for i in range(20)]
    mapped = list(any_executor.map(abs, range(50)))
    concurrent.futures.wait(futures, timeout=60)
    # shutdown(wait=True) returns only when the workers, callbacks included, are done.
    any_executor.shutdown(wait=True)
    assert mapped == list(range(50))
    assert len(seen) == jobs + 20 + 50
    assert threading.get_ident() not in seen


@pytest.mark.timeout(60)
def test_default_callbacks_not_in_submitting_thread_when_pool_future_is_done(
    app: Flask,
) -> None:
    app.config.update(
        EXECUTOR_TYPE="custom", EXECUTOR_POOL_CLASS=FinishedBeforeReturnPool, EXECUTOR_MAX_WORKERS=1
    )
    executor = Executor(app)
    seen: list[int] = []
    executor.add_default_done_callback(lambda future: seen.append(threading.get_ident()))
    try:
        assert executor.submit(square, 3).result(30) == 9
    finally:
        executor.shutdown(wait=True)
    assert seen and threading.get_ident() not in seen


def test_default_callbacks_run_in_the_jobs_thread(app: Flask, executor: Executor) -> None:
    callback_threads: list[int] = []
    executor.add_default_done_callback(lambda future: callback_threads.append(get_ident()))
    futures = [executor.submit(get_ident) for _ in range(100)]
    concurrent.futures.wait(futures, timeout=30)
    executor.shutdown(wait=True)
    # A thread job's future is set by the worker that ran it, which then runs its callbacks.
    assert sorted(f.result() for f in futures) == sorted(callback_threads)


# -- Callbacks run with the job's contexts -------------------------------------------------


def _what_is_visible() -> tuple[str, str, str | None, str]:
    return current_app.name, request.path, request.args.get("q"), g.user


def test_callbacks_see_the_jobs_contexts(app: Flask, executor: Executor) -> None:
    seen: dict[str, tuple[str, str, str | None, str]] = {}
    lock = threading.Lock()

    def recorder(name: str) -> t.Callable[[concurrent.futures.Future[t.Any]], None]:
        def record(future: concurrent.futures.Future[t.Any]) -> None:
            with lock:
                seen[name] = _what_is_visible()

        return record

    executor.add_default_done_callback(recorder("default"))
    release = threading.Event()
    with app.test_request_context("/report?q=7"):
        g.user = "ada"
        future = executor.submit(release.wait, 10)
        future.add_done_callback(recorder("added-before-done"))
    # Outside any context now; the callbacks still see the request the job came from.
    release.set()
    assert future.result(10) is True
    executor.shutdown(wait=True)
    expected = (app.name, "/report", "7", "ada")
    assert seen == {"default": expected, "added-before-done": expected}
    # Once the job and its callbacks are done, the future has let go of the request and
    # 'g': a callback added now runs with the contexts of this thread, which has none of
    # them, in an app context of the job's app (tests/test_lifetimes.py has the rest).
    late: list[tuple[str, bool]] = []
    future.add_done_callback(lambda _: late.append((current_app.name, has_request_context())))
    assert late == [(app.name, False)]


@pytest.mark.timeout(60)
def test_callbacks_see_the_jobs_contexts_with_every_pool(
    app: Flask, any_executor: Executor
) -> None:
    seen: list[tuple[str, str, str | None, str]] = []
    lock = threading.Lock()

    def record(future: concurrent.futures.Future[t.Any]) -> None:
        with lock:
            seen.append(_what_is_visible())

    any_executor.add_default_done_callback(record)
    with app.test_request_context("/pool?q=p"):
        g.user = "grace"
        futures = [any_executor.submit(square, n) for n in range(5)]
        futures.append(any_executor.submit(fail, "failed jobs too"))
        futures[0].add_done_callback(record)
    concurrent.futures.wait(futures, timeout=30)
    any_executor.shutdown(wait=True)
    assert seen == [(app.name, "/pool", "p", "grace")] * 7


def test_callbacks_of_concurrent_requests_do_not_mix(app: Flask, executor: Executor) -> None:
    results: dict[int, tuple[str, str | None, str]] = {}
    lock = threading.Lock()

    def record(future: concurrent.futures.Future[t.Any]) -> None:
        with lock:
            results[future.result()] = (request.path, request.args.get("q"), g.user)

    executor.add_default_done_callback(record)

    @app.route("/n/<int:n>")
    def view(n: int) -> str:
        g.user = f"user-{n}"
        executor.submit(int, n)
        return "ok"

    client = app.test_client()
    for n in range(50):
        assert client.get(f"/n/{n}?q={n}").text == "ok"
    executor.shutdown(wait=True)
    assert results == {n: (f"/n/{n}", str(n), f"user-{n}") for n in range(50)}


# -- FutureCollection ----------------------------------------------------------------------


def finished(value: object = None) -> FutureProxy[t.Any]:
    future: FutureProxy[t.Any] = FutureProxy()
    future.set_running_or_notify_cancel()
    future.set_result(value)
    return future


def pending() -> FutureProxy[t.Any]:
    return FutureProxy()


def running() -> FutureProxy[t.Any]:
    future: FutureProxy[t.Any] = FutureProxy()
    future.set_running_or_notify_cancel()
    return future


def test_collection_add_get_pop() -> None:
    futures = FutureCollection()
    one, two = finished(1), pending()
    futures.add("one", one)
    futures.add(("tuple", 2), two)
    assert futures.get("one") is one
    assert futures.get(("tuple", 2)) is two
    assert futures.get("missing") is None
    assert futures.pop("one") is one
    assert futures.pop("one") is None
    assert futures.get("one") is None
    assert futures.pop("missing") is None
    assert len(futures) == 1


def test_collection_containment() -> None:
    futures = FutureCollection()
    stored, other = pending(), pending()
    futures.add("key", stored)
    assert "key" in futures
    assert "other" not in futures
    # 1.0 compatibility: a future can be looked up too.
    assert stored in futures
    assert other not in futures
    # An unhashable value cannot be a key, and is simply not in the collection.
    assert ["key"] not in futures
    futures.pop("key")
    assert "key" not in futures
    assert stored not in futures


def test_collection_len_iteration_keys_items() -> None:
    futures = FutureCollection()
    stored = {key: finished(key) for key in ["c", "a", "b"]}
    for key, future in stored.items():
        futures.add(key, future)
    # Oldest first: the order they were stored in.
    assert len(futures) == 3
    assert list(futures) == ["c", "a", "b"]
    assert futures.keys() == ["c", "a", "b"]
    assert futures.items() == list(stored.items())
    # Iteration is over a snapshot: popping while iterating is allowed.
    for key in futures:
        futures.pop(key)
    assert len(futures) == 0
    assert repr(futures) == "<FutureCollection 0 stored, max_length=50>"


def test_collection_duplicate_key() -> None:
    futures = FutureCollection()
    first = pending()
    futures.add("report", first)
    with pytest.raises(ValueError) as info:
        futures.add("report", pending())
    assert str(info.value) == (
        "A future is already stored under the key 'report'. Pop it first, or choose another key."
    )
    assert futures.get("report") is first
    # Once popped, the key is free again.
    futures.pop("report")
    futures.add("report", finished())


def test_collection_proxies_future_methods_by_key() -> None:
    futures = FutureCollection()
    futures.add("done", finished(42))
    futures.add("failed", FutureProxy())
    failed = futures.get("failed")
    assert failed is not None
    failed.set_running_or_notify_cancel()
    failed.set_exception(KeyError("k"))
    futures.add("running", running())
    futures.add("pending", pending())

    assert futures.done("done") is True
    assert futures.done("running") is False
    assert futures.running("running") is True
    assert futures.running("done") is False
    assert futures.result("done") == 42
    assert futures.result("done", timeout=1) == 42
    with pytest.raises(concurrent.futures.TimeoutError):
        futures.result("running", timeout=0)
    with pytest.raises(KeyError):
        futures.result("failed", timeout=1)
    assert isinstance(futures.exception("failed"), KeyError)
    assert futures.exception("done") is None
    assert futures.cancelled("pending") is False
    assert futures._state("done") == "FINISHED"
    assert futures._state("running") == "RUNNING"
    assert futures._state("pending") == "PENDING"
    # cancel works on a pending future, not on a running one.
    assert futures.cancel("running") is False
    assert futures.cancel("pending") is True
    assert futures.cancelled("pending") is True
    assert futures._state("pending") == "CANCELLED"

    for method in ("done", "running", "result", "cancel", "cancelled", "exception", "_state"):
        assert getattr(futures, method)("missing") is None, method
    assert futures.result("missing", timeout=1) is None


def test_collection_unknown_attribute() -> None:
    futures = FutureCollection()
    with pytest.raises(AttributeError) as info:
        futures.finish  # noqa: B018
    assert str(info.value) == "'FutureCollection' object has no attribute 'finish'"


def test_collection_via_executor(app: Flask, executor: Executor) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "slow"

    executor.submit_stored("slow", slow)
    assert started.wait(10)
    assert executor.futures._state("slow") == "RUNNING"
    assert executor.futures.running("slow") is True
    assert executor.futures.done("slow") is False
    release.set()
    assert executor.futures.result("slow", timeout=10) == "slow"
    assert executor.futures._state("slow") == "FINISHED"
    assert isinstance(executor.futures, FutureCollection)


# -- Eviction ------------------------------------------------------------------------------


def test_no_eviction_up_to_the_bound() -> None:
    futures = FutureCollection(max_length=3)
    for key in "abc":
        futures.add(key, finished())
    assert futures.keys() == ["a", "b", "c"]


def test_finished_futures_are_evicted_before_unfinished_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    futures = FutureCollection(max_length=4)
    a, b, c, d = pending(), pending(), pending(), pending()
    for key, future in zip("abcd", [a, b, c, d]):
        futures.add(key, future)
    # c finishes, then a: the one that finished first has waited longest to be read.
    c.set_result("c")
    a.set_result("a")
    with caplog.at_level(logging.WARNING, logger="flask_executor"):
        futures.add("e", pending())
        assert futures.keys() == ["a", "b", "d", "e"]
        futures.add("f", pending())
        assert futures.keys() == ["b", "d", "e", "f"]
    # Unfinished futures were stored throughout; none was evicted, nothing was logged.
    assert caplog.records == []


def test_cancelled_and_failed_futures_count_as_finished() -> None:
    futures = FutureCollection(max_length=3)
    cancelled, failed = pending(), running()
    futures.add("pending", pending())
    futures.add("cancelled", cancelled)
    futures.add("failed", failed)
    assert cancelled.cancel()
    failed.set_exception(ValueError("failed"))
    futures.add("next", pending())
    assert futures.keys() == ["pending", "failed", "next"]
    futures.add("last", pending())
    assert futures.keys() == ["pending", "next", "last"]


def test_unfinished_future_is_evicted_only_when_all_are_unfinished(
    caplog: pytest.LogCaptureFixture,
) -> None:
    futures = FutureCollection(max_length=2)
    old, newer = pending(), running()
    futures.add("old", old)
    futures.add("newer", newer)
    with caplog.at_level(logging.WARNING, logger="flask_executor"):
        futures.add("newest", pending())
    assert futures.keys() == ["newer", "newest"]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "Evicting the unfinished future stored under 'old': more than 2 futures are stored"
        " and none has finished. Its result can no longer be fetched by key; raise"
        " EXECUTOR_FUTURES_MAX_LENGTH or pop futures once read. (Further evictions are"
        " counted, and reported at most once a minute.)"
    )
    # The evicted job is not cancelled: its future still works.
    assert not old.cancelled()
    old.set_result("still here")
    assert old.result() == "still here"


def test_popped_future_is_not_evicted_later() -> None:
    futures = FutureCollection(max_length=2)
    a = pending()
    futures.add("a", a)
    futures.pop("a")
    a.set_result(1)  # finishing after the pop must not queue 'a' for eviction
    futures.add("b", pending())
    futures.add("c", pending())
    futures.add("a", finished())
    # 'a' (stored again, finished) goes first; 'b' and 'c' are unfinished.
    assert futures.keys() == ["b", "c"]


def test_unbounded_collection_keeps_everything() -> None:
    futures = FutureCollection(max_length=None)
    for key in range(500):
        futures.add(key, finished())
    assert len(futures) == 500


def test_one_future_under_two_keys() -> None:
    futures = FutureCollection()
    future = finished("shared")
    futures.add("first", future)
    futures.add("second", future)
    assert futures.pop("first") is future
    assert future in futures
    assert futures.pop("second") is future
    assert future not in futures


# -- Thread safety -------------------------------------------------------------------------

THREADS = 32
PER_THREAD = 200


def _hammer(work: t.Callable[[int], None]) -> list[BaseException]:
    # Every thread starts at the same moment, to make the operations overlap.
    start = threading.Barrier(THREADS, timeout=30)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.timeout(60)
def test_collection_add_and_pop_from_32_threads() -> None:
    futures = FutureCollection(max_length=None)
    mine: dict[tuple[int, int], FutureProxy[t.Any]] = {}
    popped_wrong: list[tuple[int, int]] = []

    def work(n: int) -> None:
        local = {(n, i): FutureProxy() for i in range(PER_THREAD)}
        mine.update(local)
        for i, (key, future) in enumerate(local.items()):
            futures.add(key, future)
            if i % 3 == 0:
                # Finishing runs the collection's done callback, under its lock.
                future.set_running_or_notify_cancel()
                future.set_result(i)
            assert key in futures and future in futures
            list(futures)  # iterate while others add and pop
        for i, (key, future) in enumerate(local.items()):
            if i % 2 == 0 and futures.pop(key) is not future:
                popped_wrong.append(key)

    assert _hammer(work) == []
    assert popped_wrong == []
    # Nothing lost, nothing extra: exactly the odd keys of every thread remain.
    expected = {(n, i) for n in range(THREADS) for i in range(PER_THREAD) if i % 2}
    assert set(futures.keys()) == expected
    assert len(futures) == len(expected)
    assert all(futures.get(key) is mine[key] for key in expected)


@pytest.mark.timeout(60)
def test_bounded_collection_from_32_threads(caplog: pytest.LogCaptureFixture) -> None:
    futures = FutureCollection(max_length=64)

    def work(n: int) -> None:
        for i in range(PER_THREAD):
            futures.add((n, i), finished(i))
            futures.pop((n, i - 1))

    with caplog.at_level(logging.WARNING, logger="flask_executor"):
        assert _hammer(work) == []
    # Every stored future was finished, so no unfinished one was ever evicted.
    assert caplog.records == []
    assert len(futures) == len(futures.keys()) <= 64
    assert all(futures.done(key) for key in futures)


@pytest.mark.timeout(60)
def test_submit_stored_from_32_threads(app: Flask) -> None:
    app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = None
    executor = Executor(app)
    results: dict[tuple[int, int], object] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        keys = [(n, i) for i in range(20)]
        for key in keys:
            executor.submit_stored(key, square, key[0] * 100 + key[1])
        for key in keys:
            value = executor.futures.result(key, timeout=30)
            assert executor.futures.pop(key) is not None
            with lock:
                results[key] = value

    try:
        assert _hammer(work) == []
    finally:
        executor.shutdown(wait=True)
    assert results == {(n, i): (n * 100 + i) ** 2 for n in range(THREADS) for i in range(20)}
    assert len(executor.futures) == 0


# -- What a finished future keeps ------------------------------------------------------------


class Payload:
    """A job's argument, whose lifetime the test watches through a weak reference."""


def take_payload(payload: Payload, *, also: Payload) -> bool:
    return isinstance(payload, Payload) and isinstance(also, Payload)


@pytest.mark.timeout(60)
def test_finished_future_does_not_keep_the_jobs_arguments(any_executor: Executor) -> None:
    # Stored futures can live for a long time after their job; a large argument (an
    # upload, a DataFrame) must not live as long.
    payload, also = Payload(), Payload()
    alive = [weakref.ref(payload), weakref.ref(also)]
    future = any_executor.submit_stored("kept", take_payload, payload, also=also)
    del payload, also
    assert future.result(timeout=30) is True
    gc.collect()
    assert [ref() for ref in alive] == [None, None]
    assert any_executor.futures.get("kept") is future


IN_PROCESS_POOLS = [param for param in POOLS if param.id != "process"]


@pytest.fixture(params=IN_PROCESS_POOLS)
def in_process_executor(request: pytest.FixtureRequest, app: Flask) -> t.Iterator[Executor]:
    yield from executor_on(app, request.param)


def take_payload_when(go: threading.Event, payload: Payload) -> bool:
    return go.wait(30) and isinstance(payload, Payload)


@pytest.mark.timeout(60)
def test_arguments_are_free_by_the_time_the_future_is_set(
    in_process_executor: Executor,
) -> None:
    # Checked from a done callback, which runs as the future is set, in the worker,
    # before the worker is done with the job: the job's arguments must be gone by then,
    # not merely at some point after.
    payload = Payload()
    alive = weakref.ref(payload)
    free_when_set: list[bool] = []
    checked = threading.Event()

    def check(_: concurrent.futures.Future[t.Any]) -> None:
        free_when_set.append(alive() is None)
        checked.set()

    in_process_executor.add_default_done_callback(check)
    go = threading.Event()
    future = in_process_executor.submit(take_payload_when, go, payload)
    del payload  # the job holds the only references now
    go.set()
    assert future.result(timeout=30) is True
    assert checked.wait(30)
    assert free_when_set == [True]


@pytest.fixture
def one_busy_worker(app: Flask) -> t.Iterator[tuple[Executor, threading.Event]]:
    """An executor whose only worker is busy until the test sets the event it is given."""
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    started, release = threading.Event(), threading.Event()
    running = executor.submit(lambda: started.set() or release.wait(30))
    assert started.wait(10)
    try:
        yield executor, release
    finally:
        release.set()
        running.result(timeout=10)
        executor.shutdown(wait=True)


CANCELLING = ["future.cancel()", "shutdown(cancel_futures=True)"]


def cancel_queued(executor: Executor, queued: FutureProxy[t.Any], how: str) -> None:
    """Cancel a job that waits in the queue, one of the two ways in CANCELLING."""
    if how == "future.cancel()":
        assert queued.cancel()
    else:
        executor.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", CANCELLING)
def test_cancelled_job_keeps_none_of_its_arguments(
    one_busy_worker: tuple[Executor, threading.Event], how: str
) -> None:
    executor, _ = one_busy_worker
    payload = Payload()
    alive = weakref.ref(payload)
    queued = executor.submit(take_payload, payload, also=payload)
    del payload
    cancel_queued(executor, queued, how)
    gc.collect()
    assert alive() is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", CANCELLING)
def test_wait_and_as_completed_see_a_cancelled_job_at_once(
    one_busy_worker: tuple[Executor, threading.Event], how: str
) -> None:
    # The only worker stays busy: nothing but the cancellation can make these return.
    executor, _ = one_busy_worker
    queued = executor.submit(square, 2)
    cancel_queued(executor, queued, how)
    done, not_done = concurrent.futures.wait([queued], timeout=10)
    assert (done, not_done) == ({queued}, set())
    assert list(concurrent.futures.as_completed([queued], timeout=10)) == [queued]
    assert queued.cancelled()


@pytest.mark.timeout(60)
def test_a_future_settled_by_hand_does_not_stop_the_worker(
    one_busy_worker: tuple[Executor, threading.Event],
) -> None:
    # Setting a queued job's result by hand is a misuse, but the pool's only worker
    # must survive it and run the jobs after it. (A CPython work item's future in the
    # same state ends the worker thread, and the pool never replaces it.)
    executor, release = one_busy_worker
    payload = Payload()
    alive = weakref.ref(payload)
    settled_by_hand = executor.submit(take_payload, payload, also=payload)
    del payload
    settled_by_hand.set_result(False)
    after = executor.submit(square, 4)
    release.set()
    assert after.result(timeout=10) == 16
    assert settled_by_hand.result(timeout=0) is False
    # The worker took the job off its queue before 'after', and dropped its call.
    gc.collect()
    assert alive() is None


@pytest.mark.timeout(60)
def test_a_future_settled_by_hand_while_its_job_runs_does_not_stop_the_worker(
    app: Flask,
) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    started, release = threading.Event(), threading.Event()
    try:
        running = executor.submit(lambda: started.set() or release.wait(30))
        assert started.wait(10)
        running.set_result("by hand")
        release.set()
        # The job's own outcome has nowhere to go; the worker goes on to the next job.
        assert executor.submit(square, 5).result(timeout=10) == 25
        assert running.result(timeout=0) == "by hand"
    finally:
        release.set()
        executor.shutdown(wait=True)


def test_a_burst_of_evictions_logs_one_warning_with_the_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100,000 stored jobs that outran the bound once logged 86,037 warnings.
    clock = [1000.0]
    monkeypatch.setattr("flask_executor.futures._now", lambda: clock[0])
    futures = FutureCollection(max_length=2)
    with caplog.at_level(logging.WARNING, logger="flask_executor"):
        for key in range(1002):
            futures.add(key, pending())
        assert len(futures) == 2
        assert [r.getMessage()[:55] for r in caplog.records] == [
            "Evicting the unfinished future stored under 0: more tha"
        ]
        # A minute on, the next eviction reports the ones counted in between.
        clock[0] += 60.0
        futures.add("late", pending())
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage() == (
        "Evicting the unfinished future stored under 1000: more than 2 futures are stored"
        " and none has finished, and 999 more unfinished futures were evicted since the"
        " last warning. Their results can no longer be fetched by key; raise"
        " EXECUTOR_FUTURES_MAX_LENGTH or pop futures once read."
    )


@pytest.mark.timeout(30)
def test_reads_never_see_more_than_max_length() -> None:
    # 'add' stores the new future and then evicts one; a read between the two saw 51
    # futures with a bound of 50. Frequent thread switches make that window likely.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    futures = FutureCollection(max_length=50)
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        most = 0
        while not stop.is_set():
            count = len(futures)
            if count > most:
                most = count
        seen.append(most)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for key in range(20_000):
            future = finished(key) if key % 2 else pending()
            futures.add(key, future)
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        reader.join(10)
    assert seen and seen[0] == 50
