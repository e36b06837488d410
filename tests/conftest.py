"""Fixtures shared by the whole suite: a fresh app, an executor on it, and a leak check."""

from __future__ import annotations

import typing as t

import pytest
from flask import Flask
from flask.globals import _cv_app
from flask_executor import Executor
from flask_executor.context import _cv_request


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
