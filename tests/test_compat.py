"""Code written for Flask-Executor 1.0 runs unchanged (issue 11, sections 1 and 2).

Each test is a use that 1.0's own tests, Flask-Shell2HTTP or public apps make of 1.0, and
checks that it works as in 1.0, or, where 1.0 was unsafe, that it is now safe. The
deliberate differences are listed in docs/migrating.rst.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import importlib.metadata
import inspect
import os
import threading
import typing as t
import weakref

import flask_executor
import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from flask.globals import _cv_app
from flask_executor import Executor
from flask_sqlalchemy import SQLAlchemy

from apps import process_jobs as jobs

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("compat_request_id")


def echo(*args: t.Any, **kwargs: t.Any) -> tuple[tuple[t.Any, ...], dict[str, t.Any]]:
    return args, kwargs


def g_values() -> dict[str, t.Any]:
    return {name: g.get(name) for name in g}


# -- 1.0's import paths --------------------------------------------------------------------


def test_import_paths_of_1_0_name_todays_objects() -> None:
    from flask_executor.executor import Executor as Executor_1_0
    from flask_executor.executor import ExecutorJob
    from flask_executor.executor import FutureProxy
    from flask_executor.futures import Future

    assert Executor_1_0 is flask_executor.Executor
    assert ExecutorJob is flask_executor.ExecutorJob
    assert FutureProxy is flask_executor.FutureProxy
    assert Future is concurrent.futures.Future


def test_version_is_the_installed_one() -> None:
    assert flask_executor.__version__ == importlib.metadata.version("flask-executor")
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        flask_executor.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_propagate_exceptions_callback_raises_the_jobs_exception(executor: Executor) -> None:
    from flask_executor.executor import propagate_exceptions_callback

    error = KeyError("missing")

    def fail() -> None:
        raise error

    succeeded, failed = executor.submit(pow, 2, 3), executor.submit(fail)
    concurrent.futures.wait([succeeded, failed], timeout=10)
    assert propagate_exceptions_callback(succeeded) is None
    with pytest.raises(KeyError) as info:
        propagate_exceptions_callback(failed)
    assert info.value is error


def test_instance_proxy_stands_in_for_its_object() -> None:
    from flask_executor.helpers import InstanceProxy

    class Labelled(InstanceProxy):
        label = "own"

    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    future.set_result(7)
    proxy = Labelled(future)
    assert isinstance(proxy, concurrent.futures.Future)
    assert isinstance(proxy, Labelled)
    assert type(proxy) is Labelled
    assert proxy._self is future
    # Read from the proxied future, unless the proxy has the attribute itself.
    assert proxy.result() == 7
    assert proxy.label == "own"
    with pytest.raises(AttributeError):
        proxy.no_such_attribute  # noqa: B018
    assert repr(proxy) == f"<Labelled({future!r})>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("True", True), ("t", True), (1, True), ("no", False), ("", False)],
)
def test_str2bool_reads_as_1_0_did(value: object, expected: bool) -> None:
    from flask_executor.helpers import str2bool

    assert str2bool(value) is expected


# -- Keyword calls -------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_submit_with_fn_as_a_keyword(executor: Executor) -> None:
    assert executor.submit(fn=echo, cmd="ls").result(10) == ((), {"cmd": "ls"})


@pytest.mark.timeout(20)
def test_submit_stored_with_keywords_as_flask_shell2http_calls_it(executor: Executor) -> None:
    future = executor.submit_stored(future_key="job-1", fn=echo, cmd="ls -l", timeout=3)
    assert executor.futures.get("job-1") is future
    assert future.result(10) == ((), {"cmd": "ls -l", "timeout": 3})
    # A key first and the function as a keyword, as well.
    assert executor.submit_stored("job-2", fn=echo, n=1).result(10) == ((), {"n": 1})
    assert executor.futures.keys() == ["job-1", "job-2"]


@pytest.mark.timeout(20)
def test_job_submit_stored_with_the_key_as_a_keyword(executor: Executor) -> None:
    @executor.job
    def job(**kwargs: t.Any) -> dict[str, t.Any]:
        return kwargs

    future = job.submit_stored(future_key="k", n=1)
    assert executor.futures.get("k") is future
    assert future.result(10) == {"n": 1}
    # Given first, the key leaves the keyword to the job.
    assert job.submit_stored("k2", future_key="x").result(10) == {"future_key": "x"}
    with pytest.raises(TypeError) as info:
        job.submit_stored(n=1)  # type: ignore[call-overload]
    assert str(info.value) == (
        "'submit_stored' needs a key: pass it as its first argument, or as 'future_key='."
    )


def test_submit_without_a_function_names_what_is_missing(executor: Executor) -> None:
    with pytest.raises(TypeError) as info:
        executor.submit()  # type: ignore[call-overload]
    assert str(info.value) == (
        "'submit' needs the function to run: pass it as its first argument, or as 'fn='."
    )
    with pytest.raises(TypeError) as info:
        executor.submit_stored(fn=echo)
    assert str(info.value) == (
        "'submit_stored' needs a key: pass it as its first argument, or as 'future_key='."
    )
    with pytest.raises(TypeError) as info:
        executor.submit_stored("key")  # type: ignore[call-overload]
    assert str(info.value) == (
        "'submit_stored' needs the function to run: pass it as its second argument, or as 'fn='."
    )
    assert executor.futures.keys() == []


@pytest.mark.timeout(20)
def test_a_key_of_none_by_keyword_is_refused_before_the_job_runs(executor: Executor) -> None:
    # 1.0 stored 'submit_stored(future_key=None, fn=...)' under None; 2.0 refuses the key
    # on purpose (docs/migrating.rst), and the job must not run unstored either.
    ran = threading.Event()
    with pytest.raises(ValueError, match="is None, which cannot be a key"):
        executor.submit_stored(future_key=None, fn=ran.set)
    assert executor.futures.keys() == []
    # Nothing was queued: the pool still runs the next job, and that one alone.
    executor.submit(lambda: None).result(10)
    assert not ran.is_set()


# -- Executor(current_app) -----------------------------------------------------------------


@pytest.mark.timeout(20)
def test_bound_through_current_app(app: Flask) -> None:
    with app.app_context():
        executor = Executor(current_app)
        factory_made = Executor(name="reports")
        factory_made.init_app(current_app)
    try:
        assert app.extensions["executor"] is executor
        assert app.extensions["reportsexecutor"] is factory_made
        # The app itself is bound, not the proxy: it works outside the app context.
        assert repr(executor) == f"<Executor apps=[{app.name!r}]>"
        assert executor.submit(lambda: current_app.name).result(10) == app.name
        assert factory_made.submit(lambda: current_app.name).result(10) == app.name
    finally:
        executor.shutdown()
        factory_made.shutdown()


def test_current_app_outside_an_app_context_fails_as_flask_says() -> None:
    with pytest.raises(RuntimeError, match="Working outside of application context"):
        Executor(current_app)


# -- Binding an app again ------------------------------------------------------------------


def _blocking_job() -> tuple[t.Callable[[], str], threading.Event, threading.Event]:
    started, release = threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        assert release.wait(10)
        return "finished"

    return job, started, release


@pytest.mark.timeout(30)
def test_init_app_again_replaces_the_binding_and_frees_the_old_pool(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 2
    executor = Executor(app)
    job, started, release = _blocking_job()
    running = executor.submit_stored("running", job)
    assert started.wait(10)
    old_pool = executor.pool
    old_threads = list(t.cast(concurrent.futures.ThreadPoolExecutor, old_pool)._threads)
    old_pool_ref = weakref.ref(old_pool)
    del old_pool

    app.config["EXECUTOR_MAX_WORKERS"] = 3
    executor.init_app(app)  # returns while the old pool's job still runs
    assert not running.done()
    assert app.extensions["executor"] is executor
    # The new binding read the config again, and has a pool of its own.
    assert executor.max_workers == 3
    assert executor.pool is not old_pool_ref()
    assert executor.submit(lambda: current_app.name).result(10) == app.name
    # The stored future of the old binding can still be fetched, and it settles.
    assert executor.futures.get("running") is running
    release.set()
    assert running.result(10) == "finished"
    # Once its job is done, the old pool is let go of, and its workers end.
    for thread in old_threads:
        thread.join(10)
        assert not thread.is_alive()
    gc.collect()
    assert old_pool_ref() is None
    executor.shutdown()


@pytest.mark.timeout(60)
# Python 3.12+ warns when fork forks a process that runs threads; fork is chosen here
# because the worker then has the test's modules without importing them.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_init_app_again_lets_a_process_pools_job_finish(app: Flask) -> None:
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": "fork"}
    executor = Executor(app)
    with jobs.Gate() as gate:
        running = executor.submit(jobs.pass_gate, gate.port, "old")
        assert gate.wait_for(1) == ["old"]
        old_pool_ref = weakref.ref(executor.pool)
        executor.init_app(app)  # returns while the job is held in the old pool's worker
        assert not running.done()
        assert executor.submit(jobs.square, 3).result(30) == 9
        gate.open()
        assert running.result(30) == "old"
    old_pool = old_pool_ref()
    if old_pool is not None:  # its manager thread may still hold it, letting its worker go
        manager_thread = t.cast(t.Any, old_pool)._executor_manager_thread
        del old_pool
        if manager_thread is not None:
            manager_thread.join(30)
    gc.collect()
    assert old_pool_ref() is None
    executor.shutdown()


class _KeyThatWaits:
    """A key whose hash, read by the thread it is armed for, says so and waits: from
    the ``wait_at``-th time that thread reads it."""

    def __init__(self, wait_at: int = 1) -> None:
        self.armed_for: threading.Thread | None = None
        self.wait_at = wait_at
        self.reads = 0
        self.read = threading.Event()
        self.proceed = threading.Event()

    def __hash__(self) -> int:
        if threading.current_thread() is self.armed_for:
            self.reads += 1
            if self.reads >= self.wait_at:
                self.read.set()
                assert self.proceed.wait(10)
        return 1

    def __eq__(self, other: object) -> bool:
        return self is other


@pytest.mark.timeout(30)
def test_a_job_stored_while_the_app_is_bound_again_stays_stored(app: Flask) -> None:
    executor = Executor(app)
    key = _KeyThatWaits()
    executor.submit_stored(key, echo).result(10)
    futures = executor.futures

    def bind_again() -> None:
        try:
            executor.init_app(app)
        finally:
            key.read.set()

    thread = threading.Thread(target=bind_again)
    key.armed_for = thread  # an 'init_app' that reads the stored keys waits there
    thread.start()
    assert key.read.wait(10)
    # A request stores a job meanwhile, through the old binding if it is still current.
    late = executor.submit_stored("late", echo, n=1)
    key.proceed.set()
    thread.join(10)
    assert not thread.is_alive()
    assert late.result(10) == ((), {"n": 1})
    assert executor.futures.get("late") is late
    assert executor.futures.get(key) is not None
    # One collection whatever 'init_app' does, as in 1.0.
    assert executor.futures is futures
    executor.shutdown()


@pytest.mark.timeout(30)
def test_a_job_submitted_while_the_app_is_bound_again_runs(app: Flask) -> None:
    executor = Executor(app)
    # 'submit_stored' reads the key's hash once to check it, then again to store it,
    # after it has taken the current binding: the second read waits.
    key = _KeyThatWaits(wait_at=2)
    submitted: list[concurrent.futures.Future[t.Any]] = []

    def submit() -> None:
        submitted.append(executor.submit_stored(key, echo, n=2))

    thread = threading.Thread(target=submit)
    key.armed_for = thread
    thread.start()
    assert key.read.wait(10)
    old_pool = executor.pool
    executor.init_app(app)  # shuts the pool down that the waiting submit took
    key.proceed.set()
    thread.join(10)
    assert not thread.is_alive()
    (future,) = submitted  # not a RuntimeError: the job went to the new binding
    assert future.result(10) == ((), {"n": 2})
    assert executor.futures.get(key) is future
    assert executor.pool is not old_pool
    executor.shutdown()


@pytest.mark.timeout(30)
def test_init_app_again_with_another_bound_keeps_the_stored_futures(app: Flask) -> None:
    executor = Executor(app)
    stored = executor.submit_stored("k", echo)
    app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = 3
    executor.init_app(app)
    assert executor.futures.max_length == 3
    assert executor.futures.get("k") is stored
    assert stored.result(10) == ((), {})
    executor.shutdown()


@pytest.mark.timeout(30)
def test_init_app_again_while_jobs_are_queued(app: Flask) -> None:
    # The old pool is shut down without cancelling: queued jobs still run.
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    job, started, release = _blocking_job()
    running = executor.submit(job)
    assert started.wait(10)
    queued = executor.submit(lambda: "queued")
    executor.init_app(app)
    release.set()
    assert running.result(10) == "finished"
    assert queued.result(10) == "queued"
    executor.shutdown()


@pytest.mark.timeout(30)
def test_another_executor_of_the_same_name_takes_over(app: Flask) -> None:
    first = Executor(app)
    job, started, release = _blocking_job()
    running = first.submit(job)
    assert started.wait(10)
    first_pool_ref = weakref.ref(first.pool)
    first_threads = list(t.cast(concurrent.futures.ThreadPoolExecutor, first.pool)._threads)

    second = Executor(app)
    assert app.extensions["executor"] is second
    assert second.pool is not first_pool_ref()
    # As in 1.0, the first executor keeps working, on its own pool.
    assert first.submit(lambda: current_app.name).result(10) == app.name

    # Nothing of the app keeps the first executor: dropped, it and its pool are freed
    # once the job that runs there has finished, and its workers end.
    first_ref = weakref.ref(first)
    del first
    release.set()
    assert running.result(10) == "finished"
    for thread in first_threads:
        thread.join(10)
        assert not thread.is_alive()
    gc.collect()
    assert first_ref() is None
    assert first_pool_ref() is None
    second.shutdown()


# -- A concurrent.futures.Executor --------------------------------------------------------


class _RecordingPool(concurrent.futures.ThreadPoolExecutor):
    shutdowns: t.ClassVar[list[bool]] = []

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        type(self).shutdowns.append(wait)
        super().shutdown(wait=wait, cancel_futures=cancel_futures)


def test_is_a_concurrent_futures_executor(executor: Executor) -> None:
    assert isinstance(executor, concurrent.futures.Executor)


@pytest.mark.parametrize("method", ["submit", "map", "shutdown"])
def test_methods_take_every_call_the_base_class_takes(method: str) -> None:
    # Checked on the running Python: its base class is the one code is written against
    # (Python 3.14 adds 'buffersize' to 'map', which this executor has as well).
    base = inspect.signature(getattr(concurrent.futures.Executor, method)).parameters
    ours = inspect.signature(getattr(Executor, method)).parameters
    for name, param in base.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            assert any(p.kind == param.kind for p in ours.values()), name
            continue
        assert name in ours, name
        assert ours[name].kind == param.kind, name
        if param.default is not param.empty:
            assert ours[name].default == param.default, name
    # What the base class lacks must be optional.
    for name, param in ours.items():
        if name not in base and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            assert param.default is not param.empty, name


@pytest.mark.timeout(20)
def test_with_block_shuts_down_and_waits(app: Flask) -> None:
    _RecordingPool.shutdowns = []
    app.config["EXECUTOR_TYPE"] = "custom"
    app.config["EXECUTOR_POOL_CLASS"] = _RecordingPool
    with Executor(app) as executor:
        assert isinstance(executor, Executor)
        future = executor.submit(lambda: current_app.name)
    assert _RecordingPool.shutdowns == [True]
    assert future.result(0) == app.name
    with pytest.raises(RuntimeError, match="has been shut down"):
        executor.submit(echo)


@pytest.mark.timeout(20)
def test_loop_run_in_executor(app: Flask, executor: Executor) -> None:
    async def main() -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            executor, lambda: (current_app.name, has_request_context())
        )

    assert asyncio.run(main()) == (app.name, False)


# -- pool and max_workers ------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_pool_is_the_pool_that_runs_the_jobs(executor: Executor) -> None:
    pool = executor.pool  # built here: no job has run yet
    assert type(pool) is concurrent.futures.ThreadPoolExecutor
    assert executor.pool is pool
    worker = executor.submit(threading.current_thread).result(10)
    assert worker in pool._threads


def test_pool_of_a_process_executor(app: Flask) -> None:
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_MAX_WORKERS"] = 2
    executor = Executor(app)
    assert type(executor.pool) is concurrent.futures.ProcessPoolExecutor
    assert executor.max_workers == 2
    executor.shutdown()


def test_max_workers_configured_or_chosen_by_the_pool(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 3
    configured = Executor(app)
    default = Executor(app, name="default")
    try:
        assert configured.max_workers == 3
        assert default.max_workers == default.pool._max_workers  # type: ignore[attr-defined]
        assert default.max_workers == concurrent.futures.ThreadPoolExecutor()._max_workers
    finally:
        configured.shutdown()
        default.shutdown()
    # A shut-down pool without a configured number has nothing to say.
    assert default.max_workers is None
    assert configured.max_workers == 3


def test_pool_and_max_workers_are_per_app() -> None:
    executor = Executor()
    one, two = Flask("one"), Flask("two")
    one.config["EXECUTOR_MAX_WORKERS"] = 1
    two.config["EXECUTOR_MAX_WORKERS"] = 2
    executor.init_app(one)
    executor.init_app(two)
    for app, expected in ((one, 1), (two, 2)):
        with app.app_context():
            assert executor.max_workers == expected
            assert executor.pool._max_workers == expected  # type: ignore[attr-defined]
            executor.shutdown()


def test_pool_after_shutdown(executor: Executor) -> None:
    executor.shutdown()
    with pytest.raises(RuntimeError, match="has been shut down"):
        executor.pool  # noqa: B018


# -- 1.0's private attributes, deprecated ---------------------------------------------------


def test_private_attributes_of_1_0_warn_and_still_work(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    executor = Executor(app)
    with pytest.warns(DeprecationWarning, match=r"'executor\._self'.*use 'executor\.pool'"):
        pool = executor._self
    assert pool is executor.pool
    with pytest.warns(
        DeprecationWarning, match=r"'executor\._max_workers'.*use 'executor\.max_workers'"
    ):
        assert executor._max_workers == 4
    with pytest.warns(DeprecationWarning, match=r"'executor\._shutdown'") as record:
        before = executor._shutdown
        executor.shutdown()
        after = executor._shutdown
    assert (before, after) == (False, True)
    # The warning points at the code that read the attribute.
    assert {warning.filename for warning in record} == {__file__}


# -- EXECUTOR_PUSH_APP_CONTEXT = False --------------------------------------------------------


@pytest.fixture
def no_push(app: Flask) -> t.Iterator[Executor]:
    app.config["EXECUTOR_PUSH_APP_CONTEXT"] = False
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    executor = Executor(app)
    yield executor
    executor.shutdown()


@pytest.mark.timeout(30)
def test_no_push_jobs_never_share_g_with_the_view_or_each_other(
    app: Flask, no_push: Executor
) -> None:
    # Four jobs at once, each setting 'g.n' and reading it back after all have set
    # theirs: with one 'g' between them (the view's), they would read each other's.
    barrier = threading.Barrier(4, timeout=10)

    def job(n: int) -> tuple[int, bool]:
        g.n = n
        barrier.wait()
        return g.n, _cv_app.get() is view_context

    with app.test_request_context("/"):
        g.user = "ada"
        view_context = _cv_app.get()
        futures = [no_push.submit(job, n) for n in range(4)]
        assert [future.result(10) for future in futures] == [(n, False) for n in range(4)]
        assert g_values() == {"user": "ada"}


@pytest.mark.timeout(30)
def test_no_push_teardown_runs_per_job_in_a_request(app: Flask, no_push: Executor) -> None:
    teardowns: list[tuple[int, BaseException | None]] = []
    app.teardown_appcontext(lambda exc: teardowns.append((threading.get_ident(), exc)))
    error = ValueError("job failed")

    def fail() -> None:
        raise error

    with app.test_request_context("/report?id=7"):
        ok = no_push.submit(lambda: (request.args["id"], threading.get_ident()))
        request_arg, ok_thread = ok.result(10)
        failed = no_push.submit(fail)
        assert failed.exception(10) is error
        # Each job's app context was torn down in its worker, with its exception; the
        # view's is still pushed.
        assert teardowns[0] == (ok_thread, None)
        assert teardowns[1][1] is error
        assert len(teardowns) == 2
        assert request_arg == "7"
    assert teardowns[2] == (threading.get_ident(), None)


@pytest.mark.timeout(30)
def test_no_push_outside_a_request_runs_without_the_callers_app_context(
    app: Flask, no_push: Executor
) -> None:
    teardowns: list[int] = []
    app.teardown_appcontext(lambda exc: teardowns.append(threading.get_ident()))

    def job() -> tuple[bool, bool, str | None]:
        return has_app_context(), has_request_context(), request_id.get(None)

    with app.app_context():
        g.user = "ada"
        token = request_id.set("req-1")
        try:
            assert no_push.submit(job).result(10) == (False, False, "req-1")
            assert list(no_push.map(lambda _: job(), range(3))) == [(False, False, "req-1")] * 3
        finally:
            request_id.reset(token)
        # No job had an app context to tear down, and none touched the caller's.
        assert teardowns == []
        assert g_values() == {"user": "ada"}
    assert teardowns == [threading.get_ident()]


@pytest.mark.timeout(30)
def test_no_push_callbacks_never_see_the_callers_app_context(app: Flask, no_push: Executor) -> None:
    seen: list[bool] = []
    done = threading.Event()

    def callback(_: concurrent.futures.Future[t.Any]) -> None:
        seen.append(has_app_context() and _cv_app.get() is caller_context)
        done.set()

    no_push.add_default_done_callback(callback)
    with app.app_context():
        caller_context = _cv_app.get()
        no_push.submit(echo).result(10)
        assert done.wait(10)
    assert seen == [False]


@pytest.mark.timeout(60)
def test_no_push_process_job_gets_nothing_its_callback_gets_the_request(app: Flask) -> None:
    # As docs/process-pools.rst says: the job in the worker gets no Flask context, while
    # its callbacks run here, with what a thread pool's job would get.
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_PUSH_APP_CONTEXT"] = False
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    seen: list[tuple[bool, str | None, bool]] = []
    done = threading.Event()

    def callback(_: concurrent.futures.Future[t.Any]) -> None:
        path = request.path if has_request_context() else None
        seen.append((has_app_context(), path, _cv_app.get(None) is caller_context))
        done.set()

    try:
        with app.test_request_context("/report"):
            caller_context = _cv_app.get()
            future = executor.submit(jobs.context_report)
            future.add_done_callback(callback)
            report = future.result(30)
            assert done.wait(10)
        assert (report["has_request_context"], report["g"]) == (False, None)
        assert report["pid"] != os.getpid()
        assert seen == [(True, "/report", False)]
    finally:
        executor.shutdown()


@pytest.mark.timeout(30)
def test_no_push_jobs_get_their_own_database_session(app: Flask, tmp_path: t.Any) -> None:
    app.config["EXECUTOR_PUSH_APP_CONTEXT"] = False
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'compat.db'}"
    db = SQLAlchemy(app)
    executor = Executor(app)
    try:
        with app.test_request_context("/"):
            view_session = db.session()

            def job() -> tuple[bool, int]:
                return db.session() is view_session, db.session.execute(db.text("select 1")).one()[
                    0
                ]

            assert executor.submit(job).result(10) == (False, 1)
            assert db.session() is view_session
    finally:
        executor.shutdown()
        with app.app_context():
            db.engine.dispose()


# -- The one bound app, under another app's context ----------------------------------------


@pytest.mark.timeout(20)
def test_the_only_bound_app_is_used_under_another_apps_context(
    app: Flask, executor: Executor
) -> None:
    other = Flask("other")
    with other.test_request_context("/elsewhere"):
        g.secret = "other's"
        future = executor.submit_stored("key", lambda: (current_app.name, g_values()))
        # The job runs in the bound app's context; the other app's 'g' is not its own.
        assert future.result(10) == (app.name, {})
        assert executor.futures.get("key") is future
        assert list(executor.map(lambda _: current_app.name, range(2))) == [app.name] * 2
    with app.app_context():
        assert executor.futures.get("key") is future
