"""The Executor extension: binding to apps, the concurrent.futures API, failures in the log.

Issue 2, behaviour items 1 (creating the executor), 3 (the API) and 9 (failures are not
silent).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import typing as t

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask_executor import Executor
from flask_executor import ExecutorJob
from flask_executor import FutureProxy

# -- Creating the executor -----------------------------------------------------------------


def make_app(name: str, **config: t.Any) -> Flask:
    app = Flask(name)
    app.config.update(config)
    return app


@pytest.fixture
def shut_down() -> t.Iterator[list[tuple[Flask, Executor]]]:
    """(app, executor) pairs to shut down at the end of the test, each in its app."""
    pairs: list[tuple[Flask, Executor]] = []
    yield pairs
    for app, executor in pairs:
        with app.app_context():
            executor.shutdown(wait=True)


def test_executor_with_app(app: Flask) -> None:
    executor = Executor(app)
    assert app.extensions["executor"] is executor
    assert executor.submit(lambda: current_app.name).result(10) == app.name
    executor.shutdown()


def test_executor_then_init_app(app: Flask) -> None:
    executor = Executor()
    assert "executor" not in app.extensions
    executor.init_app(app)
    assert app.extensions["executor"] is executor
    assert executor.submit(lambda: current_app.name).result(10) == app.name
    executor.shutdown()


def test_named_executor_extension_key(app: Flask, shut_down: list[tuple[Flask, Executor]]) -> None:
    default = Executor(app)
    reports = Executor(app, name="reports")
    mail = Executor(name="mail")
    mail.init_app(app)
    shut_down.extend([(app, default), (app, reports), (app, mail)])
    assert app.extensions == {
        "executor": default,
        "reportsexecutor": reports,
        "mailexecutor": mail,
    }
    assert (default.name, reports.name, mail.name) == ("", "reports", "mail")


def test_repr() -> None:
    executor = Executor()
    named = Executor(name="reports")
    # Before init_app: 1.0 raised AttributeError here.
    assert repr(executor) == "<Executor apps=[]>"
    assert repr(named) == "<Executor 'reports' apps=[]>"
    one, two = make_app("one"), make_app("two")
    executor.init_app(one)
    executor.init_app(two)
    named.init_app(one)
    assert repr(executor) == "<Executor apps=['one', 'two']>"
    assert repr(named) == "<Executor 'reports' apps=['one']>"


def test_job_decorator_before_init_app() -> None:
    executor = Executor()

    @executor.job
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert isinstance(double, ExecutorJob)
    assert double(4) == 8
    app = make_app("late")
    executor.init_app(app)
    assert double.submit(5).result(10) == 10
    executor.shutdown()


# -- One executor, several apps ------------------------------------------------------------


@pytest.fixture
def two_apps() -> t.Iterator[tuple[Executor, Flask, Flask]]:
    executor = Executor()
    one = make_app(
        "one", EXECUTOR_POOL_KWARGS={"thread_name_prefix": "one"}, EXECUTOR_FUTURES_MAX_LENGTH=5
    )
    two = make_app(
        "two", EXECUTOR_POOL_KWARGS={"thread_name_prefix": "two"}, EXECUTOR_FUTURES_MAX_LENGTH=7
    )
    executor.init_app(one)
    executor.init_app(two)
    yield executor, one, two
    for app in (one, two):
        with app.app_context():
            executor.shutdown()


def _where() -> tuple[str, str]:
    return current_app.name, threading.current_thread().name.split("_")[0]


def test_each_app_has_its_own_pool_config_and_futures(
    two_apps: tuple[Executor, Flask, Flask],
) -> None:
    executor, one, two = two_apps
    assert one.extensions["executor"] is two.extensions["executor"] is executor
    for app in (one, two):
        with app.app_context():
            # The job runs on the app's own pool, in the app's own context.
            assert executor.submit(_where).result(10) == (app.name, app.name)
            assert list(executor.map(lambda _: _where(), range(3))) == [(app.name, app.name)] * 3
            executor.submit_stored(f"{app.name}-key", _where).result(10)
    with one.app_context():
        assert executor.futures.keys() == ["one-key"]
        assert executor.futures.max_length == 5
    with two.test_request_context("/"):
        assert executor.futures.keys() == ["two-key"]
        assert executor.futures.max_length == 7


def test_shutdown_is_per_app(two_apps: tuple[Executor, Flask, Flask]) -> None:
    executor, one, two = two_apps
    with one.app_context():
        executor.shutdown()
        with pytest.raises(RuntimeError):
            executor.submit(_where)
    with two.app_context():
        assert executor.submit(_where).result(10) == ("two", "two")


def test_only_app_is_used_without_an_app_context(app: Flask, executor: Executor) -> None:
    assert executor.submit(lambda: current_app.name).result(10) == app.name
    future = executor.submit_stored("key", lambda: current_app.name)
    assert executor.futures.result("key", timeout=10) == app.name
    assert future.result() == app.name


def test_several_apps_and_no_app_context(two_apps: tuple[Executor, Flask, Flask]) -> None:
    executor, _, _ = two_apps
    message = (
        "The executor 'executor' is bound to 2 apps and no app context is active to choose"
        " one. Use it inside a view, or inside 'with app.app_context():'."
    )
    for use in (
        lambda: executor.submit(_where),
        lambda: executor.submit_stored("k", _where),
        lambda: executor.map(str, [1]),
        lambda: executor.futures,
        lambda: executor.shutdown(),
    ):
        with pytest.raises(RuntimeError) as info:
            use()
        assert str(info.value) == message


def test_app_context_of_an_unbound_app(two_apps: tuple[Executor, Flask, Flask]) -> None:
    # Bound to one app, the executor would use it (see test_compat.py); of two, the
    # current app context must choose.
    executor, _, _ = two_apps
    other = make_app("other")
    with other.app_context(), pytest.raises(RuntimeError) as info:
        executor.submit(_where)
    assert str(info.value) == (
        "The executor 'executor' is bound to 2 apps, and the app 'other' of the current"
        " app context is not one of them. Did you forget to call 'executor.init_app(app)'?"
    )


def test_not_bound_to_any_app() -> None:
    executor = Executor(name="reports")
    for use in (lambda: executor.submit(_where), lambda: executor.futures):
        with pytest.raises(RuntimeError) as info:
            use()
        assert str(info.value) == (
            "The executor 'reportsexecutor' is not bound to any app. Call"
            " 'executor.init_app(app)' first."
        )


# -- submit, submit_stored, map ------------------------------------------------------------


def echo(*args: t.Any, **kwargs: t.Any) -> tuple[tuple[t.Any, ...], dict[str, t.Any]]:
    return args, kwargs


def test_submit(executor: Executor) -> None:
    future = executor.submit(echo, 1, 2, key="value")
    assert isinstance(future, FutureProxy)
    assert future.result(10) == ((1, 2), {"key": "value"})


def test_submit_keyword_named_like_its_parameters(executor: Executor) -> None:
    # Given first, 'fn' and 'future_key' leave their names to the job's own arguments.
    assert executor.submit(echo, fn="f", self="s").result(10) == ((), {"fn": "f", "self": "s"})
    future = executor.submit_stored("k", echo, future_key="x", fn="f")
    assert future.result(10) == ((), {"future_key": "x", "fn": "f"})


def test_submit_exception_is_the_jobs_own(executor: Executor) -> None:
    error = LookupError("nope")

    def fail() -> None:
        raise error

    future = executor.submit(fail)
    with pytest.raises(LookupError) as info:
        future.result(10)
    assert info.value is error
    assert future.exception() is error


def test_submit_stored(executor: Executor) -> None:
    future = executor.submit_stored("power", pow, 3, 4)
    assert executor.futures.get("power") is future
    assert future.result(10) == 81
    assert executor.futures.done("power") is True
    assert executor.futures.pop("power") is future
    assert "power" not in executor.futures


def test_submit_stored_duplicate_key_does_not_run_the_job(executor: Executor) -> None:
    release = threading.Event()
    first = executor.submit_stored("report", release.wait, 10)
    ran = threading.Event()
    with pytest.raises(ValueError) as info:
        executor.submit_stored("report", ran.set)
    assert str(info.value) == (
        "A future is already stored under the key 'report'. Pop it first, or choose another key."
    )
    release.set()
    assert first.result(10) is True
    executor.shutdown(wait=True)
    assert not ran.is_set()
    assert executor.futures.get("report") is first


NONE_KEY = (
    "The key given to 'submit_stored' is None, which cannot be a key: the future could not"
    " be fetched by it. Use a string, a number or another hashable value, as in"
    " executor.submit_stored('report', make_report)."
)


def _unhashable(key: str, kind: str) -> str:
    return (
        f"The key given to 'submit_stored' is {key}, which is not hashable ({kind!r}), so"
        " futures cannot be stored under it. Use a string, a number or a tuple, as in"
        " executor.submit_stored('report', make_report)."
    )


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        pytest.param(None, ValueError, NONE_KEY, id="None"),
        pytest.param(["a"], TypeError, _unhashable("['a']", "list"), id="list"),
        pytest.param({"a": 1}, TypeError, _unhashable("{'a': 1}", "dict"), id="dict"),
        pytest.param(("a", []), TypeError, _unhashable("('a', [])", "tuple"), id="tuple-of-list"),
    ],
)
@pytest.mark.parametrize("through", ["executor", "job"])
def test_submit_stored_refuses_a_bad_key_before_the_job_runs(
    executor: Executor, key: t.Any, error: type[Exception], message: str, through: str
) -> None:
    # A key of None used to run the job and store nothing; an unhashable one failed with
    # Python's bare "unhashable type". Either way the job must not run.
    ran = threading.Event()
    with pytest.raises(error) as info:
        if through == "executor":
            executor.submit_stored(key, ran.set)
        else:
            executor.job(ran.set).submit_stored(key)
    assert str(info.value) == message
    executor.shutdown(wait=True)
    assert not ran.is_set()
    assert len(executor.futures) == 0


@pytest.mark.timeout(30)
def test_a_thread_pool_whose_initializer_raised_is_replaced(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # CPython's thread pool is broken for good once an initializer raises: the jobs it
    # holds fail and every later submit raises BrokenThreadPool. A new pool takes over.
    calls: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def initializer() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            # Held until a second job is queued, so that the break fails that one too.
            entered.set()
            release.wait(10)
            raise RuntimeError("the first worker cannot start")

    app.config["EXECUTOR_MAX_WORKERS"] = 1
    app.config["EXECUTOR_POOL_KWARGS"] = {"initializer": initializer}
    executor = Executor(app)
    try:
        with caplog.at_level(logging.WARNING, logger="flask_executor"):
            first = executor.submit(pow, 2, 3)
            assert entered.wait(10)
            second = executor.submit(pow, 2, 4)
            release.set()
            for failed in (first, second):
                exc = failed.exception(10)
                assert isinstance(exc, concurrent.futures.thread.BrokenThreadPool)
            # The next jobs run on a new pool, whose initializer succeeds.
            assert executor.submit(pow, 2, 5).result(10) == 32
            assert executor.submit_stored("k", pow, 2, 6).result(10) == 64
        assert len(calls) == 2
        warnings = [r.getMessage() for r in caplog.records if r.name == "flask_executor"]
        assert warnings == [
            "The pool of the executor 'executor' of app 'flask_executor_test' broke (a"
            " worker thread's initializer raised). The jobs queued then failed; a new pool"
            " will run the next jobs."
        ]
    finally:
        release.set()
        executor.shutdown(wait=True)


@pytest.mark.timeout(30)
def test_a_callback_of_a_job_that_a_broken_thread_pool_failed_can_submit(app: Flask) -> None:
    # CPython's worker whose initializer raised fails the queued jobs while it holds the
    # pool's shutdown lock, so their done callbacks run under it. A callback that submits
    # the next job must get a new pool, not wait for that lock (it waited for ever on the
    # thread fast path, where nothing replaced the pool before the callbacks ran).
    calls: list[str] = []
    entered, release, busy = threading.Event(), threading.Event(), threading.Event()

    def initializer() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            # The pool's second worker: held until a job waits in the queue behind a
            # running one, then it breaks the pool.
            entered.set()
            release.wait(10)
            raise RuntimeError("the second worker cannot start")

    resubmitted: list[FutureProxy[int]] = []
    submitted = threading.Event()

    def submit_next(_: concurrent.futures.Future[int]) -> None:
        resubmitted.append(executor.submit(pow, 2, 7))
        submitted.set()

    app.config["EXECUTOR_MAX_WORKERS"] = 2
    app.config["EXECUTOR_POOL_KWARGS"] = {"initializer": initializer}
    executor = Executor(app)
    try:
        with app.app_context():
            # The first job also lets the pool's fast-path probe answer, where there is one.
            assert executor.submit(pow, 2, 3).result(10) == 8
            executor.submit(busy.wait, 10)
            queued = executor.submit(pow, 2, 4)
            assert entered.wait(10)
            queued.add_done_callback(submit_next)
            release.set()
            assert isinstance(queued.exception(10), concurrent.futures.thread.BrokenThreadPool)
            assert submitted.wait(10)
            assert resubmitted[0].result(10) == 128
    finally:
        release.set()
        busy.set()
        executor.shutdown(wait=True)


def test_map(executor: Executor) -> None:
    assert list(executor.map(pow, [2, 3, 4], [2, 2, 2])) == [4, 9, 16]
    assert list(executor.map(str, [])) == []


def test_map_timeout(executor: Executor) -> None:
    release = threading.Event()
    results = executor.map(release.wait, [10], timeout=0.01)
    with pytest.raises(concurrent.futures.TimeoutError):
        next(iter(results))
    release.set()


@pytest.mark.parametrize("chunksize", [1, 3, 100])
def test_map_chunksize(executor: Executor, chunksize: int) -> None:
    # Thread pools ignore chunksize, as concurrent.futures does; the results are the same.
    assert list(executor.map(abs, range(-5, 5), chunksize=chunksize)) == [
        abs(i) for i in range(-5, 5)
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"chunksize": 0},
            "'chunksize' must be a whole number of at least 1, not 0.",
            id="chunksize-0",
        ),
        pytest.param(
            {"chunksize": "2"},
            "'chunksize' must be a whole number of at least 1, not '2'.",
            id="chunksize-str",
        ),
        pytest.param(
            {"buffersize": 0},
            "'buffersize' must be None or a whole number of at least 1, not 0.",
            id="buffersize-0",
        ),
    ],
)
def test_map_invalid_arguments(executor: Executor, kwargs: dict[str, t.Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        executor.map(str, [1], **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "not_callable",
    [pytest.param(None, id="None"), pytest.param("print", id="str"), pytest.param(42, id="int")],
)
def test_non_callable_fails_in_the_caller(executor: Executor, not_callable: t.Any) -> None:
    with pytest.raises(TypeError) as info:
        executor.submit(not_callable)
    assert str(info.value) == (
        f"The job given to 'submit' must be callable, but got {not_callable!r}. Pass the"
        " function itself, as in executor.submit(send_mail, address)."
    )
    with pytest.raises(TypeError):
        executor.submit_stored("key", not_callable)
    assert "key" not in executor.futures
    with pytest.raises(TypeError) as info:
        executor.map(not_callable, [1, 2])
    assert str(info.value) == (
        f"The job given to 'map' must be callable, but got {not_callable!r}. Pass the"
        " function itself, as in executor.map(resize, paths)."
    )
    with pytest.raises(TypeError) as info:
        executor.job(not_callable)
    assert str(info.value) == f"'@executor.job' must decorate a function, not {not_callable!r}."


# -- @executor.job -------------------------------------------------------------------------


def test_job_wrapper(app: Flask, executor: Executor) -> None:
    @executor.job
    def power(base: int, exponent: int = 2) -> int:
        """Raise base to exponent."""
        return int(base**exponent)

    # Still the plain function.
    assert power(3) == 9
    assert power(2, exponent=5) == 32
    assert power.__name__ == "power"
    assert power.__doc__ == "Raise base to exponent."
    assert repr(power) == f"<ExecutorJob {__name__}.test_job_wrapper.<locals>.power>"
    # And a job.
    assert power.submit(3, exponent=3).result(10) == 27
    stored = power.submit_stored("cube", 4, 3)
    assert executor.futures.get("cube") is stored
    assert stored.result(10) == 64
    assert list(power.map([1, 2, 3], [3, 3, 3])) == [1, 8, 27]
    assert list(power.map(range(4), timeout=10, chunksize=2)) == [0, 1, 4, 9]


def test_job_wrapper_runs_with_contexts(app: Flask, executor: Executor) -> None:
    @executor.job
    def who() -> tuple[str, str]:
        return current_app.name, g.user

    with app.test_request_context("/"):
        g.user = "ada"
        assert who.submit().result(10) == (app.name, "ada")


def test_job_wrapper_keyword_named_like_its_parameters(executor: Executor) -> None:
    @executor.job
    def keywords(**kwargs: t.Any) -> dict[str, t.Any]:
        return kwargs

    assert keywords.submit(self=1).result(10) == {"self": 1}
    assert keywords.submit_stored("k", future_key=2).result(10) == {"future_key": 2}


# -- Default done callbacks ----------------------------------------------------------------


def test_add_default_done_callback(app: Flask, executor: Executor) -> None:
    seen: list[object] = []
    lock = threading.Lock()

    def remember(future: concurrent.futures.Future[t.Any]) -> None:
        with lock:
            seen.append(future.result())

    before = executor.submit(str, "before")
    before.result(10)
    executor.add_default_done_callback(remember)

    @executor.job
    def ident(x: object) -> object:
        return x

    futures = [
        executor.submit(ident, "submit"),
        executor.submit_stored("key", ident, "stored"),
        ident.submit("job"),
        ident.submit_stored("job-key", "job-stored"),
    ]
    mapped = list(executor.map(ident, ["map-1", "map-2"]))
    concurrent.futures.wait(futures, timeout=10)
    # Callbacks run in the worker after the result is set; the pool is done with every
    # job (and its callbacks) once shutdown(wait=True) returns.
    executor.shutdown(wait=True)
    assert mapped == ["map-1", "map-2"]
    assert sorted(t.cast(list[str], seen)) == sorted(
        ["submit", "stored", "job", "job-stored", "map-1", "map-2"]
    )


def test_several_default_callbacks_run_in_order(executor: Executor) -> None:
    order: list[str] = []
    executor.add_default_done_callback(lambda f: order.append("first"))
    executor.add_default_done_callback(lambda f: order.append("second"))
    executor.submit(int).result(10)
    executor.shutdown(wait=True)
    assert order == ["first", "second"]


def test_default_callback_exception_is_logged_not_raised(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(future: concurrent.futures.Future[t.Any]) -> None:
        raise ValueError("callback broke")

    executor.add_default_done_callback(broken)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        assert executor.submit(str, 5).result(10) == "5"
        executor.shutdown(wait=True)
    assert [repr(r.exc_info[1]) for r in caplog.records if r.exc_info] == [
        "ValueError('callback broke')"
    ]


def test_default_done_callback_must_be_callable(executor: Executor) -> None:
    with pytest.raises(TypeError) as info:
        executor.add_default_done_callback("log")  # type: ignore[arg-type]
    assert str(info.value) == "The default done callback must be callable, not 'log'."


# -- shutdown ------------------------------------------------------------------------------

SHUT_DOWN = (
    "The executor 'executor' of app 'flask_executor_test' has been shut down, so it cannot run"
    " new jobs."
)


def _release_unless_returned(returned: threading.Event, release: threading.Event) -> None:
    # Lets a blocked job go if shutdown has not returned by then. A shutdown that waits
    # cannot return first; one that does not wait returns at once. The pause only gives
    # a broken shutdown time to show itself; a correct one passes whatever it is.
    returned.wait(0.1)
    release.set()


def test_shutdown_waits_for_running_jobs(executor: Executor) -> None:
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    future = executor.submit(slow)
    assert started.wait(10)
    threading.Thread(target=_release_unless_returned, args=(returned, release)).start()
    executor.shutdown(wait=True)
    # Read before telling the releaser, which would otherwise let the job finish.
    done_when_returned = future.done()
    returned.set()
    assert done_when_returned
    assert future.result() == "done"


def test_shutdown_twice_and_submit_after(executor: Executor) -> None:
    executor.submit(int).result(10)
    executor.shutdown()
    executor.shutdown()
    executor.shutdown(wait=False, cancel_futures=True)
    for submit in (
        lambda: executor.submit(int),
        lambda: executor.submit_stored("key", int),
        lambda: list(executor.map(int, [1])),
    ):
        with pytest.raises(RuntimeError) as info:
            submit()
        assert str(info.value) == SHUT_DOWN
    # A refused stored job leaves no key behind.
    assert "key" not in executor.futures


def test_shutdown_before_any_job(executor: Executor) -> None:
    executor.shutdown()
    with pytest.raises(RuntimeError) as info:
        executor.submit(int)
    assert str(info.value) == SHUT_DOWN


def test_shutdown_cancel_futures_cancels_queued_jobs(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    started, release = threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        release.wait(10)
        return "finished"

    ran: list[int] = []
    running = executor.submit(block)
    # Only once the one worker is busy are the others sure to be queued, not running.
    assert started.wait(10)
    queued = [executor.submit(ran.append, i) for i in range(10)]
    stored = executor.submit_stored("queued", ran.append, 99)
    executor.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in [*queued, stored])
    assert executor.futures.cancelled("queued") is True
    release.set()
    executor.shutdown(wait=True)
    assert running.result() == "finished"
    assert ran == []


def test_second_shutdown_waits(executor: Executor) -> None:
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(10)

    future = executor.submit(slow)
    assert started.wait(10)
    executor.shutdown(wait=False)
    threading.Thread(target=_release_unless_returned, args=(returned, release)).start()
    # As with ThreadPoolExecutor, waiting on a later call still waits for the job.
    executor.shutdown(wait=True)
    done_when_returned = future.done()
    returned.set()
    assert done_when_returned


# -- EXECUTOR_PROPAGATE_EXCEPTIONS ---------------------------------------------------------


class JobFailed(Exception):
    pass


def failing_job(n: int) -> int:
    if n % 2:
        raise JobFailed(f"odd {n}")
    return n


def _records_of(caplog: pytest.LogCaptureFixture, app: Flask) -> list[logging.LogRecord]:
    # Failures are logged by the extension's logger, never by the app's.
    assert [r for r in caplog.records if r.name == app.logger.name] == []
    return [r for r in caplog.records if r.name == "flask_executor"]


def test_propagate_exceptions_logs_every_failed_job(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["EXECUTOR_PROPAGATE_EXCEPTIONS"] = True
    executor = Executor(app)

    @executor.job
    def decorated() -> None:
        raise JobFailed("decorated")

    async def coroutine_job() -> None:
        raise JobFailed("coroutine")

    with caplog.at_level(logging.ERROR):
        futures = [executor.submit(failing_job, n) for n in range(6)]
        futures.append(executor.submit_stored("key", failing_job, 7))
        futures.append(decorated.submit())
        futures.append(executor.submit(coroutine_job))
        with pytest.raises(JobFailed):
            list(executor.map(failing_job, [9]))
        concurrent.futures.wait(futures, timeout=10)
        # The log line is written by a done callback in the worker; once the pool has
        # shut down, every callback has returned.
        executor.shutdown(wait=True)

    records = _records_of(caplog, app)
    name = f"'{__name__}.failing_job'"
    decorated_name = (
        f"'{__name__}.test_propagate_exceptions_logs_every_failed_job.<locals>.decorated'"
    )
    coroutine_name = decorated_name.replace(".decorated", ".coroutine_job")
    assert sorted(r.getMessage() for r in records) == sorted(
        [f"The job {name} failed."] * 4
        + [f"The job {name} stored under 'key' failed."]
        + [f"The job {decorated_name} failed.", f"The job {coroutine_name} failed."]
    )
    # For handlers and filters, the record carries the job, its key and its app too.
    stored = [r for r in records if "stored" in r.getMessage()]
    assert [(vars(r)["job"], vars(r)["future_key"], vars(r)["flask_app"]) for r in stored] == [
        (f"{__name__}.failing_job", "key", app.name)
    ]
    assert all(r.levelno == logging.ERROR for r in records)
    assert sorted(str(r.exc_info[1]) for r in records if r.exc_info) == sorted(
        ["odd 1", "odd 3", "odd 5", "odd 7", "odd 9", "decorated", "coroutine"]
    )
    # The traceback reaches into the job.
    for record in records:
        assert record.exc_info is not None
        traceback = record.exc_info[2]
        frames = []
        while traceback is not None:
            frames.append(traceback.tb_frame.f_code.co_name)
            traceback = traceback.tb_next
        assert frames[-1] in ("failing_job", "decorated", "coroutine_job")
        assert "Traceback (most recent call last)" in caplog.text


@pytest.mark.timeout(60)
def test_propagate_exceptions_from_a_process_pool(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.config.update(
        EXECUTOR_PROPAGATE_EXCEPTIONS="true", EXECUTOR_TYPE="process", EXECUTOR_MAX_WORKERS=1
    )
    executor = Executor(app)
    with caplog.at_level(logging.ERROR):
        futures = [executor.submit(failing_job, n) for n in range(4)]
        concurrent.futures.wait(futures, timeout=30)
        executor.shutdown(wait=True)
    records = _records_of(caplog, app)
    assert [r.getMessage() for r in records] == [f"The job '{__name__}.failing_job' failed."] * 2
    assert sorted(str(r.exc_info[1]) for r in records if r.exc_info) == ["odd 1", "odd 3"]


def test_propagate_exceptions_ignores_successes_and_cancellations(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.config.update(EXECUTOR_PROPAGATE_EXCEPTIONS=True, EXECUTOR_MAX_WORKERS=1)
    executor = Executor(app)
    started, release = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(10)

    with caplog.at_level(logging.DEBUG):
        executor.submit(block)
        assert started.wait(10)
        queued = executor.submit(failing_job, 1)
        assert queued.cancel()
        executor.submit(failing_job, 2)
        release.set()
        executor.shutdown(wait=True)
    assert _records_of(caplog, app) == []


def test_exceptions_are_not_logged_by_default(
    app: Flask, executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        future = executor.submit(failing_job, 1)
        concurrent.futures.wait([future], timeout=10)
        executor.shutdown(wait=True)
    assert isinstance(future.exception(), JobFailed)
    assert caplog.records == []


@pytest.mark.timeout(30)
def test_a_thread_pool_whose_initializer_always_raises_fails_each_job(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    def initializer() -> None:
        raise RuntimeError("no worker can start")

    app.config["EXECUTOR_MAX_WORKERS"] = 1
    app.config["EXECUTOR_POOL_KWARGS"] = {"initializer": initializer}
    executor = Executor(app)
    try:
        with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
            for n in range(5):
                # Each job gets a new pool, which breaks under it; none hangs.
                exc = executor.submit(pow, 2, n).exception(10)
                assert isinstance(exc, concurrent.futures.thread.BrokenThreadPool)
    finally:
        executor.shutdown(wait=True)
