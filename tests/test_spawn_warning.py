"""A process pool that cannot find the app warns once, not at every ``init_app``.

Issue 11, section 3, item 6. The warning comes once per process for each executor and
start method: an app factory that binds the same executor to app after app (once per
test, say) hears it once. Binding starts no pool, so nothing here starts a process.
"""

from __future__ import annotations

import logging
import typing as t

import pytest
from flask import Flask
from flask_executor import Executor


def spawn_app(start_method: str = "spawn", prefix: str = "") -> Flask:
    app = Flask("spawn_warning_app")
    app.config[f"{prefix}EXECUTOR_TYPE"] = "process"
    app.config[f"{prefix}EXECUTOR_POOL_KWARGS"] = {"mp_context": start_method}
    return app


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "flask_executor" and r.levelno == logging.WARNING
    ]


@pytest.fixture(autouse=True)
def _no_flask_app(monkeypatch: pytest.MonkeyPatch) -> t.Iterator[None]:
    # FLASK_APP would tell the workers where the app is, and silence the warning.
    monkeypatch.delenv("FLASK_APP", raising=False)
    yield


def test_one_executor_bound_again_and_again_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    executor = Executor()
    for _ in range(3):
        executor.init_app(spawn_app())
    (message,) = warnings_of(caplog)
    assert "'spawn'" in message
    assert "'EXECUTOR_APP_IMPORT'" in message
    assert "once per executor and start method" in message

    # Another start method is another warning, once.
    executor.init_app(spawn_app("forkserver"))
    executor.init_app(spawn_app("forkserver"))
    assert len(warnings_of(caplog)) == 2
    assert "'forkserver'" in warnings_of(caplog)[1]


def test_each_executor_warns_for_its_own_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    Executor(spawn_app())
    Executor(spawn_app())  # another executor, the same keys: it says so too
    Executor(spawn_app(prefix="REPORTS_"), name="reports")
    messages = warnings_of(caplog)
    assert len(messages) == 3
    assert "'EXECUTOR_APP_IMPORT'" in messages[1]
    assert "'REPORTS_EXECUTOR_APP_IMPORT'" in messages[2]


def test_no_warning_when_the_workers_can_find_the_app(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "flask_executor")
    app = spawn_app()
    app.config["EXECUTOR_APP_IMPORT"] = "myapp:create_app()"
    Executor(app)
    Executor(spawn_app("fork"))
    assert warnings_of(caplog) == []
