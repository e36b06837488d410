"""Fixtures shared by the whole suite: a fresh app, an executor on it, and a leak check."""

from __future__ import annotations

import os
import typing as t

import pytest
from flask import Flask
from flask.globals import _cv_app
from flask.globals import _cv_request
from flask_executor import config
from flask_executor import Executor


def pytest_configure() -> None:
    # FLASK_EXECUTOR_FAST_PATHS=0 runs the whole suite with CPython's fast paths off, as
    # if every app set EXECUTOR_FAST_PATHS = False (CI runs the suite both ways). Only
    # the default changes: a test that sets the key itself keeps its value. The library
    # reads no environment variable; apps that call 'app.config.from_prefixed_env()'
    # read this one as EXECUTOR_FAST_PATHS.
    value = os.environ.get("FLASK_EXECUTOR_FAST_PATHS", "1").strip().lower()
    config.DEFAULTS["FAST_PATHS"] = value not in ("0", "false", "no", "off")


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
        if var.get(None) is not None
    ]
    assert not leaked, f"The test left a {' and '.join(leaked)} context pushed."
