"""Released libraries built on Flask-Executor 1.0 run unchanged on this package.

Flask-Shell2HTTP (a REST wrapper around shell commands) calls
``executor.submit_stored(future_key=key, fn=run, ...)`` with keywords, reads
``executor.futures`` and adds done callbacks: every one of its POSTs failed before
1.0's keyword calls worked again.
"""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask_executor import Executor
from flask_shell2http import Shell2HTTP  # type: ignore[import-untyped]


@pytest.mark.timeout(30)
def test_flask_shell2http_runs_a_command_and_reports_it() -> None:
    app = Flask(__name__)
    executor = Executor(app)
    shell2http = Shell2HTTP(app=app, executor=executor, base_url_prefix="/commands/")
    # The library keeps its commands in a class attribute, shared by every instance: an
    # endpoint of its own for each run lets the test run again in one process.
    endpoint = f"echo-{uuid.uuid4().hex}"
    shell2http.register_command(endpoint=endpoint, command_name="echo")
    client = app.test_client()

    started = client.post(f"/commands/{endpoint}", json={"args": ["hello", "world"]})
    assert started.status_code == 202, started.json
    key = started.json["key"]
    # The library stores the job under its key; its report is ready once that is done.
    executor.futures.result(key, timeout=20)

    report = client.get(f"/commands/{endpoint}?key={key}")
    assert report.status_code == 200, report.json
    assert report.json["report"] == "hello world\n"
    assert report.json["returncode"] == 0
    assert report.json["key"] == key
    executor.shutdown(wait=True)
