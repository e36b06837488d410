"""The public job state: ``JobState``, ``future.state`` and ``executor.futures.state(key)``.

Issue 11, section 3, item 1 (public, typed job state) and item 2 (typed methods by key).
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import threading
import typing as t

import pytest
from flask import Flask
from flask import jsonify
from flask_executor import Executor
from flask_executor import FutureCollection
from flask_executor import FutureProxy
from flask_executor import JobState

from test_futures import executor_on
from test_futures import fail
from test_futures import POOLS
from test_futures import square
from test_futures import SubclassedThreadPool

WAIT = 30.0

# The pools whose jobs run in this process, so that a job can wait on a threading.Event.
IN_PROCESS_POOLS = [p for p in POOLS if p.id != "process"]


@pytest.fixture(params=POOLS)
def any_executor(request: pytest.FixtureRequest, app: Flask) -> t.Iterator[Executor]:
    yield from executor_on(app, request.param)


@pytest.fixture(params=IN_PROCESS_POOLS)
def in_process_executor(request: pytest.FixtureRequest, app: Flask) -> t.Iterator[Executor]:
    yield from executor_on(app, request.param)


# -- The enum ------------------------------------------------------------------------------


def test_members_are_the_five_states_named_by_their_values() -> None:
    assert [state.name for state in JobState] == [
        "PENDING",
        "RUNNING",
        "FINISHED",
        "FAILED",
        "CANCELLED",
    ]
    for state in JobState:
        assert state.value == state.name
        assert JobState(state.name) is state


def test_a_state_is_a_string_in_json_and_in_text(app: Flask) -> None:
    assert JobState.RUNNING == "RUNNING"
    assert str(JobState.FAILED) == "FAILED"
    assert f"{JobState.FINISHED}" == "FINISHED"
    assert json.dumps({"state": JobState.PENDING}) == '{"state": "PENDING"}'
    with app.app_context():
        assert jsonify(state=JobState.CANCELLED).get_json() == {"state": "CANCELLED"}


# -- future.state through a job's life -----------------------------------------------------


@pytest.mark.timeout(60)
def test_finished_and_failed(any_executor: Executor) -> None:
    succeeded = any_executor.submit(square, 4)
    failed = any_executor.submit(fail, "no")
    concurrent.futures.wait([succeeded, failed], timeout=WAIT)
    assert succeeded.state is JobState.FINISHED
    assert failed.state is JobState.FAILED
    # The same through the collection, for stored jobs.
    stored_ok = any_executor.submit_stored("ok", square, 5)
    stored_failed = any_executor.submit_stored("failed", fail, "no")
    concurrent.futures.wait([stored_ok, stored_failed], timeout=WAIT)
    assert any_executor.futures.state("ok") is JobState.FINISHED
    assert any_executor.futures.state("failed") is JobState.FAILED
    assert any_executor.futures.state("unknown") is None


@pytest.mark.timeout(60)
def test_running_then_finished(in_process_executor: Executor) -> None:
    started, release = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        assert release.wait(WAIT)
        return "done"

    future = in_process_executor.submit_stored("job", job)
    assert started.wait(WAIT)
    assert future.state is JobState.RUNNING
    assert in_process_executor.futures.state("job") is JobState.RUNNING
    release.set()
    assert future.result(timeout=WAIT) == "done"
    assert future.state is JobState.FINISHED


def _wait_for_release(started: t.Any, release: t.Any) -> str:
    # Module-level, for the process pool; the events are a manager's proxies.
    started.set()
    release.wait(WAIT)
    return "released"


@pytest.mark.timeout(60)
def test_running_in_a_worker_process(app: Flask) -> None:
    with multiprocessing.Manager() as manager:
        started, release = manager.Event(), manager.Event()
        for executor in executor_on(app, {"EXECUTOR_TYPE": "process", "EXECUTOR_MAX_WORKERS": 1}):
            future = executor.submit(_wait_for_release, started, release)
            assert started.wait(WAIT)
            assert future.state is JobState.RUNNING
            release.set()
            assert future.result(timeout=WAIT) == "released"
            assert future.state is JobState.FINISHED


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "pool",
    [
        pytest.param({}, id="thread"),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": SubclassedThreadPool},
            id="custom-thread-pool",
        ),
    ],
)
def test_pending_then_cancelled(app: Flask, pool: dict[str, t.Any]) -> None:
    # One worker, kept busy, so the second job waits in the queue. (Not a process pool:
    # CPython's marks a job RUNNING as soon as it is queued for a worker.)
    started, release = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        assert release.wait(WAIT)

    for executor in executor_on(app, {**pool, "EXECUTOR_MAX_WORKERS": 1}):
        busy = executor.submit(block)
        assert started.wait(WAIT)
        _check_pending_then_cancelled(executor)
        release.set()
        busy.result(timeout=WAIT)


def _check_pending_then_cancelled(executor: Executor) -> None:
    queued = executor.submit_stored("queued", square, 2)
    assert queued.state is JobState.PENDING
    assert executor.futures.state("queued") is JobState.PENDING
    assert executor.futures.cancel("queued") is True
    assert queued.state is JobState.CANCELLED
    assert executor.futures.state("queued") is JobState.CANCELLED
    # 1.0's raw string is still there for code written for it.
    assert executor.futures._state("queued") in {"CANCELLED", "CANCELLED_AND_NOTIFIED"}


class _HeldCallbacksFuture(concurrent.futures.Future[t.Any]):
    """A pool's future whose done callbacks wait until the test releases them.

    As when the thread that reports a pool's outcomes falls behind: the pool's future is
    done, while the job's own future has not heard of it yet.
    """

    release = threading.Event()

    def add_done_callback(self, fn: t.Callable[[concurrent.futures.Future[t.Any]], object]) -> None:
        def later(future: concurrent.futures.Future[t.Any]) -> None:
            if self.release.wait(WAIT):
                fn(future)

        def in_a_thread(future: concurrent.futures.Future[t.Any]) -> None:
            threading.Thread(target=later, args=(future,), daemon=True).start()

        super().add_done_callback(in_a_thread)


class SlowReportingProcessPool(concurrent.futures.ProcessPoolExecutor):
    """A process pool subclass that hands out :class:`_HeldCallbacksFuture` objects."""

    returned: t.ClassVar[list[concurrent.futures.Future[t.Any]]] = []

    def submit(self, fn: t.Callable[..., t.Any], /, *args: t.Any, **kwargs: t.Any) -> t.Any:
        inner = super().submit(fn, *args, **kwargs)
        outer = _HeldCallbacksFuture()

        def copy(done: concurrent.futures.Future[t.Any]) -> None:
            outer.set_running_or_notify_cancel()
            exc = done.exception()
            if exc is None:
                outer.set_result(done.result())
            else:
                outer.set_exception(exc)

        inner.add_done_callback(copy)
        self.returned.append(outer)
        return outer


@pytest.mark.timeout(60)
def test_a_job_whose_outcome_is_on_its_way_is_still_running(app: Flask) -> None:
    SlowReportingProcessPool.returned.clear()
    _HeldCallbacksFuture.release.clear()
    config = {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": SlowReportingProcessPool}
    try:
        for executor in executor_on(app, config):
            future = executor.submit(square, 3)
            (pool_future,) = SlowReportingProcessPool.returned
            assert pool_future.result(timeout=WAIT) == 9
            # The job ran; its outcome has not reached its future. It is not PENDING.
            assert not future.done()
            assert future.state is JobState.RUNNING
            _HeldCallbacksFuture.release.set()
            assert future.result(timeout=WAIT) == 9
            assert future.state is JobState.FINISHED
    finally:
        _HeldCallbacksFuture.release.set()


_ORDER = {
    JobState.PENDING: 0,
    JobState.RUNNING: 1,
    JobState.FINISHED: 2,
    JobState.FAILED: 2,
    JobState.CANCELLED: 2,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pool", POOLS)
def test_state_never_goes_back(app: Flask, pool: t.Any) -> None:
    # A thread reads the states of many jobs while they run. A job's state may only move
    # forward: a job that ran is never seen PENDING again, a finished one never RUNNING.
    for executor in executor_on(app, pool):
        futures = [executor.submit(square, i) for i in range(200)]
        seen: list[list[JobState]] = [[] for _ in futures]
        while not all(f.done() for f in futures):
            for states, future in zip(seen, futures):
                states.append(future.state)
        concurrent.futures.wait(futures, timeout=WAIT)
        for states, future in zip(seen, futures):
            states.append(future.state)
            order = [_ORDER[s] for s in states]
            assert order == sorted(order), states
            assert states[-1] is JobState.FINISHED


# -- The collection ------------------------------------------------------------------------


def test_collection_state_of_plain_futures() -> None:
    # Futures stored with 'add' need not be the extension's own, as in 1.0.
    futures = FutureCollection()
    pending: concurrent.futures.Future[int] = concurrent.futures.Future()
    running: concurrent.futures.Future[int] = concurrent.futures.Future()
    running.set_running_or_notify_cancel()
    finished: concurrent.futures.Future[int] = concurrent.futures.Future()
    finished.set_result(1)
    failed: concurrent.futures.Future[int] = concurrent.futures.Future()
    failed.set_exception(KeyError("k"))
    cancelled: concurrent.futures.Future[int] = concurrent.futures.Future()
    cancelled.cancel()
    for key, future in [
        ("pending", pending),
        ("running", running),
        ("finished", finished),
        ("failed", failed),
        ("cancelled", cancelled),
    ]:
        futures.add(key, t.cast(FutureProxy[t.Any], future))
        assert futures.state(key) is JobState[key.upper()]
    assert futures.state("missing") is None


def test_collection_methods_by_key_return_none_for_an_unknown_key() -> None:
    futures = FutureCollection()
    calls: list[object] = []
    assert futures.state("missing") is None
    assert futures.done("missing") is None
    assert futures.running("missing") is None
    assert futures.cancelled("missing") is None
    assert futures.cancel("missing") is None
    assert futures.result("missing", timeout=0) is None
    assert futures.exception("missing", timeout=0) is None
    assert futures.add_done_callback("missing", calls.append) is None
    assert futures._state("missing") is None
    assert calls == []


def test_collection_add_done_callback_by_key() -> None:
    futures = FutureCollection()
    future: FutureProxy[int] = FutureProxy()
    futures.add("job", future)
    called: list[concurrent.futures.Future[t.Any]] = []
    futures.add_done_callback("job", called.append)
    assert called == []
    future.set_result(3)
    assert called == [future]


def test_collection_keyword_arguments_as_in_1_0() -> None:
    futures = FutureCollection()
    future: FutureProxy[int] = FutureProxy()
    future.set_exception(ValueError("v"))
    futures.add("job", future)
    assert isinstance(futures.exception(future_key="job", timeout=1), ValueError)
    with pytest.raises(ValueError, match="v"):
        futures.result(future_key="job", timeout=1)


def test_other_future_methods_by_key_say_what_to_do_instead() -> None:
    futures = FutureCollection()
    with pytest.raises(AttributeError) as info:
        futures.set_result  # noqa: B018
    assert str(info.value) == (
        "'FutureCollection' has no method 'set_result'. Flask-Executor 1.0 passed every"
        " Future attribute through by key; 2.0 has 'done', 'running', 'cancelled',"
        " 'cancel', 'result', 'exception', 'add_done_callback' and 'state'. For anything"
        " else, call it on the future itself: executor.futures.get(key).set_result."
    )
    with pytest.raises(AttributeError, match="has no attribute 'finish'"):
        futures.finish  # noqa: B018
    assert not hasattr(futures, "__fspath__")
