"""Nothing a job used outlives it: its future, its app, its stored key.

Each test holds weak references to what a job used, lets the job finish, and checks with
``gc.collect()`` that those objects are gone while the future (or the executor) is still
held. ``executor.shutdown(wait=True)`` is the moment a job's callbacks have all run: it
joins the threads that settle futures (the pool's workers, or a process pool's manager
thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import importlib
import logging
import threading
import typing as t
import weakref

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from flask_executor import Executor

from servers import APPS

pytestmark = [
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

RESULT_TIMEOUT = 30
APP_IMPORT = "process_app:create_app()"


class Marker:
    """Something a job uses, which can be referred to weakly (and pickled)."""

    def __init__(self, name: str = "marker") -> None:
        self.name = name


class SubclassedThreadPool(concurrent.futures.ThreadPoolExecutor):
    """A user's own pool class: flask-executor drives it through 'submit'."""


VARIABLE: contextvars.ContextVar[Marker] = contextvars.ContextVar("lifetimes_variable")

# Module-level, so that forked process workers find them by name.


def name_of(marker: Marker) -> str:
    return marker.name


def fail_with(marker: Marker) -> None:
    raise LookupError(marker.name)


def app_name() -> str | None:
    return current_app.name if has_app_context() else None


POOLS = [
    pytest.param({}, id="thread"),
    pytest.param(
        {
            "EXECUTOR_TYPE": "process",
            "EXECUTOR_MAX_WORKERS": 1,
            "EXECUTOR_POOL_KWARGS": {"mp_context": "fork"},
        },
        id="process-fork",
    ),
    pytest.param(
        {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": SubclassedThreadPool},
        id="custom",
    ),
]


def collected(*refs: weakref.ref[t.Any]) -> list[bool]:
    gc.collect()
    return [ref() is None for ref in refs]


# -- A done future ---------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("config", POOLS)
@pytest.mark.parametrize("stored", [False, True], ids=["submit", "submit_stored"])
def test_a_done_future_keeps_its_result_and_nothing_else(
    app: Flask, config: dict[str, t.Any], stored: bool
) -> None:
    app.config.update(config)
    executor = Executor(app)
    seen: list[tuple[str, str, str]] = []

    def record(future: concurrent.futures.Future[t.Any]) -> None:
        seen.append((request.path, g.marker.name, VARIABLE.get().name))

    executor.add_default_done_callback(record)
    argument, in_g, in_variable = Marker("argument"), Marker("g"), Marker("variable")
    token = VARIABLE.set(in_variable)
    try:
        with app.test_request_context("/report"):
            g.marker = in_g
            the_request = request._get_current_object()  # type: ignore[attr-defined]
            if stored:
                future = executor.submit_stored("report", name_of, argument)
            else:
                future = executor.submit(name_of, argument)
            future.add_done_callback(record)
    finally:
        VARIABLE.reset(token)
    refs = [weakref.ref(o) for o in (argument, in_g, in_variable, the_request)]
    del argument, in_g, in_variable, the_request
    assert future.result(RESULT_TIMEOUT) == "argument"
    with app.app_context():
        executor.shutdown(wait=True)
    # The callbacks ran with all of it...
    assert seen == [("/report", "g", "variable")] * 2
    # ...and then the future let go of it, while it is still held (and still stored).
    assert collected(*refs) == [True] * 4
    assert future.result() == "argument"
    if stored:
        assert executor.futures.get("report") is future


@pytest.mark.timeout(30)
def test_a_failed_future_keeps_its_exception_and_nothing_else(
    app: Flask, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    # The exception's traceback runs through the frames that held the job's contexts;
    # the failure logger (EXECUTOR_PROPAGATE_EXCEPTIONS) held its arguments.
    app.config["EXECUTOR_PROPAGATE_EXCEPTIONS"] = True
    executor.init_app(app)
    caplog.set_level(logging.CRITICAL + 1, "flask_executor")
    in_g, in_variable = Marker("g"), Marker("variable")
    token = VARIABLE.set(in_variable)
    try:
        with app.test_request_context("/fails"):
            g.marker = in_g
            the_request = request._get_current_object()  # type: ignore[attr-defined]
            future = executor.submit(fail_with, Marker("argument"))
    finally:
        VARIABLE.reset(token)
    refs = [weakref.ref(o) for o in (in_g, in_variable, the_request)]
    del in_g, in_variable, the_request
    with pytest.raises(LookupError, match="argument"):
        future.result(RESULT_TIMEOUT)
    with app.app_context():
        executor.shutdown(wait=True)
    assert collected(*refs) == [True] * 3
    assert isinstance(future.exception(), LookupError)


@pytest.mark.timeout(30)
def test_a_cancelled_future_lets_go_of_its_call(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    gate = threading.Event()
    try:
        busy = executor.submit(gate.wait, 10)
        argument = Marker("argument")
        with app.test_request_context("/cancelled"):
            the_request = request._get_current_object()  # type: ignore[attr-defined]
            queued = executor.submit(name_of, argument)
        refs = [weakref.ref(argument), weakref.ref(the_request)]
        del argument, the_request
        assert queued.cancel()
        assert collected(*refs) == [True, True]
    finally:
        gate.set()
        executor.shutdown(wait=True)
    assert busy.result() is True and queued.cancelled()


# -- Callbacks added after the job is done ---------------------------------------------


@pytest.fixture
def done_future(app: Flask, executor: Executor) -> concurrent.futures.Future[str]:
    with app.test_request_context("/submitted"):
        g.user = "ada"
        future = executor.submit(name_of, Marker("job"))
    assert future.result(RESULT_TIMEOUT) == "job"
    with app.app_context():
        executor.shutdown(wait=True)  # the job's callbacks have run: its contexts are gone
    return future


def _visible() -> tuple[str | None, str | None, str | None]:
    return (
        current_app.name if has_app_context() else None,
        request.path if has_request_context() else None,
        g.get("user") if has_app_context() else None,
    )


def test_a_late_callback_outside_any_context_gets_an_app_context_of_the_jobs_app(
    app: Flask, done_future: concurrent.futures.Future[str]
) -> None:
    torn_down: list[object] = []
    app.teardown_appcontext(lambda exc: torn_down.append(exc))
    seen: list[object] = []
    done_future.add_done_callback(lambda f: seen.append((_visible(), f.result())))
    # No request and an empty 'g': the job's were let go. A fresh app context, torn down.
    assert seen == [((app.name, None, None), "job")]
    assert torn_down == [None]


def test_a_late_callback_in_a_request_of_the_jobs_app_sees_that_request(
    app: Flask, done_future: concurrent.futures.Future[str]
) -> None:
    seen: list[object] = []
    with app.test_request_context("/later"):
        g.user = "grace"
        done_future.add_done_callback(lambda f: seen.append(_visible()))
    # As any call made in the view: a fast job must not make a callback added right
    # after 'submit' lose the view's request.
    assert seen == [(app.name, "/later", "grace")]


def test_a_late_callback_in_another_apps_context_gets_the_jobs_app(
    app: Flask, done_future: concurrent.futures.Future[str]
) -> None:
    other = Flask("other_app")
    seen: list[object] = []
    with other.test_request_context("/elsewhere"):
        g.user = "someone else"
        done_future.add_done_callback(lambda f: seen.append(_visible()))
    assert seen == [(app.name, None, None)]


def test_a_late_callback_keeps_its_context_variables_and_its_exceptions_are_logged(
    app: Flask, done_future: concurrent.futures.Future[str], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def fails(_: object) -> None:
        seen.append(VARIABLE.get().name)
        raise LookupError("late callback")

    token = VARIABLE.set(Marker("caller's"))
    try:
        with caplog.at_level(logging.ERROR, "concurrent.futures"):
            done_future.add_done_callback(fails)
    finally:
        VARIABLE.reset(token)
    assert seen == ["caller's"]
    assert any("late callback" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


def test_a_stored_future_does_not_keep_its_app(app: Flask) -> None:
    # The executor keeps its stored futures in a dict weakly keyed by the app: a stored
    # future that held its app strongly would keep that key alive for ever.
    executor = Executor()

    def bind_and_run() -> tuple[weakref.ref[Flask], concurrent.futures.Future[t.Any]]:
        other = Flask("stored_app")
        executor.init_app(other)
        with other.app_context():
            future = executor.submit_stored("kept", app_name)
            assert future.result(RESULT_TIMEOUT) == "stored_app"
            executor.shutdown(wait=True)
        return weakref.ref(other), future

    app_ref, future = bind_and_run()
    assert collected(app_ref) == [True]
    # Its callbacks still run: without the app, they get no app context.
    seen: list[object] = []
    future.add_done_callback(lambda f: seen.append((has_app_context(), f.result())))
    assert seen == [(False, "stored_app")]


# -- Stored futures --------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pop_before_done", [False, True], ids=["done-then-popped", "popped-first"])
def test_a_popped_future_is_freed(app: Flask, pop_before_done: bool) -> None:
    app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = 10
    executor = Executor(app)
    gate = threading.Event()
    with app.app_context():
        future = executor.submit_stored("popped", gate.wait, 10)
    ref = weakref.ref(future)
    if pop_before_done:
        assert executor.futures.pop("popped") is future
        gate.set()
        assert future.result(RESULT_TIMEOUT) is True
    else:
        gate.set()
        assert future.result(RESULT_TIMEOUT) is True
        with app.app_context():
            executor.shutdown(wait=True)
        assert executor.futures.pop("popped") is future
    with app.app_context():
        executor.shutdown(wait=True)
    del future
    assert collected(ref) == [True]
    # The collection goes on as before: another future under the same key is stored and
    # counted as finished.
    executor = Executor(app)
    with app.app_context():
        again = executor.submit_stored("popped", name_of, Marker("again"))
        assert again.result(RESULT_TIMEOUT) == "again"
        executor.shutdown(wait=True)
    assert executor.futures.get("popped") is again


def test_a_key_stored_again_is_evicted_by_its_new_future(app: Flask) -> None:
    # The eviction queue holds keys now: the news that the old future finished must not
    # count the new, unfinished one under the same key as finished.
    app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = 2
    executor = Executor(app)
    gate = threading.Event()
    try:
        with app.app_context():
            old = executor.submit_stored("a", name_of, Marker("old"))
            assert old.result(RESULT_TIMEOUT) == "old"
            executor.shutdown(wait=True)
            executor = Executor(app)
            executor.futures.pop("a")
            running = executor.submit_stored("a", gate.wait, 10)
            finished = executor.submit_stored("b", name_of, Marker("b"))
            assert finished.result(RESULT_TIMEOUT) == "b"
            # A third key evicts a finished future ("b"), not the running one under "a".
            executor.submit_stored("c", gate.wait, 10)
            assert executor.futures.keys() == ["a", "c"]
            assert executor.futures.get("a") is running
    finally:
        gate.set()
        with app.app_context():
            executor.shutdown(wait=True)


# -- Apps --------------------------------------------------------------------------------


APP_POOLS = [
    *POOLS,
    pytest.param(
        {
            "EXECUTOR_TYPE": "process",
            "EXECUTOR_MAX_WORKERS": 1,
            "EXECUTOR_POOL_KWARGS": {"mp_context": "spawn"},
            "EXECUTOR_APP_IMPORT": APP_IMPORT,
        },
        id="process-spawn",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("config", APP_POOLS)
def test_an_app_is_freed_while_its_executor_lives(
    config: dict[str, t.Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(APPS))
    monkeypatch.delenv("FLASK_APP", raising=False)
    jobs = importlib.import_module("process_jobs")
    # A module-level executor, bound by an app factory: it outlives every app.
    executor = Executor()
    expected = "process_app" if "EXECUTOR_APP_IMPORT" in config else "short_lived"

    def make_app_and_run() -> weakref.ref[Flask]:
        app = Flask("short_lived")
        app.config.update(config)
        executor.init_app(app)
        with app.test_request_context("/"):
            g.marker = Marker("g")
            future = executor.submit(jobs.app_report)
            assert future.result(RESULT_TIMEOUT)["app_name"] == expected
            executor.shutdown(wait=True)
        return weakref.ref(app)

    assert collected(make_app_and_run()) == [True]


@pytest.mark.timeout(30)
def test_an_app_is_freed_with_its_pool_running(app: Flask) -> None:
    # Never shut down: the app's state, and its pool with it, go with the app, and the
    # pool's idle threads end (the suite's leak check waits for them).
    executor = Executor()

    def make_app_and_run() -> weakref.ref[Flask]:
        app = Flask("short_lived")
        executor.init_app(app)
        with app.app_context():
            assert executor.submit(app_name).result(RESULT_TIMEOUT) == "short_lived"
        return weakref.ref(app)

    assert collected(make_app_and_run()) == [True]


# -- asyncio.wrap_future -------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["wrap_future", "run_in_executor"])
def test_a_wrapped_future_tears_its_job_down_once(app: Flask, executor: Executor, how: str) -> None:
    torn_down: list[str | None] = []
    last_teardown = threading.Event()
    here = threading.get_ident()

    @app.teardown_appcontext
    def teardown(exc: BaseException | None) -> None:
        # The app contexts of the worker that runs the job and its callbacks; this
        # thread's own (around 'submit') are not the job's.
        if threading.get_ident() != here:
            torn_down.append(g.get("who"))
        if g.get("who") == "marker":
            last_teardown.set()

    gate = threading.Event()

    def job() -> str:
        g.who = "job"
        gate.wait(10)
        return "done"

    async def main() -> str:
        with app.app_context():
            if how == "wrap_future":
                future = executor.submit(job)
                awaitable = asyncio.wrap_future(future)
            else:
                awaitable = asyncio.get_running_loop().run_in_executor(executor, job)
                future = None
        if future is not None:
            # Added after asyncio's own: callbacks run in order, so once this one's app
            # context is torn down, any that asyncio's got has been too.
            future.add_done_callback(lambda _: setattr(g, "who", "marker"))
        gate.set()
        return await awaitable

    result = asyncio.run(main())
    assert result == "done"
    if how == "wrap_future":
        assert last_teardown.wait(10)
        assert torn_down == ["job", "marker"]
    else:
        with app.app_context():
            executor.shutdown(wait=True)
        assert torn_down == ["job"]
