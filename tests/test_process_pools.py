"""Process pools: contexts in the workers, healing after a crash, bad input, shutdown.

Every test runs real worker processes. The jobs live in ``apps/process_jobs.py``, since a
worker finds a job by its module and name; the app that spawned workers import is
``apps/process_app.py``.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process as _cf_process
import functools
import importlib
import logging
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import types
import typing as t
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from flask import Flask
from flask import g
from flask import request
from flask_executor import config
from flask_executor import Executor
from flask_executor._cpython import verified
from flask_executor.backends import process as process_tasks

from apps import process_jobs as jobs
from apps.process_jobs import Gate
from servers import APPS

if t.TYPE_CHECKING:
    from types import ModuleType

    from flask_executor import FutureProxy

pytestmark = [
    # Python 3.12+ warns when the fork start method forks a process that runs threads;
    # these tests use fork on purpose, next to spawn and forkserver.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

ROOT = Path(__file__).parent.parent
APP_IMPORT = "process_app:create_app()"
SPAWNING = ["spawn", "forkserver"]

# Generous: a worker process on a busy machine may take a while to start and import.
RESULT_TIMEOUT = 30


@pytest.fixture
def process_app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The app module, importable as ``process_app`` here and in every worker.

    Spawned workers receive this process's ``sys.path``, so they import the same module.
    """
    monkeypatch.syspath_prepend(str(APPS))
    monkeypatch.delenv("FLASK_APP", raising=False)
    return importlib.import_module("process_app")


Bind = t.Callable[..., tuple[Flask, Executor]]


@pytest.fixture
def bind(process_app: ModuleType) -> t.Iterator[Bind]:
    """Make an app from ``process_app`` and bind an executor with a process pool to it."""
    bound: list[tuple[Flask, Executor]] = []

    def bind(
        start_method: str = "fork", executor: Executor | None = None, **config: t.Any
    ) -> tuple[Flask, Executor]:
        app: Flask = process_app.create_app()
        app.config["EXECUTOR_TYPE"] = "process"
        app.config["EXECUTOR_MAX_WORKERS"] = 2
        app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": start_method}
        app.config.update(config)
        executor = executor if executor is not None else Executor()
        executor.init_app(app)
        bound.append((app, executor))
        return app, executor

    yield bind
    for app, executor in bound:
        with app.app_context():
            executor.shutdown(wait=True, cancel_futures=True)


def executor_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "flask_executor" and r.levelno >= logging.WARNING
    ]


# -- 1. The app in the worker ------------------------------------------------------------


def test_fork_workers_use_the_inherited_app(bind: Bind, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    app, executor = bind("fork")
    assert executor_warnings(caplog) == []

    with app.app_context():
        reports = [executor.submit(jobs.app_report).result(RESULT_TIMEOUT) for _ in range(4)]

    for report in reports:
        assert report["pid"] != os.getpid()
        assert report["has_app_context"] is True
        assert report["app_name"] == app.name
        # The very app object of the parent, built here, not rebuilt in the worker.
        assert report["build_number"] == app.config["BUILD_NUMBER"]
        assert report["built_in_pid"] == os.getpid()


@pytest.mark.parametrize("start_method", SPAWNING)
@pytest.mark.parametrize("setting", ["EXECUTOR_APP_IMPORT", "FLASK_APP"])
def test_spawned_workers_import_the_app_once(
    bind: Bind,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    start_method: str,
    setting: str,
) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    if setting == "FLASK_APP":
        monkeypatch.setenv("FLASK_APP", APP_IMPORT)
        app, executor = bind(start_method, EXECUTOR_MAX_WORKERS=1)
    else:
        app, executor = bind(start_method, EXECUTOR_MAX_WORKERS=1, EXECUTOR_APP_IMPORT=APP_IMPORT)
    assert executor_warnings(caplog) == []

    with app.app_context():
        reports = [executor.submit(jobs.app_report).result(RESULT_TIMEOUT) for _ in range(4)]

    worker_pid = reports[0]["pid"]
    assert worker_pid != os.getpid()
    for report in reports:
        assert report["pid"] == worker_pid
        assert report["has_app_context"] is True
        assert report["app_name"] == app.name
        assert report["greeting"] == "hello from process_app"
        # Built in the worker, by the first job, and reused by the next three.
        assert report["built_in_pid"] == worker_pid
        assert report["build_number"] == 1


@pytest.mark.parametrize("start_method", SPAWNING)
def test_without_app_import_jobs_run_without_app_context_and_init_app_warns_once(
    bind: Bind, caplog: pytest.LogCaptureFixture, start_method: str
) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    app, executor = bind(start_method)

    [warning] = executor_warnings(caplog)
    message = warning.getMessage()
    assert "without an app context" in message
    assert repr(start_method) in message
    assert "EXECUTOR_APP_IMPORT" in message
    assert "FLASK_APP" in message

    with app.app_context():
        reports = [executor.submit(jobs.app_report).result(RESULT_TIMEOUT) for _ in range(3)]
    assert [r["has_app_context"] for r in reports] == [False] * 3
    # Running the jobs adds no warnings of its own.
    assert len(executor_warnings(caplog)) == 1


def test_an_app_that_cannot_be_imported_fails_the_jobs_with_the_reason(bind: Bind) -> None:
    from flask.cli import NoAppException

    app, executor = bind(
        "spawn", EXECUTOR_MAX_WORKERS=1, EXECUTOR_APP_IMPORT="process_app:no_such_factory()"
    )
    with app.app_context():
        errors = [executor.submit(jobs.app_report).exception(RESULT_TIMEOUT) for _ in range(2)]
        # The worker survives a failed import; the next job tries again, and fails the
        # same way rather than running without its app.
    for error in errors:
        assert isinstance(error, NoAppException)
        assert "no_such_factory" in str(error)


def test_start_method_can_be_a_context_object(bind: Bind) -> None:

    app, executor = bind(multiprocessing.get_context("spawn"), EXECUTOR_APP_IMPORT=APP_IMPORT)
    with app.app_context():
        report = executor.submit(jobs.app_report).result(RESULT_TIMEOUT)
    assert report["built_in_pid"] == report["pid"] != os.getpid()


# -- 2. The request and g in the worker ----------------------------------------------------


def add_views(app: Flask, executor: Executor) -> None:
    @app.route("/items/<int:item_id>", methods=["GET", "POST"])
    def item(item_id: int) -> t.Any:
        return executor.submit(jobs.request_report).result(RESULT_TIMEOUT)

    @app.post("/body/<read>")
    def body(read: str) -> t.Any:
        if read == "read":
            request.get_data()
        future = executor.submit(jobs.request_body)
        concurrent.futures.wait([future], RESULT_TIMEOUT)
        if future.exception() is not None:
            return {"error": str(future.exception())}
        return {"body": future.result().decode()}

    @app.post("/form")
    def form() -> t.Any:
        assert request.form["name"] == "ada"
        return executor.submit(jobs.request_form).result(RESULT_TIMEOUT)

    @app.get("/g")
    def g_view() -> t.Any:
        g.user = "ada"
        g.attempts = 3
        g.lock = threading.Lock()
        g.callback = lambda: None
        return executor.submit(jobs.g_report).result(RESULT_TIMEOUT)

    @app.get("/report")
    def report() -> t.Any:
        g.secret = request.args.get("secret")
        return executor.submit(jobs.context_report).result(RESULT_TIMEOUT)


@pytest.fixture(params=["fork", "spawn"])
def request_app(request: pytest.FixtureRequest, bind: Bind) -> tuple[Flask, Executor]:
    app, executor = bind(request.param, EXECUTOR_APP_IMPORT=APP_IMPORT)
    add_views(app, executor)
    return app, executor


def test_job_sees_a_snapshot_of_the_request(request_app: tuple[Flask, Executor]) -> None:
    app, _ = request_app
    # The cookie as a header, with the client's own cookie jar off: that works the same
    # on every Flask version the package supports.
    report = (
        app.test_client(use_cookies=False)
        .post(
            "/items/7?q=a&q=b&page=2",
            headers={"X-Trace": "trace-1", "Cookie": "flavour=oatmeal"},
            data=b"unread",
        )
        .json
    )

    assert report == {
        "method": "POST",
        "path": "/items/7",
        "url": "http://localhost/items/7?q=a&q=b&page=2",
        "args": {"q": ["a", "b"], "page": ["2"]},
        "headers": {"X-Trace": "trace-1", "Host": "localhost"},
        "cookies": {"flavour": "oatmeal"},
        "view_args": {"item_id": 7},
    }


def test_job_sees_the_body_the_view_read(request_app: tuple[Flask, Executor]) -> None:
    app, _ = request_app
    response = app.test_client().post("/body/read", data=b"payload bytes")
    assert response.json == {"body": "payload bytes"}


def test_job_reading_a_body_the_view_did_not_read_gets_a_clear_error(
    request_app: tuple[Flask, Executor],
) -> None:
    app, _ = request_app
    response = app.test_client().post("/body/unread", data=b"payload bytes")
    error = response.json["error"]
    assert "request body was not read in the view" in error
    assert "pass what the job needs as an argument" in error


def test_job_sees_the_form_the_view_parsed(request_app: tuple[Flask, Executor]) -> None:
    app, _ = request_app
    response = app.test_client().post("/form", data={"name": "ada", "tag": ["x", "y"]})
    assert response.json == {"name": ["ada"], "tag": ["x", "y"]}


def test_g_values_that_pickle_travel_and_the_rest_are_named_once_at_debug(
    request_app: tuple[Flask, Executor], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = request_app
    caplog.set_level(logging.DEBUG, "flask_executor")

    assert app.test_client().get("/g").json == {"user": "ada", "attempts": 3}

    [record] = [r for r in caplog.records if r.name == "flask_executor"]
    assert record.levelno == logging.DEBUG
    assert "callback, lock" in record.getMessage()


def test_a_worker_started_during_a_request_never_leaks_it(bind: Bind) -> None:
    # One worker, forked (the default start method here) by the thread that is handling
    # the first request, in the middle of it: it starts life with that request's
    # context variables. Later jobs must see their own request, or none.
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    add_views(app, executor)
    client = app.test_client()

    first = client.get("/report?secret=unrelated").json
    second = client.get("/report").json
    with app.app_context():
        in_app_context = executor.submit(jobs.context_report).result(RESULT_TIMEOUT)
    outside = executor.submit(jobs.context_report).result(RESULT_TIMEOUT)

    assert first["path"] == "/report"
    assert first["g"] == {"secret": "unrelated"}
    assert second["pid"] == in_app_context["pid"] == outside["pid"] == first["pid"]
    assert second["has_request_context"] is True
    assert second["g"] == {"secret": None}
    assert in_app_context == {**in_app_context, "has_request_context": False, "g": {}}
    assert outside == {**outside, "has_request_context": False, "g": {}}


# -- 3 and issue 2, item 10. Submit, map and @executor.job -----------------------------------


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_submit_and_map_module_level_functions(bind: Bind, start_method: str) -> None:
    app, executor = bind(start_method, EXECUTOR_APP_IMPORT=APP_IMPORT)
    with app.app_context():
        assert executor.submit(jobs.add, 2, y=3).result(RESULT_TIMEOUT) == 5
        assert list(executor.map(jobs.square, range(20), timeout=RESULT_TIMEOUT)) == [
            x * x for x in range(20)
        ]
        assert list(executor.map(jobs.add, range(5), range(10, 15))) == [10, 12, 14, 16, 18]
        assert list(executor.map(jobs.square, range(25), chunksize=4)) == [x * x for x in range(25)]
    # Outside any context the only bound app is used.
    assert list(executor.map(jobs.square, [3, 4])) == [9, 16]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_job_decorator_with_a_process_pool(bind: Bind, start_method: str) -> None:
    app, executor = bind(start_method, executor=jobs.executor, EXECUTOR_APP_IMPORT=APP_IMPORT)
    assert executor is jobs.executor

    with app.test_request_context("/"):
        assert jobs.cube(3) == 27  # still the plain function
        assert jobs.cube.submit(3).result(RESULT_TIMEOUT) == 27
        assert list(jobs.cube.map(range(8))) == [x**3 for x in range(8)]
        assert list(jobs.cube.map(range(8), chunksize=3)) == [x**3 for x in range(8)]
        jobs.cube.submit_stored("cube-4", 4)
        assert executor.futures.result("cube-4", timeout=RESULT_TIMEOUT) == 64
        report = jobs.worker_pid_and_app.submit("tagged").result(RESULT_TIMEOUT)
    assert report == {"tag": "tagged", "pid": report["pid"], "app": app.name}
    assert report["pid"] != os.getpid()


# -- 4. Crash healing ------------------------------------------------------------------------


@pytest.mark.parametrize("crash", [jobs.exit_worker, jobs.kill_worker], ids=["exit", "sigkill"])
def test_a_worker_that_dies_fails_every_job_in_flight_then_the_pool_heals(
    bind: Bind, caplog: pytest.LogCaptureFixture, crash: t.Callable[[], None]
) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=3)

    with app.app_context(), Gate() as gate:
        # Two jobs hold two workers, so that they are surely running when the third
        # worker dies under the crashing job.
        in_flight = [executor.submit(jobs.pass_gate, gate.port, f"job-{i}") for i in range(2)]
        gate.wait_for(2)
        crashed = executor.submit(crash)

        _, not_done = concurrent.futures.wait([crashed, *in_flight], timeout=RESULT_TIMEOUT)
        assert not not_done
        for future in (crashed, *in_flight):
            assert isinstance(future.exception(), BrokenProcessPool)

    [warning] = executor_warnings(caplog)
    assert "broke" in warning.getMessage()
    assert "a new pool will run the next jobs" in warning.getMessage()

    with app.app_context():
        futures = [executor.submit(jobs.square, x) for x in range(20)]
        assert [f.result(RESULT_TIMEOUT) for f in futures] == [x * x for x in range(20)]
        assert list(executor.map(jobs.square, range(10))) == [x * x for x in range(10)]
    assert len(executor_warnings(caplog)) == 1


def test_a_pool_that_breaks_while_another_one_breaks_lets_both_threads_end(bind: Bind) -> None:
    # Each pool's manager thread fails its jobs while it holds the pool's lock. If the
    # last reference to a broken pool went with its jobs, the pool's finalizer would
    # take that lock too, and the thread would wait for ever (Python 3.12 and 3.13),
    # which hangs the interpreter's exit. Here a second pool breaks while the first
    # one's thread still reports, and the first reports again after it.
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    threads_before = set(threading.enumerate())
    second_reporting = threading.Event()
    first_done = threading.Event()

    def while_second_fails(_: object) -> None:  # in the second pool's thread
        second_reporting.set()
        first_done.wait(RESULT_TIMEOUT)

    def while_first_fails(_: object) -> None:  # in the first pool's thread
        with app.app_context():
            second = executor.submit(jobs.kill_worker)
        second.add_done_callback(while_second_fails)
        second_reporting.wait(RESULT_TIMEOUT)

    with app.app_context():
        first = executor.submit(jobs.kill_worker)
        first.add_done_callback(while_first_fails)
        # Fails with the first pool, after the callback above has run.
        also_first = executor.submit(jobs.square, 3)
        also_first.add_done_callback(lambda _: first_done.set())
        assert isinstance(also_first.exception(RESULT_TIMEOUT), BrokenProcessPool)
        assert first_done.wait(RESULT_TIMEOUT)
        assert executor.submit(jobs.square, 5).result(RESULT_TIMEOUT) == 25
        executor.shutdown(wait=True)

    for thread in set(threading.enumerate()) - threads_before:
        if isinstance(thread, _cf_process._ExecutorManagerThread):  # type: ignore[attr-defined]
            thread.join(RESULT_TIMEOUT)
            assert not thread.is_alive()


def test_a_pool_that_breaks_again_heals_again(bind: Bind) -> None:
    app, executor = bind("fork")
    with app.app_context():
        for _ in range(3):
            crashed = executor.submit(jobs.exit_worker)
            assert isinstance(crashed.exception(RESULT_TIMEOUT), BrokenProcessPool)
            assert executor.submit(jobs.square, 7).result(RESULT_TIMEOUT) == 49


# -- 5. Bad input stays on its own future ----------------------------------------------------


BAD_CALLS = [
    pytest.param(
        (jobs.echo, (threading.Lock(),), {}), "argument 0 (<unlocked _thread.lock", id="argument"
    ),
    pytest.param(
        (jobs.echo, (), {"value": threading.Lock()}), "keyword argument 'value'", id="keyword"
    ),
    pytest.param((lambda: 1, (), {}), "the function (<function", id="lambda"),
    pytest.param((jobs.make_lock, (), {}), "The result of the job", id="result"),
]


@pytest.mark.parametrize(("call", "names"), BAD_CALLS)
@pytest.mark.keeps_objects("its unpicklable arguments are module-level parameters")
def test_what_cannot_be_pickled_fails_only_its_own_future(
    bind: Bind, call: tuple[t.Callable[..., t.Any], tuple[t.Any, ...], dict[str, t.Any]], names: str
) -> None:
    app, executor = bind("fork")
    fn, args, kwargs = call
    with app.app_context():
        before = [executor.submit(jobs.square, x) for x in range(5)]
        bad = executor.submit(fn, *args, **kwargs)
        after = [executor.submit(jobs.square, x) for x in range(100)]

        error = bad.exception(RESULT_TIMEOUT)
        assert isinstance(error, TypeError)
        message = str(error)
        assert "cannot be pickled" in message
        assert names in message
        assert [f.result(RESULT_TIMEOUT) for f in before] == [x * x for x in range(5)]
        assert [f.result(RESULT_TIMEOUT) for f in after] == [x * x for x in range(100)]


def test_an_exception_that_cannot_come_back_fails_only_its_own_job(
    bind: Bind, caplog: pytest.LogCaptureFixture
) -> None:
    # The exception pickles in the worker but cannot be rebuilt here. Sent as it is, it
    # would break the pool, and fail every job in flight with it.
    app, executor = bind("fork")
    with app.app_context(), Gate() as gate:
        in_flight = executor.submit(jobs.pass_gate, gate.port, "in flight")
        gate.wait_for(1)
        bad = executor.submit(jobs.raise_two_part_error)
        error = bad.exception(RESULT_TIMEOUT)
        gate.open()
        assert in_flight.result(RESULT_TIMEOUT) == "in flight"
        assert executor.submit(jobs.square, 4).result(RESULT_TIMEOUT) == 16

    assert isinstance(error, RuntimeError)
    message = str(error)
    assert "raise_two_part_error' raised TwoPartError(7: out of widgets)" in message
    assert "cannot be sent back from the worker process" in message
    assert "missing 1 required positional argument" in message
    # The worker's traceback of the original travels as text.
    assert "raise TwoPartError(7, " in str(error.__cause__)
    assert executor_warnings(caplog) == []  # the pool did not break


# -- 6. Each job's future, settled by the pool or following it -------------------------------

# CPython's own pool settles each job's future itself; any other pool is driven through
# 'submit', and the job's future follows the pool's. Both must behave alike.
PATHS = [
    pytest.param({}, id="settled-by-the-pool"),
    pytest.param(
        {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": jobs.FollowedProcessPool},
        id="following-the-pool",
    ),
]


def test_the_process_fast_path_is_verified_on_cpython_3_9_16_to_3_13() -> None:
    assert not verified("process", (3, 9, 15))
    assert verified("process", (3, 9, 16))
    assert verified("process", (3, 13, 99))
    assert not verified("process", (3, 14, 0))


@pytest.mark.parametrize("config", PATHS)
def test_results_come_back_as_they_were(bind: Bind, config: dict[str, t.Any]) -> None:
    # Plain results travel as they are, and everything else pickled; bytes that happen
    # to be a pickle must come back as those bytes.
    app, executor = bind(**config)
    values = ["text", 3, 2.5, True, None, b"raw", pickle.dumps(42), {"a": [1, (2, 3)]}]
    with app.app_context():
        futures = [executor.submit(jobs.echo, value) for value in values]
        results = [f.result(RESULT_TIMEOUT) for f in futures]
    assert results == values
    assert [type(r) for r in results] == [type(v) for v in values]


@pytest.mark.parametrize("config", PATHS)
def test_each_job_gets_the_callable_object_as_it_was_submitted(
    bind: Bind, config: dict[str, t.Any]
) -> None:
    # A plain function's pickled reference is cached on both sides. An object with state
    # must not be: one worker runs all three jobs, and none may see another's changes.
    app, executor = bind(EXECUTOR_MAX_WORKERS=1, **config)
    tally = jobs.Tally()
    with app.app_context():
        counts = [executor.submit(tally).result(RESULT_TIMEOUT) for _ in range(3)]
        tally.calls = 10
        later = executor.submit(tally).result(RESULT_TIMEOUT)
        sums = [executor.submit(functools.partial(jobs.add, x), 1) for x in (1, 10)]
        assert [f.result(RESULT_TIMEOUT) for f in sums] == [2, 11]
        assert executor.submit(jobs.square, 4).result(RESULT_TIMEOUT) == 16
        closures = [executor.submit(jobs.PicklesAsClosure()) for _ in range(3)]
        assert [f.result(RESULT_TIMEOUT) for f in closures] == [1, 1, 1]
        # Pickled together, the callable and its arguments keep what they share.
        box = jobs.Box()
        assert executor.submit(box.holds, box).result(RESULT_TIMEOUT) is True
    assert counts == [1, 1, 1]
    assert later == 11
    assert tally.calls == 10
    assert jobs.square in process_tasks._references
    assert not any(type(key) is not types.FunctionType for key in process_tasks._references)


def test_the_cache_of_pickled_functions_stays_bounded(
    bind: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_tasks, "_references", {})
    monkeypatch.setattr(process_tasks, "_CACHE_SIZE", 2)
    app, executor = bind(EXECUTOR_MAX_WORKERS=1)
    with app.app_context():
        for _ in range(2):
            results = [executor.submit(fn, 3).result(RESULT_TIMEOUT) for fn in CALLS]
            assert results == [9, -3, 3]
            assert len(process_tasks._references) <= 2


# Three plain functions, one more than the cache in the test holds.
CALLS = [jobs.square, jobs.negate, jobs.echo]


# -- A job for an idle pool goes straight to its workers ------------------------------------
#
# CPython's process pool, on the versions whose internals flask-executor checks, gets a job
# that finds no other job pending straight into its workers' call queue, without waking the
# pool's manager thread (process_tasks._send_now). These tests cover what that must keep.

fast_path_only = pytest.mark.skipif(
    not (verified("process") and config.DEFAULTS["FAST_PATHS"]),
    reason="CPython's process pool is driven through 'submit' here",
)


def on_the_fast_path(app: Flask, executor: Executor) -> None:
    """Wait until a new one-worker pool takes the fast path.

    The pool's probe job goes first; a job that comes back after it finds it done.
    """
    with app.app_context():
        assert executor.submit(jobs.square, 1).result(RESULT_TIMEOUT) == 1


def make_unable_to_start(pool: t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting ``pool``'s workers or thread fail, as with no memory left to fork."""

    def cannot_start() -> None:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(pool, "_start_executor_manager_thread", cannot_start)


def assert_shutdown_finishes(executor: Executor) -> None:
    """The pool waits at shutdown for every job it holds: it must hold none for ever."""
    shutdown = threading.Thread(target=executor.shutdown)
    shutdown.start()
    shutdown.join(RESULT_TIMEOUT)
    assert not shutdown.is_alive()


def _max_tasks_per_child_is_accepted() -> bool:
    # Refused by 'init_app' on Pythons without the fix for CPython gh-115634.
    app = Flask("probe")
    app.config.update(EXECUTOR_TYPE="process", EXECUTOR_POOL_KWARGS={"max_tasks_per_child": 1})
    try:
        Executor(app)
    except (TypeError, ValueError):
        return False
    return True


@fast_path_only
@pytest.mark.skipif(
    not _max_tasks_per_child_is_accepted(),
    reason="max_tasks_per_child is refused on this Python (3.11+ with the gh-115634 fix)",
)
def test_a_worker_started_for_a_job_of_an_idle_pool_is_watched(bind: Bind, tmp_path: Path) -> None:
    # The pool's manager thread watches the workers it knew of when it last woke. Each
    # worker here exits after one job. The pool's probe job, sent when it is built, is
    # the first worker's; the manager thread then starts the second worker, which its
    # initializer holds at the gate; the next job starts the third, in the submitting
    # thread, and that one takes the job and dies under it. The job must have woken the
    # manager thread, or that death goes unseen and its future stays pending for ever.
    # (CPython's own 'submit' wakes it before it starts the worker: so it does not.)
    with Gate() as gate:
        app, executor = bind(
            "forkserver",
            EXECUTOR_MAX_WORKERS=2,
            EXECUTOR_APP_IMPORT=APP_IMPORT,
            EXECUTOR_POOL_KWARGS={
                "mp_context": "forkserver",
                "max_tasks_per_child": 1,
                "initializer": jobs.hold_the_second_worker,
                "initargs": (gate.port, str(tmp_path / "workers")),
            },
        )
        assert executor._state()[1].manager.pool is not None  # built: the probe is sent
        # The second worker starts after the probe's answer has turned the fast path on.
        assert gate.wait_for(1) == ["second worker"]
        with app.app_context():
            crashed = executor.submit(jobs.kill_worker)
            assert isinstance(crashed.exception(RESULT_TIMEOUT), BrokenProcessPool)


class CancelsWhenPickled:
    """An argument whose pickling cancels the job's stored future, from inside ``submit``."""

    def __init__(self, executor: Executor, key: str) -> None:
        self.executor = executor
        self.key = key

    def __reduce__(self) -> tuple[t.Any, ...]:
        assert self.executor.futures.pop(self.key).cancel()
        return (int, (0,))


@fast_path_only
def test_a_job_cancelled_on_its_way_to_an_idle_pool_is_dropped(bind: Bind) -> None:
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    with app.app_context():
        arg = CancelsWhenPickled(executor, "job")
        future = executor.submit_stored("job", jobs.square, arg)
        assert future.cancelled()
        assert executor.submit(jobs.square, 4).result(RESULT_TIMEOUT) == 16
        assert_shutdown_finishes(executor)


def break_after_the_checks(pool: t.Any, monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """Mark ``pool`` broken after a job has passed the pool's checks, before it is sent.

    On Python 3.9 to 3.11 the pool's manager thread marks a pool broken without taking
    the pool's lock, so a job can pass the check for a broken pool just before that.
    """
    start_thread = pool._start_executor_manager_thread

    def start_thread_then_break() -> None:  # called after the checks
        start_thread()
        pool._broken = why

    monkeypatch.setattr(pool, "_start_executor_manager_thread", start_thread_then_break)


@fast_path_only
def test_a_job_whose_idle_pool_breaks_meanwhile_fails_and_the_pool_is_replaced(
    bind: Bind, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The pool breaks while the job is on its way, but before it has closed its call
    # queue: the job is sent, yet the pool will never report on it.
    caplog.set_level(logging.WARNING, "flask_executor")
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    manager = executor._state()[1].manager
    with app.app_context():
        assert executor.submit(jobs.square, 2).result(RESULT_TIMEOUT) == 4
        pool = manager.pool
        break_after_the_checks(pool, monkeypatch, "broken by the test")
        late = executor.submit(jobs.square, 5)
        assert isinstance(late.exception(RESULT_TIMEOUT), BrokenProcessPool)
        assert "broken by the test" in str(late.exception())
        assert executor.submit(jobs.square, 6).result(RESULT_TIMEOUT) == 36
        assert manager.pool is not pool
    [warning] = executor_warnings(caplog)
    assert "broke" in warning.getMessage()
    # The test's pool is in fact healthy: it still has to be shut down.
    monkeypatch.undo()
    pool._broken = False
    pool.shutdown(wait=True)


@fast_path_only
def test_a_job_whose_idle_pool_closed_its_call_queue_meanwhile_fails(
    bind: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Later still: the broken pool has closed its call queue, so the job cannot be sent.
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    manager = executor._state()[1].manager
    with app.app_context():
        crashed = executor.submit(jobs.kill_worker)
        assert isinstance(crashed.exception(RESULT_TIMEOUT), BrokenProcessPool)
        [broken_backend] = manager._broken
        broken = broken_backend.pool
        broken._executor_manager_thread.join(RESULT_TIMEOUT)
        why = broken._broken
        broken._broken = False
        broken._shutdown_thread = False
        break_after_the_checks(broken, monkeypatch, why)
        manager._backend = broken_backend

        late = executor.submit(jobs.square, 5)
        error = late.exception(RESULT_TIMEOUT)
        assert isinstance(error, BrokenProcessPool)
        assert "closed" in str(error.__cause__)
        assert executor.submit(jobs.square, 6).result(RESULT_TIMEOUT) == 36
        assert manager.pool is not broken


@fast_path_only
def test_a_job_that_cannot_start_the_pool_leaves_nothing_behind(
    bind: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Starting the pool's workers or its thread can fail (no memory to fork, too many
    # threads). The job then fails in 'submit', and the pool must not count it among its
    # jobs, or it would wait for it for ever at shutdown.
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    on_the_fast_path(app, executor)
    make_unable_to_start(executor._state()[1].manager.pool, monkeypatch)
    with app.app_context():
        with pytest.raises(OSError, match="temporarily unavailable"):
            executor.submit(jobs.square, 2)
        monkeypatch.undo()
        assert executor.submit(jobs.square, 3).result(RESULT_TIMEOUT) == 9
        assert_shutdown_finishes(executor)


@fast_path_only
def test_a_job_that_cannot_start_a_busy_pool_never_runs(
    bind: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same with another job running: the refused job must not be queued behind it
    # and run later, when its 'submit' has already raised.
    app, executor = bind("fork", EXECUTOR_MAX_WORKERS=1)
    on_the_fast_path(app, executor)
    with app.app_context(), Gate() as gate:
        held = executor.submit(jobs.pass_gate, gate.port, "held")
        assert gate.wait_for(1) == ["held"]
        make_unable_to_start(executor._state()[1].manager.pool, monkeypatch)
        with pytest.raises(OSError, match="temporarily unavailable"):
            executor.submit(jobs.pass_gate, gate.port, "refused")
        monkeypatch.undo()
        gate.open()
        assert held.result(RESULT_TIMEOUT) == "held"
        # Had the refused job been queued, it would now wait at the closed gate, and
        # shutdown would wait for it.
        assert_shutdown_finishes(executor)


def held_worker_and_queue(
    app: Flask, executor: Executor, gate: Gate
) -> tuple[FutureProxy[str], list[FutureProxy[int]]]:
    """One worker, held by a gated job, with ten jobs queued behind it.

    The pool's call queue takes the first two of them; the others wait for the pool.
    """
    with app.app_context():
        running = executor.submit(jobs.pass_gate, gate.port, "running")
        gate.wait_for(1)
        queued = [executor.submit(jobs.square, x) for x in range(10)]
    return running, queued


@pytest.mark.parametrize("config", PATHS)
def test_a_job_cancelled_before_it_is_sent_is_done_at_once(
    bind: Bind, config: dict[str, t.Any]
) -> None:
    app, executor = bind(EXECUTOR_MAX_WORKERS=1, **config)
    with Gate() as gate:
        held, queued = held_worker_and_queue(app, executor, gate)
        assert queued[-1].cancel()
        # Done for 'wait' while the worker is still held, not only once the pool
        # comes to the job.
        done, _ = concurrent.futures.wait([queued[-1]], timeout=RESULT_TIMEOUT)
        assert done == {queued[-1]}
        assert not held.done()
        gate.open()
        assert held.result(RESULT_TIMEOUT) == "running"
    assert [f.result(RESULT_TIMEOUT) for f in queued[:-1]] == [x * x for x in range(9)]
    assert queued[-1].cancelled()
    with app.app_context():
        assert executor.submit(jobs.square, 5).result(RESULT_TIMEOUT) == 25


@pytest.mark.parametrize("config", PATHS)
def test_futures_settled_by_hand_keep_that_outcome_and_the_pool_goes_on(
    bind: Bind, config: dict[str, t.Any], caplog: pytest.LogCaptureFixture
) -> None:
    app, executor = bind(EXECUTOR_MAX_WORKERS=1, **config)
    with Gate() as gate:
        held, queued = held_worker_and_queue(app, executor, gate)
        # One job running, one waiting for the pool: each settled by hand.
        held.set_result("by hand")
        queued[-1].set_exception(ValueError("by hand"))
        gate.open()
        # The pool's own outcomes for them come later and are dropped.
        assert [f.result(RESULT_TIMEOUT) for f in queued[:-1]] == [x * x for x in range(9)]
    assert held.result(0) == "by hand"
    with pytest.raises(ValueError, match="by hand"):
        queued[-1].result(0)
    with app.app_context():
        assert executor.submit(jobs.square, 6).result(RESULT_TIMEOUT) == 36
        # Shutdown waits for the jobs the pool has; none may be left pending for ever.
        executor.shutdown(wait=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- 7. Shutdown -----------------------------------------------------------------------------


POOLS = [
    pytest.param({"EXECUTOR_TYPE": "thread", "EXECUTOR_POOL_KWARGS": None}, id="thread"),
    pytest.param({"EXECUTOR_POOL_KWARGS": {"mp_context": "fork"}}, id="process-fork"),
]


@pytest.mark.parametrize("config", POOLS)
def test_shutdown_waits_for_running_and_queued_jobs(bind: Bind, config: dict[str, t.Any]) -> None:
    app, executor = bind(EXECUTOR_MAX_WORKERS=1, **config)
    with Gate() as gate:
        running, queued = held_worker_and_queue(app, executor, gate)
        opener = threading.Thread(target=gate.open)
        with app.app_context():
            # Let the held job go only once shutdown has begun to wait.
            opener.start()
            executor.shutdown(wait=True)
        opener.join()
    assert running.result(0) == "running"
    assert [f.result(0) for f in queued] == [x * x for x in range(10)]
    with app.app_context(), pytest.raises(RuntimeError, match="has been shut down"):
        executor.submit(jobs.square, 2)
    with app.app_context():
        executor.shutdown(wait=True)  # again: a no-op


@pytest.mark.parametrize("config", POOLS)
def test_shutdown_cancel_futures_cancels_what_has_not_started(
    bind: Bind, config: dict[str, t.Any]
) -> None:
    app, executor = bind(EXECUTOR_MAX_WORKERS=1, **config)
    with Gate() as gate:
        running, queued = held_worker_and_queue(app, executor, gate)

        # The held job may finish only once shutdown has cancelled the queue, so that
        # no queued job can have started in between. A done callback, which runs
        # whoever cancels the job: with CPython's own futures, 'concurrent.futures.wait'
        # never wakes for one that a thread pool's shutdown cancels.
        cancelled = threading.Event()
        queued[-1].add_done_callback(lambda _: cancelled.set())

        def open_when_cancelled() -> None:
            cancelled.wait(10)
            gate.open()

        opener = threading.Thread(target=open_when_cancelled)
        opener.start()
        with app.app_context():
            executor.shutdown(wait=True, cancel_futures=True)
        opener.join()

    assert running.result(0) == "running"
    # A process pool has already handed a job or two to its call queue, as
    # concurrent.futures does; those run. Every other one is cancelled, none is lost.
    handed_over = 0 if config.get("EXECUTOR_TYPE") == "thread" else 2
    for i, future in enumerate(queued):
        assert future.done()
        if i >= handed_over:
            assert future.cancelled(), i
        elif not future.cancelled():
            assert future.result(0) == i * i


@pytest.mark.parametrize("config", POOLS)
def test_shutdown_without_wait_returns_while_a_job_runs(
    bind: Bind, config: dict[str, t.Any]
) -> None:
    app, executor = bind(EXECUTOR_MAX_WORKERS=1, **config)
    with Gate() as gate:
        running, queued = held_worker_and_queue(app, executor, gate)
        with app.app_context():
            executor.shutdown(wait=False, cancel_futures=True)
        # Returned with the job still held at the gate.
        assert not running.done()
        gate.open()
        assert running.result(RESULT_TIMEOUT) == "running"
    assert queued[-1].cancelled()


EXIT_SCRIPT = """
import sys
import time

from flask import Flask, current_app, has_app_context

from flask_executor import Executor


def say(line):
    # One write per line: print() writes the text and the newline separately, and the
    # job's thread could slip its own line in between.
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()


def job():
    say("job started")
    time.sleep(0.5)  # the job's work: still going on when the interpreter exits
    say(f"job finished in app {current_app.name if has_app_context() else None}")


if __name__ == "__main__":
    app = Flask("exit_app")
    app.config["EXECUTOR_TYPE"] = sys.argv[1]
    app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": sys.argv[2]} if sys.argv[2] else None
    app.config["EXECUTOR_APP_IMPORT"] = "exit_app_module:app" if sys.argv[2] else None
    executor = Executor(app)
    with app.app_context():
        executor.submit(job)
    say("main thread done")
"""


@pytest.mark.parametrize(
    ("pool_type", "start_method", "app_name"),
    [("thread", "", "exit_app"), ("process", "fork", "exit_app"), ("process", "spawn", "spawned")],
)
def test_running_jobs_finish_at_interpreter_exit(
    tmp_path: Path, pool_type: str, start_method: str, app_name: str
) -> None:
    (tmp_path / "exit_script.py").write_text(textwrap.dedent(EXIT_SCRIPT))
    # What a spawned worker imports to find the app.
    (tmp_path / "exit_app_module.py").write_text(
        "from flask import Flask\napp = Flask('spawned')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop("FLASK_APP", None)

    completed = subprocess.run(
        [sys.executable, "exit_script.py", pool_type, start_method],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=40,
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert sorted(lines) == sorted(
        ["job started", "main thread done", f"job finished in app {app_name}"]
    ), completed.stderr
    # Nothing about the pools either: a pool freed only while the interpreter tears its
    # modules down has its finalizer fail, with an error printed on every exit.
    assert completed.stderr == ""


_ORPHAN_BREAK_SCRIPT = """
import gc, os, signal, sys, time
from flask import Flask
from flask_executor import Executor

app = Flask("orphan_break")
app.config.update(
    EXECUTOR_TYPE="process",
    EXECUTOR_MAX_WORKERS=1,
    EXECUTOR_POOL_KWARGS={"mp_context": "fork"},
)
executor = Executor(app)
with app.app_context():
    worker = executor.submit(os.getpid).result(30)
    manager_thread = executor.pool._executor_manager_thread
    in_flight = executor.submit(time.sleep, 60)
executor.init_app(app)  # the old binding's pool is shut down without waiting, its manager freed
gc.collect()
os.kill(worker, signal.SIGKILL)
print(type(in_flight.exception(30)).__name__, flush=True)
manager_thread.join(20)
print("manager thread", "hangs" if manager_thread.is_alive() else "ended", flush=True)
# Not a normal exit: a hung manager thread would hang the interpreter's exit too.
os._exit(0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked worker")
@pytest.mark.timeout(60)
def test_a_pool_that_breaks_after_its_binding_was_replaced_lets_its_manager_thread_end() -> None:
    # The old binding's manager is gone, so the in-flight jobs held the last references
    # to the broken pool. The pool's manager thread lets go of them while it holds the
    # pool's lock, and the pool's finalizer takes that lock: on CPython 3.12 and 3.13
    # the thread waited for ever (and so did the interpreter's exit).
    completed = subprocess.run(
        [sys.executable, "-c", _ORPHAN_BREAK_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert completed.stdout.splitlines() == ["BrokenProcessPool", "manager thread ended"], (
        completed.stderr
    )
