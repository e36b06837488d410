"""Fixtures shared by the whole suite: a fresh app, an executor on it, and leak checks.

Two checks run around every test. One fails a test that leaves an app or request context
pushed. The other fails a test that leaves behind a Flask app, a request or a job's
argument that it made, or a thread that it started: nothing a job used may outlive it
(docs/design.rst, "Lifetimes"). A test that keeps such things on purpose (an app at
module level, imported for the first time by the test) says why with
``@pytest.mark.keeps_objects("reason")``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import threading
import time
import typing as t
import weakref

import pytest
from flask import Flask
from flask.globals import _cv_app
from flask_executor import config as executor_config
from flask_executor import Executor
from flask_executor.context import _cv_request
from werkzeug.wrappers import Request

# -- Instrumentation for the leak check ----------------------------------------------------
#
# Every Flask app, every request and every weakly referable argument of a job made during
# a test is put in a weak set, which only the check at the end of the test reads. The
# constructors and the executor still run as they are: this records, it mocks nothing.


class _Made:
    """What the current test has made, weakly."""

    def __init__(self, recording: bool = True) -> None:
        # Off for a test that keeps things on purpose: the reliability suite submits
        # jobs by the hundred thousand, and measures its own memory.
        self.recording = recording
        self.apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        self.requests: weakref.WeakSet[Request] = weakref.WeakSet()
        self.arguments: list[weakref.ref[t.Any]] = []


_made = _Made()


def _recording(init: t.Callable[..., None], where: str) -> t.Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
        init(self, *args, **kwargs)
        if _made.recording:
            getattr(_made, where).add(self)

    return __init__


Flask.__init__ = _recording(Flask.__init__, "apps")  # type: ignore[method-assign]
Request.__init__ = _recording(Request.__init__, "requests")  # type: ignore[method-assign]

_start = Executor._start


@functools.wraps(_start)
def _start_recording(self: Executor, *args: t.Any, **kwargs: t.Any) -> t.Any:
    # The job's positional and keyword arguments, the 7th and 8th of '_start'.
    if _made.recording and len(args) >= 8:
        _record_arguments(args[6], args[7])
    return _start(self, *args, **kwargs)


def _record_arguments(job_args: t.Any, job_kwargs: t.Any) -> None:
    if not (isinstance(job_args, tuple) and isinstance(job_kwargs, dict)):
        return  # '_start' changed: nothing is recorded, rather than the wrong thing
    for value in (*job_args, *job_kwargs.values()):
        # Functions, jobs and callable objects are code, often module-level; only data
        # is checked.
        if callable(value):
            continue
        # str, int, tuple...: cannot be referred to weakly, nor leak alone.
        with contextlib.suppress(TypeError):
            _made.arguments.append(weakref.ref(value))


Executor._start = _start_recording  # type: ignore[method-assign]

# How long the threads a test started get to end once nothing refers to their pool.
_THREAD_GRACE = 5.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The reliability suite measures memory and threads itself, at scale, with
    # module-level apps and pools shared between its scenarios.
    for item in items:
        if "reliability" in item.path.parts:
            item.add_marker(
                pytest.mark.keeps_objects("the reliability suite shares apps and pools")
            )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "keeps_objects(reason): the test keeps apps, requests, job arguments or threads"
        " on purpose (module-level apps, say); the leak check leaves it alone",
    )
    # FLASK_EXECUTOR_FAST_PATHS=0 runs the whole suite with CPython's fast paths off, as
    # if every app set EXECUTOR_FAST_PATHS = False (CI runs the suite both ways). Only
    # the default changes: a test that sets the key itself keeps its value. The library
    # reads no environment variable; apps that call 'app.config.from_prefixed_env()'
    # read this one as EXECUTOR_FAST_PATHS.
    value = os.environ.get("FLASK_EXECUTOR_FAST_PATHS", "1").strip().lower()
    executor_config.DEFAULTS["FAST_PATHS"] = value not in ("0", "false", "no", "off")


@pytest.fixture(autouse=True)
def _nothing_outlives_its_test(request: pytest.FixtureRequest) -> t.Iterator[None]:
    # Autouse fixtures are set up before the test's other fixtures of the same scope,
    # so everything those make is recorded. The check itself runs in
    # 'pytest_runtest_teardown' below, after every fixture has been torn down and the
    # logging plugin has dropped the test's log records (a record of a failed job holds
    # its traceback, and through it the job's frames).
    global _made
    _made = _Made(recording=request.node.get_closest_marker("keeps_objects") is None)
    request.node.stash[_THREADS_BEFORE] = set(threading.enumerate())
    yield


_THREADS_BEFORE = pytest.StashKey[set[threading.Thread]]()
_CALL_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> t.Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_PASSED] = report.passed
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> t.Generator[None, None, None]:
    yield  # every fixture torn down; a teardown that raised skips the check
    before = item.stash.get(_THREADS_BEFORE, None)
    # Only for a test that passed: a failure's traceback holds the test's frames, and
    # whatever they referred to.
    if before is None or not item.stash.get(_CALL_PASSED, False):
        return
    if item.get_closest_marker("keeps_objects") is not None:
        return
    # The fixture values are let go by pytest only after this hook; they are done with.
    funcargs = getattr(item, "funcargs", None)
    if funcargs:
        funcargs.clear()
    made = _made
    # A pool's idle threads end once their pool is freed, and a job that a test left
    # running after 'shutdown(wait=False)' lets go of what it used when it ends: the
    # threads are waited for first, up to a limit, and only then is anything counted.
    deadline = time.monotonic() + _THREAD_GRACE
    threads = [th for th in threading.enumerate() if th not in before]
    for _ in range(2):
        # Twice: freeing the objects (below) is what lets a pool's idle threads end.
        gc.collect(1)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) / 2)
    # The young generations first: they hold what a short test made, and collecting
    # them costs a fraction of a full collection, which walks every module of the
    # suite. Only if something survives is the full collection run, then trusted.
    gc.collect(1)
    if _alive(made):
        gc.collect()
    leaked = _alive(made)
    leaked += [f"thread {th.name!r}" for th in threads if th.is_alive()]
    assert not leaked, (
        "The test left behind what it made: "
        + ", ".join(leaked)
        + ". Free it, or mark the test with @pytest.mark.keeps_objects('why')."
    )


def _alive(made: _Made) -> list[str]:
    alive = [f"app {app.name!r}" for app in made.apps]
    alive += [f"request {req.path!r}" for req in made.requests]
    alive += [f"job argument {ref()!r}" for ref in made.arguments if ref() is not None]
    return alive


# -- Fixtures ------------------------------------------------------------------------------


@pytest.fixture
def app() -> Flask:
    app = Flask("flask_executor_test")
    app.config["TESTING"] = True
    return app


@pytest.fixture
def executor(app: Flask) -> t.Iterator[Executor]:
    executor = Executor(app)
    yield executor
    with app.app_context():
        executor.shutdown(wait=True)


@pytest.fixture(autouse=True)
def _no_context_left_pushed() -> t.Iterator[None]:
    # A test that leaves an app or request context pushed would let the next test pass
    # for the wrong reason (Flask's own suite checks the same).
    yield
    leaked = [
        name
        for name, var in (("app", _cv_app), ("request", _cv_request))
        # Flask 3.2 has no request context variable: the app context holds the request.
        if var is not None and var.get(None) is not None
    ]
    assert not leaked, f"The test left a {' and '.join(leaked)} context pushed."
