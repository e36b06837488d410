"""Configuration: every key, the strings the environment gives, and the errors for bad values.

Config is observed through what it changes: the pool that gets built (a real
``ThreadPoolExecutor`` subclass that remembers its arguments), the threads and processes
jobs run in, the bound of ``executor.futures``, and the log. Every invalid value must
fail in ``init_app`` with a message that names the key, the value and what is accepted.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import sys
import threading
import typing as t

import pytest
from flask import Flask
from flask import has_app_context
from flask_executor import Executor
from werkzeug.utils import import_string
from werkzeug.utils import ImportStringError

KEYS = (
    "TYPE",
    "POOL_CLASS",
    "POOL_KWARGS",
    "MAX_WORKERS",
    "FUTURES_MAX_LENGTH",
    "PROPAGATE_EXCEPTIONS",
    "PUSH_APP_CONTEXT",
)


# -- Real pools that remember how they were built ------------------------------------------

#: The keyword arguments of every RecordingPool / RecordingProcessPool built, in order.
built_with: list[dict[str, t.Any]] = []


class RecordingPool(concurrent.futures.ThreadPoolExecutor):
    """A real thread pool that records its constructor arguments."""

    def __init__(self, **kwargs: t.Any) -> None:
        built_with.append(kwargs)
        super().__init__(**kwargs)


class RecordingProcessPool(concurrent.futures.ProcessPoolExecutor):
    """A real process pool that records its constructor arguments."""

    def __init__(self, **kwargs: t.Any) -> None:
        built_with.append(kwargs)
        super().__init__(**kwargs)


class NotAPool:
    """Has a 'submit', but is not a concurrent.futures.Executor."""

    def submit(self, fn: t.Callable[..., t.Any], /, *args: t.Any) -> None:
        raise AssertionError("never built")


# An import string for each, made from this module's own name so that it keeps working
# however pytest names test modules.
RECORDING_POOL = f"{__name__}:RecordingPool"
RECORDING_PROCESS_POOL = f"{__name__}:RecordingProcessPool"


NEEDS_MAX_TASKS_PER_CHILD = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="max_tasks_per_child is Python 3.11+"
)


@pytest.fixture(autouse=True)
def _fresh_records() -> t.Iterator[None]:
    built_with.clear()
    yield
    built_with.clear()


@pytest.fixture
def executors() -> t.Iterator[list[tuple[Flask, Executor]]]:
    """Executors a test makes; each is shut down at the end, on its own app."""
    made: list[tuple[Flask, Executor]] = []
    yield made
    for app, executor in made:
        with app.app_context():
            executor.shutdown(wait=True)


def bind(
    made: list[tuple[Flask, Executor]], config: dict[str, t.Any], name: str = ""
) -> tuple[Flask, Executor]:
    app = Flask("config_test")
    app.config.update(config)
    executor = Executor(app, name=name)
    made.append((app, executor))
    return app, executor


def build_pool(executor: Executor) -> dict[str, t.Any]:
    """Run one job, so that the lazily built pool exists; return its recorded arguments."""
    executor.submit(int).result(timeout=10)
    assert len(built_with) == 1
    return built_with[0]


# -- Defaults ------------------------------------------------------------------------------


def test_defaults_are_set_in_app_config(app: Flask, executor: Executor) -> None:
    # 'app.config' shows what is in force, as Flask extensions do with setdefault.
    assert {key: app.config[f"EXECUTOR_{key}"] for key in KEYS} == {
        "TYPE": "thread",
        "POOL_CLASS": None,
        "POOL_KWARGS": None,
        "MAX_WORKERS": None,
        "FUTURES_MAX_LENGTH": 50,
        "PROPAGATE_EXCEPTIONS": False,
        "PUSH_APP_CONTEXT": True,
    }


def test_default_is_a_thread_pool_in_this_process(executor: Executor) -> None:
    pid, thread = executor.submit(lambda: (os.getpid(), threading.current_thread())).result(10)
    assert pid == os.getpid()
    assert thread is not threading.current_thread()
    assert executor.futures.max_length == 50


def test_values_already_set_are_kept(executors: list[tuple[Flask, Executor]]) -> None:
    app, _ = bind(executors, {"EXECUTOR_MAX_WORKERS": 7})
    assert app.config["EXECUTOR_MAX_WORKERS"] == 7


def test_config_is_read_once_in_init_app(executors: list[tuple[Flask, Executor]]) -> None:
    app, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": RecordingPool,
            "EXECUTOR_MAX_WORKERS": 2,
        },
    )
    # Changing config later, even to something invalid, has no effect on this app.
    app.config["EXECUTOR_MAX_WORKERS"] = "abc"
    app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = 1
    assert build_pool(executor) == {"max_workers": 2}
    assert executor.futures.max_length == 50


# -- EXECUTOR_TYPE -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("thread", id="thread"),
        pytest.param("Thread", id="capitalised"),
        pytest.param(" thread\n", id="with-whitespace"),
    ],
)
def test_type_thread(executors: list[tuple[Flask, Executor]], value: str) -> None:
    _, executor = bind(executors, {"EXECUTOR_TYPE": value})
    assert executor.submit(os.getpid).result(10) == os.getpid()


@pytest.mark.parametrize(
    "value", [pytest.param("process", id="process"), pytest.param("PROCESS", id="upper-case")]
)
@pytest.mark.timeout(60)
def test_type_process_runs_jobs_in_another_process(
    executors: list[tuple[Flask, Executor]], value: str
) -> None:
    _, executor = bind(executors, {"EXECUTOR_TYPE": value, "EXECUTOR_MAX_WORKERS": 1})
    assert executor.submit(os.getpid).result(30) != os.getpid()


# -- EXECUTOR_POOL_CLASS -------------------------------------------------------------------


@pytest.mark.parametrize(
    "pool_class",
    [
        pytest.param(RecordingPool, id="class"),
        pytest.param(RECORDING_POOL, id="import-string-colon"),
        pytest.param(RECORDING_POOL.replace(":", "."), id="import-string-dotted"),
    ],
)
def test_pool_class(executors: list[tuple[Flask, Executor]], pool_class: object) -> None:
    _, executor = bind(executors, {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": pool_class})
    assert build_pool(executor) == {}


@pytest.mark.timeout(60)
def test_pool_class_gevent_threadpool_by_import_string(
    executors: list[tuple[Flask, Executor]],
) -> None:
    # Importing gevent does not monkey-patch anything; its pool runs real threads.
    _, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": "gevent.threadpool:ThreadPoolExecutor",
            "EXECUTOR_MAX_WORKERS": "2",
        },
    )
    future = executor.submit(lambda x: x * 2, 21)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=10) == 42


def test_pool_class_is_ignored_unless_type_is_custom(
    executors: list[tuple[Flask, Executor]],
) -> None:
    # As in 1.0: EXECUTOR_TYPE decides, and a leftover pool class does not change it.
    _, executor = bind(executors, {"EXECUTOR_POOL_CLASS": RecordingPool})
    assert executor.submit(int, "3").result(10) == 3
    assert built_with == []


# -- EXECUTOR_MAX_WORKERS ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(3, {"max_workers": 3}, id="int"),
        pytest.param("3", {"max_workers": 3}, id="numeric-string"),
        pytest.param(" 12 ", {"max_workers": 12}, id="string-with-whitespace"),
        pytest.param(None, {}, id="None"),
        pytest.param("None", {}, id="string-None"),
        pytest.param("null", {}, id="string-null"),
        pytest.param("", {}, id="empty-string"),
    ],
)
def test_max_workers(
    executors: list[tuple[Flask, Executor]], value: object, expected: dict[str, t.Any]
) -> None:
    # None leaves max_workers out, so that the pool picks its own default.
    _, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": RecordingPool,
            "EXECUTOR_MAX_WORKERS": value,
        },
    )
    assert build_pool(executor) == expected


def test_max_workers_bounds_the_worker_threads(executors: list[tuple[Flask, Executor]]) -> None:
    _, executor = bind(executors, {"EXECUTOR_MAX_WORKERS": "2"})
    # The first two jobs meet at a barrier, so both workers exist at once; however many
    # jobs follow, no third thread appears.
    both_running = threading.Barrier(2, timeout=10)

    def meet() -> str:
        both_running.wait()
        return threading.current_thread().name

    names = {f.result(10) for f in [executor.submit(meet), executor.submit(meet)]}
    names |= {
        executor.submit(lambda: threading.current_thread().name).result(10) for _ in range(20)
    }
    assert len(names) == 2


# -- EXECUTOR_POOL_KWARGS ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"thread_name_prefix": "jobs"}, {"thread_name_prefix": "jobs"}, id="dict"),
        pytest.param('{"thread_name_prefix": "jobs"}', {"thread_name_prefix": "jobs"}, id="json"),
        pytest.param("", {}, id="empty-string"),
        pytest.param(None, {}, id="None"),
        pytest.param(
            {"max_workers": 4, "thread_name_prefix": "jobs"},
            {"max_workers": 4, "thread_name_prefix": "jobs"},
            id="max-workers-inside",
        ),
    ],
)
def test_pool_kwargs(
    executors: list[tuple[Flask, Executor]], value: object, expected: dict[str, t.Any]
) -> None:
    _, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": RecordingPool,
            "EXECUTOR_POOL_KWARGS": value,
        },
    )
    assert build_pool(executor) == expected


def test_pool_kwargs_reach_the_default_thread_pool(executors: list[tuple[Flask, Executor]]) -> None:
    _, executor = bind(executors, {"EXECUTOR_POOL_KWARGS": {"thread_name_prefix": "reports"}})
    name = executor.submit(lambda: threading.current_thread().name).result(10)
    assert name.startswith("reports_")


def test_max_workers_key_wins_over_pool_kwargs(executors: list[tuple[Flask, Executor]]) -> None:
    _, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": RecordingPool,
            "EXECUTOR_POOL_KWARGS": {"max_workers": 4},
            "EXECUTOR_MAX_WORKERS": 2,
        },
    )
    assert build_pool(executor) == {"max_workers": 2}


@pytest.mark.parametrize(
    "pool_kwargs",
    [
        pytest.param({"mp_context": "spawn"}, id="dict"),
        pytest.param('{"mp_context": "spawn"}', id="json"),
    ],
)
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_mp_context_start_method_name(
    executors: list[tuple[Flask, Executor]], pool_kwargs: object
) -> None:
    # A start-method name is turned into the context object the pool wants.
    _, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": RECORDING_PROCESS_POOL,
            "EXECUTOR_POOL_KWARGS": pool_kwargs,
            "EXECUTOR_MAX_WORKERS": 1,
        },
    )
    assert executor.submit(os.getpid).result(60) != os.getpid()
    (kwargs,) = built_with
    assert kwargs["mp_context"] is multiprocessing.get_context("spawn")
    assert kwargs["max_workers"] == 1


def test_mp_context_object_is_passed_as_is(executors: list[tuple[Flask, Executor]]) -> None:
    context = multiprocessing.get_context("spawn")
    app, executor = bind(
        executors,
        {
            "EXECUTOR_TYPE": "custom",
            "EXECUTOR_POOL_CLASS": RecordingProcessPool,
            "EXECUTOR_POOL_KWARGS": {"mp_context": context},
        },
    )
    # Nothing is submitted: only init_app's checks run, and they accept the object.
    assert app.extensions["executor"] is executor
    assert app.config["EXECUTOR_POOL_KWARGS"] == {"mp_context": context}


# -- EXECUTOR_FUTURES_MAX_LENGTH -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(3, 3, id="int"),
        pytest.param("3", 3, id="numeric-string"),
        pytest.param(None, None, id="None"),
        pytest.param("None", None, id="string-None"),
        pytest.param("null", None, id="string-null"),
    ],
)
def test_futures_max_length(
    executors: list[tuple[Flask, Executor]], value: object, expected: int | None
) -> None:
    _, executor = bind(executors, {"EXECUTOR_FUTURES_MAX_LENGTH": value})
    for key in range(5):
        executor.submit_stored(key, int, key).result(10)
    assert executor.futures.max_length == expected
    # Finished futures beyond the bound are evicted, oldest first.
    assert executor.futures.keys() == ([2, 3, 4] if expected == 3 else [0, 1, 2, 3, 4])


# -- Booleans ------------------------------------------------------------------------------

TRUE_VALUES = [
    pytest.param(True, id="True"),
    pytest.param(1, id="1"),
    pytest.param("true", id="str-true"),
    pytest.param("True", id="str-True"),
    pytest.param("1", id="str-1"),
    pytest.param("yes", id="str-yes"),
    pytest.param(" ON ", id="str-ON"),
]
FALSE_VALUES = [
    pytest.param(False, id="False"),
    pytest.param(0, id="0"),
    pytest.param("false", id="str-false"),
    pytest.param("False", id="str-False"),
    pytest.param("0", id="str-0"),
    pytest.param("no", id="str-no"),
    pytest.param("off", id="str-off"),
]


def _fails(executor: Executor) -> concurrent.futures.Future[t.Any]:
    def broken_job() -> None:
        raise KeyError("missing")

    future = executor.submit(broken_job)
    concurrent.futures.wait([future], timeout=10)
    return future


@pytest.mark.parametrize("value", TRUE_VALUES)
def test_propagate_exceptions_true(
    executors: list[tuple[Flask, Executor]], caplog: pytest.LogCaptureFixture, value: object
) -> None:
    _, executor = bind(executors, {"EXECUTOR_PROPAGATE_EXCEPTIONS": value})
    with caplog.at_level(logging.ERROR):
        _fails(executor)
        # The failure is logged in the worker, by a done callback of the job's future;
        # waiting for the pool to finish makes sure that callback has returned.
        executor.shutdown(wait=True)
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [KeyError]


@pytest.mark.parametrize("value", FALSE_VALUES)
def test_propagate_exceptions_false(
    executors: list[tuple[Flask, Executor]], caplog: pytest.LogCaptureFixture, value: object
) -> None:
    _, executor = bind(executors, {"EXECUTOR_PROPAGATE_EXCEPTIONS": value})
    with caplog.at_level(logging.DEBUG):
        _fails(executor)
        executor.shutdown(wait=True)
    assert caplog.records == []


@pytest.mark.parametrize("value", TRUE_VALUES)
def test_push_app_context_true(executors: list[tuple[Flask, Executor]], value: object) -> None:
    _, executor = bind(executors, {"EXECUTOR_PUSH_APP_CONTEXT": value})
    # Submitted outside any context: only a pushed app context gives the job one.
    assert executor.submit(has_app_context).result(10) is True


@pytest.mark.parametrize("value", FALSE_VALUES)
def test_push_app_context_false(executors: list[tuple[Flask, Executor]], value: object) -> None:
    _, executor = bind(executors, {"EXECUTOR_PUSH_APP_CONTEXT": value})
    assert executor.submit(has_app_context).result(10) is False


# -- Environment variables -----------------------------------------------------------------

ENVIRONMENT = {
    "EXECUTOR_TYPE": "custom",
    "EXECUTOR_POOL_CLASS": RECORDING_POOL,
    "EXECUTOR_POOL_KWARGS": '{"thread_name_prefix": "env"}',
    "EXECUTOR_MAX_WORKERS": "5",
    "EXECUTOR_FUTURES_MAX_LENGTH": "None",
    "EXECUTOR_PROPAGATE_EXCEPTIONS": "true",
    "EXECUTOR_PUSH_APP_CONTEXT": "false",
}


def _check_environment_config(executor: Executor, caplog: pytest.LogCaptureFixture) -> None:
    assert build_pool(executor) == {"thread_name_prefix": "env", "max_workers": 5}
    assert executor.futures.max_length is None
    assert executor.submit(has_app_context).result(10) is False
    with caplog.at_level(logging.ERROR):
        _fails(executor)
        executor.shutdown(wait=True)
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [KeyError]


def test_from_prefixed_env(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    executors: list[tuple[Flask, Executor]],
) -> None:
    # from_prefixed_env turns "5" into 5, "true" into True and the JSON object into a
    # dict, and leaves "None", "custom" and the import string as strings.
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(f"FLASK_{key}", value)
    app = Flask("config_test")
    app.config.from_prefixed_env()
    assert app.config["EXECUTOR_MAX_WORKERS"] == 5
    assert app.config["EXECUTOR_FUTURES_MAX_LENGTH"] == "None"
    executor = Executor(app)
    executors.append((app, executor))
    _check_environment_config(executor, caplog)


def test_plain_environment_strings(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    executors: list[tuple[Flask, Executor]],
) -> None:
    # Copied from os.environ by hand, every value is a string.
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    app = Flask("config_test")
    app.config.update({key: os.environ[key] for key in ENVIRONMENT})
    executor = Executor(app)
    executors.append((app, executor))
    _check_environment_config(executor, caplog)


def test_from_prefixed_env_nested_pool_kwargs(
    monkeypatch: pytest.MonkeyPatch, executors: list[tuple[Flask, Executor]]
) -> None:
    # FLASK_A__B sets app.config["A"]["B"], one pool argument at a time.
    monkeypatch.setenv("FLASK_EXECUTOR_POOL_KWARGS__thread_name_prefix", "nested")
    monkeypatch.setenv("FLASK_EXECUTOR_POOL_KWARGS__max_workers", "2")
    app = Flask("config_test")
    app.config.from_prefixed_env()
    executor = Executor(app)
    executors.append((app, executor))
    name = executor.submit(lambda: threading.current_thread().name).result(10)
    assert name.startswith("nested_")


# -- Named executors -----------------------------------------------------------------------


def test_named_executor_reads_its_prefixed_keys(executors: list[tuple[Flask, Executor]]) -> None:
    app, reports = bind(
        executors,
        {
            "REPORTS_EXECUTOR_TYPE": "custom",
            "REPORTS_EXECUTOR_POOL_CLASS": RecordingPool,
            "REPORTS_EXECUTOR_MAX_WORKERS": "3",
            "REPORTS_EXECUTOR_FUTURES_MAX_LENGTH": 4,
            # The unnamed executor's keys are not the named one's.
            "EXECUTOR_MAX_WORKERS": 9,
            "EXECUTOR_FUTURES_MAX_LENGTH": 8,
        },
        name="reports",
    )
    assert app.extensions["reportsexecutor"] is reports
    assert "executor" not in app.extensions
    assert build_pool(reports) == {"max_workers": 3}
    assert reports.futures.max_length == 4
    # Its defaults are filled in under its own prefix.
    assert app.config["REPORTS_EXECUTOR_PUSH_APP_CONTEXT"] is True
    assert "EXECUTOR_TYPE" not in app.config


def test_named_and_unnamed_executors_side_by_side(executors: list[tuple[Flask, Executor]]) -> None:
    app = Flask("config_test")
    app.config.update(
        EXECUTOR_FUTURES_MAX_LENGTH=2,
        MAIL_EXECUTOR_FUTURES_MAX_LENGTH=3,
        MAIL_EXECUTOR_POOL_KWARGS={"thread_name_prefix": "mail"},
    )
    default, mail = Executor(app), Executor(app, name="mail")
    executors.extend([(app, default), (app, mail)])
    assert app.extensions["executor"] is default
    assert app.extensions["mailexecutor"] is mail
    assert (default.futures.max_length, mail.futures.max_length) == (2, 3)
    assert mail.submit(lambda: threading.current_thread().name).result(10).startswith("mail_")
    assert not default.submit(lambda: threading.current_thread().name).result(10).startswith("mail")


# -- Invalid values ------------------------------------------------------------------------

BOOL_ACCEPTED = (
    "but it must be True or False (from the environment: 'true', 'false', '1', '0', 'yes',"
    " 'no', 'on' or 'off')."
)
COUNT_ACCEPTED = "but it must be a whole number greater than 0, or None."
POOL_CLASS_EXAMPLE = "Give a class or an import string such as 'package.module:PoolClass'."


def _import_failure(path: str) -> str:
    # Python words an import failure differently from version to version; the message
    # quotes it as it comes.
    try:
        import_string(path)
    except ImportStringError as e:
        return str(e.exception)
    raise AssertionError(f"{path!r} imported.")


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        pytest.param(
            {"EXECUTOR_TYPE": "fork"},
            ValueError,
            "'EXECUTOR_TYPE' is 'fork', but it must be one of 'thread', 'process', 'custom'.",
            id="unknown-type",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": 1},
            ValueError,
            "'EXECUTOR_TYPE' is 1, but it must be one of 'thread', 'process', 'custom'.",
            id="type-not-a-string",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom"},
            ValueError,
            "'EXECUTOR_TYPE' is 'custom', so 'EXECUTOR_POOL_CLASS' must name the pool class to"
            " use, as a class or an import string such as 'package.module:PoolClass'.",
            id="custom-without-pool-class",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": dict},
            TypeError,
            "'EXECUTOR_POOL_CLASS' must be a subclass of 'concurrent.futures.Executor', but got"
            " <class 'dict'>.",
            id="pool-class-not-an-executor",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": NotAPool},
            TypeError,
            "'EXECUTOR_POOL_CLASS' must be a subclass of 'concurrent.futures.Executor', but got"
            f" <class '{__name__}.NotAPool'>.",
            id="pool-class-duck-typed",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": 42},
            TypeError,
            "'EXECUTOR_POOL_CLASS' must be a subclass of 'concurrent.futures.Executor', but got"
            " 42.",
            id="pool-class-not-a-class",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": "collections:OrderedDict"},
            TypeError,
            "'EXECUTOR_POOL_CLASS' must be a subclass of 'concurrent.futures.Executor', but got"
            " <class 'collections.OrderedDict'>.",
            id="import-string-not-an-executor",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": "no_such_package.pools:Pool"},
            ValueError,
            "'EXECUTOR_POOL_CLASS' is 'no_such_package.pools:Pool', which cannot be imported"
            f" (No module named 'no_such_package'). {POOL_CLASS_EXAMPLE}",
            id="unimportable-module",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "custom", "EXECUTOR_POOL_CLASS": "concurrent.futures:NoSuchPool"},
            ValueError,
            "'EXECUTOR_POOL_CLASS' is 'concurrent.futures:NoSuchPool', which cannot be imported"
            f" ({_import_failure('concurrent.futures:NoSuchPool')}). {POOL_CLASS_EXAMPLE}",
            id="unimportable-name",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": 0},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is 0, {COUNT_ACCEPTED}",
            id="max-workers-0",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": -1},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is -1, {COUNT_ACCEPTED}",
            id="max-workers-minus-1",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": "abc"},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is 'abc', {COUNT_ACCEPTED}",
            id="max-workers-abc",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": "0"},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is '0', {COUNT_ACCEPTED}",
            id="max-workers-string-0",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": "2.5"},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is '2.5', {COUNT_ACCEPTED}",
            id="max-workers-decimal-string",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": 2.0},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is 2.0, {COUNT_ACCEPTED}",
            id="max-workers-float",
        ),
        pytest.param(
            {"EXECUTOR_MAX_WORKERS": True},
            ValueError,
            f"'EXECUTOR_MAX_WORKERS' is True, {COUNT_ACCEPTED}",
            id="max-workers-bool",
        ),
        pytest.param(
            {"EXECUTOR_FUTURES_MAX_LENGTH": 0},
            ValueError,
            f"'EXECUTOR_FUTURES_MAX_LENGTH' is 0, {COUNT_ACCEPTED}",
            id="futures-max-length-0",
        ),
        pytest.param(
            {"EXECUTOR_FUTURES_MAX_LENGTH": "ten"},
            ValueError,
            f"'EXECUTOR_FUTURES_MAX_LENGTH' is 'ten', {COUNT_ACCEPTED}",
            id="futures-max-length-word",
        ),
        pytest.param(
            {"EXECUTOR_FUTURES_MAX_LENGTH": -5},
            ValueError,
            f"'EXECUTOR_FUTURES_MAX_LENGTH' is -5, {COUNT_ACCEPTED}",
            id="futures-max-length-negative",
        ),
        pytest.param(
            {"EXECUTOR_PROPAGATE_EXCEPTIONS": "maybe"},
            ValueError,
            f"'EXECUTOR_PROPAGATE_EXCEPTIONS' is 'maybe', {BOOL_ACCEPTED}",
            id="propagate-exceptions-word",
        ),
        pytest.param(
            {"EXECUTOR_PROPAGATE_EXCEPTIONS": 2},
            ValueError,
            f"'EXECUTOR_PROPAGATE_EXCEPTIONS' is 2, {BOOL_ACCEPTED}",
            id="propagate-exceptions-2",
        ),
        pytest.param(
            {"EXECUTOR_PUSH_APP_CONTEXT": "None"},
            ValueError,
            f"'EXECUTOR_PUSH_APP_CONTEXT' is 'None', {BOOL_ACCEPTED}",
            id="push-app-context-string-None",
        ),
        pytest.param(
            {"EXECUTOR_PUSH_APP_CONTEXT": None},
            ValueError,
            f"'EXECUTOR_PUSH_APP_CONTEXT' is None, {BOOL_ACCEPTED}",
            id="push-app-context-None",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": "{not json"},
            ValueError,
            "'EXECUTOR_POOL_KWARGS' is '{not json', which is not a JSON object. Give a dict of"
            " keyword arguments for the pool class.",
            id="pool-kwargs-bad-json",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": "[1, 2]"},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' must be a dict of keyword arguments for the pool class, but"
            " got '[1, 2]'.",
            id="pool-kwargs-json-list",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": [("thread_name_prefix", "x")]},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' must be a dict of keyword arguments for the pool class, but"
            " got [('thread_name_prefix', 'x')].",
            id="pool-kwargs-list",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {1: 2}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' must be a dict of keyword arguments for the pool class, but"
            " got {1: 2}.",
            id="pool-kwargs-non-string-key",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"thread_prefix": "x"}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' gives ['thread_prefix'], which ThreadPoolExecutor does not"
            " accept: got an unexpected keyword argument 'thread_prefix'."
            " It takes 'max_workers', 'thread_name_prefix', 'initializer' and 'initargs'.",
            id="pool-kwargs-unknown-argument",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"mp_context": "spawn"}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' gives ['mp_context'], which ThreadPoolExecutor does not"
            " accept: got an unexpected keyword argument 'mp_context'."
            " It takes 'max_workers', 'thread_name_prefix', 'initializer' and 'initargs'.",
            id="pool-kwargs-mp-context-on-threads",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"bogus": 1}, "EXECUTOR_MAX_WORKERS": 2},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' (with 'EXECUTOR_MAX_WORKERS') gives ['bogus', 'max_workers'],"
            " which ThreadPoolExecutor does not accept: got an unexpected keyword argument"
            " 'bogus'. It takes 'max_workers', 'thread_name_prefix', 'initializer' and"
            " 'initargs'.",
            id="pool-kwargs-unknown-argument-with-max-workers",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"max_workers": 0}},
            ValueError,
            "'EXECUTOR_POOL_KWARGS' has 'max_workers' 0, but it must be a whole number"
            " greater than 0, or None.",
            id="pool-kwargs-max-workers-0",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"mp_context": "threads"}},
            ValueError,
            "'EXECUTOR_POOL_KWARGS' has 'mp_context' 'threads', which is not a start method"
            " here. Use one of "
            + ", ".join(map(repr, multiprocessing.get_all_start_methods()))
            + ", or a context from 'multiprocessing.get_context()'.",
            id="pool-kwargs-unknown-start-method",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"initializer": 5}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' has 'initializer' 5, but it must be a callable that each"
            " worker calls once when it starts, or None.",
            id="pool-kwargs-initializer-not-callable-thread",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"initializer": "setup"}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' has 'initializer' 'setup', but it must be a callable that"
            " each worker calls once when it starts, or None.",
            id="pool-kwargs-initializer-not-callable-process",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"initializer": print, "initargs": "abc"}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' has 'initargs' 'abc', but it must be a tuple of arguments"
            " for the initializer.",
            id="pool-kwargs-initargs-not-a-tuple",
        ),
        pytest.param(
            {"EXECUTOR_POOL_KWARGS": {"thread_name_prefix": 7}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' has 'thread_name_prefix' 7, but it must be a string, or None.",
            id="pool-kwargs-thread-name-prefix-not-a-string",
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"max_tasks_per_child": 0}},
            ValueError,
            "'EXECUTOR_POOL_KWARGS' has 'max_tasks_per_child' 0, but it must be a whole number"
            " greater than 0, or None.",
            id="pool-kwargs-max-tasks-per-child-0",
            marks=NEEDS_MAX_TASKS_PER_CHILD,
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"max_tasks_per_child": "3"}},
            ValueError,
            "'EXECUTOR_POOL_KWARGS' has 'max_tasks_per_child' '3', but it must be a whole"
            " number greater than 0, or None.",
            id="pool-kwargs-max-tasks-per-child-string",
            marks=NEEDS_MAX_TASKS_PER_CHILD,
        ),
        pytest.param(
            {
                "EXECUTOR_TYPE": "process",
                "EXECUTOR_POOL_KWARGS": {"max_tasks_per_child": 2, "mp_context": "fork"},
            },
            ValueError,
            "'EXECUTOR_POOL_KWARGS' has 'max_tasks_per_child' 2 with the 'fork' start method,"
            " which ProcessPoolExecutor does not allow together: a worker forked to replace"
            " one that retired could inherit the parent's locks held. Give 'mp_context' as"
            " 'spawn' or 'forkserver', or leave it out ('spawn' is then used).",
            id="pool-kwargs-max-tasks-per-child-with-fork",
            marks=NEEDS_MAX_TASKS_PER_CHILD,
        ),
        pytest.param(
            {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"max_tasks_per_child": 2}},
            TypeError,
            "'EXECUTOR_POOL_KWARGS' gives ['max_tasks_per_child'], which ProcessPoolExecutor"
            " does not accept: got an unexpected keyword argument 'max_tasks_per_child'."
            " It takes 'max_workers', 'mp_context', 'initializer' and 'initargs'.",
            id="pool-kwargs-max-tasks-per-child-before-3.11",
            marks=pytest.mark.skipif(
                sys.version_info >= (3, 11), reason="max_tasks_per_child is Python 3.11+"
            ),
        ),
    ],
)
def test_invalid_value_fails_init_app(
    config: dict[str, t.Any], error: type[Exception], message: str
) -> None:
    app = Flask("config_test")
    app.config.update(config)
    executor = Executor()
    with pytest.raises(error) as info:
        executor.init_app(app)
    assert str(info.value) == message
    # Nothing was registered or bound: fixing the config and trying again works.
    assert "executor" not in app.extensions
    assert repr(executor) == "<Executor apps=[]>"


def test_invalid_value_of_named_executor_names_its_key() -> None:
    app = Flask("config_test")
    app.config["REPORTS_EXECUTOR_MAX_WORKERS"] = 0
    with pytest.raises(ValueError) as info:
        Executor(app, name="reports")
    assert str(info.value) == f"'REPORTS_EXECUTOR_MAX_WORKERS' is 0, {COUNT_ACCEPTED}"


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        pytest.param(
            "my-exec",
            ValueError,
            "The executor name 'my-exec' cannot be used: it becomes the config prefix"
            " 'MY-EXEC_EXECUTOR_', so it may contain only letters, digits and underscores, and"
            " must not start with a digit.",
            id="hyphen",
        ),
        pytest.param(
            "2nd",
            ValueError,
            "The executor name '2nd' cannot be used: it becomes the config prefix"
            " '2ND_EXECUTOR_', so it may contain only letters, digits and underscores, and"
            " must not start with a digit.",
            id="leading-digit",
        ),
        pytest.param(
            "mail jobs",
            ValueError,
            "The executor name 'mail jobs' cannot be used: it becomes the config prefix"
            " 'MAIL JOBS_EXECUTOR_', so it may contain only letters, digits and underscores,"
            " and must not start with a digit.",
            id="space",
        ),
        pytest.param(
            3,
            TypeError,
            "The executor name must be a string, but got 3.",
            id="not-a-string",
        ),
    ],
)
def test_invalid_name(app: Flask, name: t.Any, error: type[Exception], message: str) -> None:
    # The name is checked when the executor is made, before any app is involved.
    with pytest.raises(error) as info:
        Executor(name=name)
    assert str(info.value) == message
    with pytest.raises(error):
        Executor(app, name=name)
    assert app.extensions == {}


@pytest.mark.parametrize("name", ["reports", "Reports_2", "_private"])
def test_valid_names(executors: list[tuple[Flask, Executor]], name: str) -> None:
    app, executor = bind(executors, {}, name=name)
    assert app.extensions[name + "executor"] is executor
    assert app.config[f"{name.upper()}_EXECUTOR_TYPE"] == "thread"


# -- Worker recycling (max_tasks_per_child) -------------------------------------------------


@NEEDS_MAX_TASKS_PER_CHILD
@pytest.mark.timeout(90)
def test_max_tasks_per_child_never_leaves_jobs_pending(
    executors: list[tuple[Flask, Executor]],
) -> None:
    # CPython gh-115634: a pool whose worker retires while jobs are queued stops starting
    # workers, and the queued jobs wait for ever (188 of 200 after 30 s, and a hang at
    # exit). Where the fix is missing, 'init_app' refuses the option and says why; where
    # it is present, every job finishes.
    config = {
        "EXECUTOR_TYPE": "process",
        "EXECUTOR_MAX_WORKERS": 2,
        "EXECUTOR_PUSH_APP_CONTEXT": False,
        "EXECUTOR_POOL_KWARGS": {"max_tasks_per_child": 3, "mp_context": "spawn"},
    }
    try:
        _, executor = bind(executors, config)
    except ValueError as e:
        assert str(e).startswith(
            "'EXECUTOR_POOL_KWARGS' has 'max_tasks_per_child' 3, which this Python"
            f" ({sys.version.split()[0]}) cannot honour: its ProcessPoolExecutor stops"
            " starting workers once one retires while jobs are queued"
        )
        assert "gh-115634" in str(e)
        return
    futures = [executor.submit(abs, -n) for n in range(60)]
    done, not_done = concurrent.futures.wait(futures, timeout=60)
    assert not not_done
    assert sorted(f.result() for f in done) == list(range(60))
