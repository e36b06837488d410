"""The apps handed to new users: README's demo (``examples/demo.py``) and the quickstart.

The demo is tested through the test client, and served for real exactly as README tells
a new user to run it, ``python examples/demo.py``, on a free port, following one stored
job from start to finish. The quickstart's app is taken from ``docs/quickstart.rst``
as it is printed there, so that pasting it keeps working.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import types
import typing as t
import urllib.request
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from example_modules import example_module
from servers import free_port
from servers import get
from servers import get_json
from servers import running_server

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "examples" / "demo.py"


@pytest.fixture
def demo() -> t.Iterator[types.ModuleType]:
    # A fresh module each time: each test gets its own app, executor and stored futures.
    with example_module(DEMO, "flask_executor_demo") as module:
        yield module


@pytest.fixture
def client(demo: types.ModuleType) -> FlaskClient:
    client: FlaskClient = demo.app.test_client()
    return client


def test_index_tells_what_to_try(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = response.text
    assert "curl -X POST 'http://localhost/jobs?seconds=10'" in page
    assert "curl 'http://localhost/jobs/ID?wait=30'" in page
    assert 'href="http://localhost/squares?n=10"' in page
    assert 'href="http://localhost/jobs"' in page
    # Fits a phone, with the stylesheet the examples share.
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    with client.get("/static/style.css") as style:  # a file response: closed after
        assert style.status_code == 200
        assert style.mimetype == "text/css"
        assert "@media (max-width:" in style.text


def test_stored_job_runs_with_the_request_that_started_it(client: FlaskClient) -> None:
    started = client.post("/jobs?seconds=0", headers={"X-User": "ada", "X-Request-Id": "req-1"})
    assert started.status_code == 202
    job_id = started.json["id"]
    assert started.json["status_url"] == f"http://localhost/jobs/{job_id}"

    # Without 'wait' the status is whatever the job is doing at this instant.
    assert client.get(f"/jobs/{job_id}").json["state"] in {"PENDING", "RUNNING", "FINISHED"}

    status = client.get(f"/jobs/{job_id}?wait=30").json
    assert status["state"] == "FINISHED"
    result = status["result"]
    assert result["submitted_from"] == "POST /jobs?seconds=0"
    assert result["user"] == "ada"
    assert result["request_id"] == "req-1"
    assert result["worker"].startswith("ThreadPoolExecutor")

    listed = client.get("/jobs").json["jobs"]
    assert [job["id"] for job in listed] == [job_id]

    forgotten = client.delete(f"/jobs/{job_id}")
    assert forgotten.status_code == 200
    assert forgotten.json["cancelled"] is False
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert client.get("/jobs").json["jobs"] == []


class _ErrorRecords(logging.Handler):
    """Collects ERROR records and signals the first, so a test waits on it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.arrived.set()


@pytest.mark.keeps_objects(
    "pytest keeps the captured log record of the failed job until the test is reported;"
    " its traceback's frame holds the demo module's globals, and so its app"
)
def test_failed_job_is_reported_and_logged(demo: types.ModuleType, client: FlaskClient) -> None:
    errors = _ErrorRecords()
    logging.getLogger("flask_executor").addHandler(errors)
    try:
        job_id = client.post("/jobs?seconds=0&fail=yes").json["id"]
        status = client.get(f"/jobs/{job_id}?wait=30").json
        assert status == {
            "id": job_id,
            "state": "FAILED",
            "error": "RuntimeError: The job was asked to fail after 0.0 s.",
        }
        # EXECUTOR_PROPAGATE_EXCEPTIONS is on in the demo. Its log line is written by a
        # done callback, which may run just after the status view has woken up.
        assert errors.arrived.wait(30)
    finally:
        logging.getLogger("flask_executor").removeHandler(errors)
    (record,) = errors.records
    assert record.name == "flask_executor"
    assert record.getMessage() == (
        f"The job 'flask_executor_demo.slow_job' stored under {job_id!r} failed."
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_unknown_job_is_404(client: FlaskClient) -> None:
    unknown = {"id": "nope", "state": "UNKNOWN", "error": "No job is stored under this id."}
    for response in client.get("/jobs/nope"), client.delete("/jobs/nope"):
        assert (response.status_code, response.json) == (404, unknown)


def test_squares_uses_map_in_order(client: FlaskClient) -> None:
    results = client.get("/squares?n=6").json["results"]
    assert [r["square"] for r in results] == [1, 4, 9, 16, 25, 36]


@pytest.mark.server
@pytest.mark.timeout(90)
def test_demo_runs_as_a_real_server() -> None:
    port = free_port()
    argv = [sys.executable, str(DEMO)]
    with running_server(argv, port, cwd=ROOT, env={"PORT": str(port)}) as base:
        status, page = get(f"{base}/")
        assert status == 200
        assert f"curl -X POST '{base}/jobs?seconds=10'" in page

        request = urllib.request.Request(
            f"{base}/jobs?seconds=0.2",
            method="POST",
            headers={"X-User": "grace", "X-Request-Id": "real-1"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            started = json.loads(response.read())
        status_url = started["status_url"]
        assert status_url == f"{base}/jobs/{started['id']}"

        assert get_json(status_url)["state"] in {"PENDING", "RUNNING", "FINISHED"}
        # The status view waits on the stored future itself, so this returns as soon as
        # the job is done; no polling interval to guess.
        final = get_json(f"{status_url}?wait=30")
        assert final["state"] == "FINISHED"
        assert final["result"]["user"] == "grace"
        assert final["result"]["request_id"] == "real-1"
        assert final["result"]["submitted_from"] == "POST /jobs?seconds=0.2"

        assert [job["id"] for job in get_json(f"{base}/jobs")["jobs"]] == [started["id"]]
        squares = get_json(f"{base}/squares?n=3")["results"]
        assert [r["square"] for r in squares] == [1, 4, 9]


@pytest.mark.server
@pytest.mark.timeout(90)
def test_demo_serves_on_a_free_port_when_its_own_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        process = subprocess.Popen(
            [sys.executable, str(DEMO)],
            cwd=ROOT,
            env={**os.environ, "PORT": str(busy), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            lines: list[str] = []
            # Read until the server says it listens (werkzeug's own line), or exits.
            for line in process.stdout:
                lines.append(line)
                if "Running on http://127.0.0.1:" in line:
                    break
            output = "".join(lines)
            match = re.search(r"open http://127\.0\.0\.1:(\d+)/ for what to try", output)
            assert match is not None, output
            port = int(match[1])
            assert port != busy
            assert f" * Port {busy} is in use; serving on port {port} instead.\n" in lines
            assert f"Running on http://127.0.0.1:{port}" in output
            status, page = get(f"http://127.0.0.1:{port}/")
            assert status == 200
            assert f"curl -X POST 'http://127.0.0.1:{port}/jobs?seconds=10'" in page
            assert get(f"http://127.0.0.1:{port}/static/style.css")[0] == 200
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
            if process.stdout is not None:
                process.stdout.close()


@pytest.mark.server
@pytest.mark.timeout(90)
def test_demo_says_it_waits_for_running_jobs_after_ctrl_c_and_a_second_one_quits() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(DEMO)],
        cwd=ROOT,
        env={**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # As in a terminal, whatever this test process does with SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "Running on http://127.0.0.1:" in line:
                break
        base = f"http://127.0.0.1:{port}"
        request = urllib.request.Request(f"{base}/jobs?seconds=60", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            status_url = json.loads(response.read())["status_url"]
        # Running, not queued: a queued job would be cancelled, with nothing to wait for.
        while get_json(status_url)["state"] != "RUNNING":
            pass

        process.send_signal(signal.SIGINT)
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl+C" in line and "Stopped" in line:
                break
        assert lines[-1] == (
            " * Stopped. Running jobs finish first; press Ctrl+C again to quit now.\n"
        ), lines
        assert process.poll() is None  # waiting for the 60 s job

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("port", ["abc", "99999", "-1"])
def test_demo_refuses_a_port_that_is_not_a_port_number(port: str) -> None:
    # At once, with a sentence naming the value, before any server starts.
    finished = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=ROOT,
        env={**os.environ, "PORT": port},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert finished.returncode == 1
    assert finished.stderr == (
        f"PORT must be a port number from 0 to 65535, such as 8000, not {port!r}.\n"
    )
    assert "Running on" not in finished.stdout


def test_readme_commands_are_the_ones_ci_and_these_tests_run() -> None:
    # README promises exactly two one-line commands (its install block aside); .ci/run
    # must run the test one verbatim, and the demo one must start the file that the
    # server test above starts.
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```sh\n([^`\n]+)\n```$", readme, flags=re.MULTILINE)
    assert len(commands) == 2, commands
    demo_command, test_command = commands
    assert demo_command.endswith(".venv/bin/python examples/demo.py")
    assert test_command.endswith(".venv/bin/python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"({test_command})" in ci.splitlines()


QUICKSTART = ROOT / "docs" / "quickstart.rst"


def _quickstart_app_source() -> str:
    # The first Python block of the page is the app that readers save as 'app.py'.
    text = QUICKSTART.read_text()
    match = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    assert match is not None
    return textwrap.dedent(match.group(1))


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_quickstart_app_works_as_printed() -> None:
    namespace: dict[str, t.Any] = {"__name__": "quickstart_app"}
    exec(compile(_quickstart_app_source(), str(QUICKSTART), "exec"), namespace)
    app, executor = namespace["app"], namespace["executor"]
    client = app.test_client()
    try:
        missing = client.get("/result/7")
        assert missing.status_code == 404
        assert missing.json == {"error": "No job for 7 is stored; start it at /start/7."}
        started = client.get("/start/7")
        assert (started.status_code, started.json) == (202, {"started": 7})
        # Starting it again is a conflict, with a sentence; never a 500.
        again = client.get("/start/7")
        assert again.status_code == 409
        assert again.json == {"error": "The job for 7 is already started; see /result/7."}
        with app.app_context():
            future = executor.futures.get(7)
        assert future is not None
        # While it runs the answer is its state, as a plain string (unless the machine
        # was slow enough for the 2 s job to have finished already).
        early = client.get("/result/7")
        if early.status_code == 202:
            assert early.json["state"] in {"PENDING", "RUNNING"}
        else:
            assert early.status_code == 200
            assert early.json == {"n": 7, "square": 49, "asked_from": "/start/7"}
            return
        future.result(timeout=30)  # the page's job sleeps 2 s

        done = client.get("/result/7")
        assert done.status_code == 200
        assert done.json == {"n": 7, "square": 49, "asked_from": "/start/7"}
        # Popped once read, as the page shows.
        assert client.get("/result/7").status_code == 404
    finally:
        with app.app_context():
            executor.shutdown(wait=True)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_quickstart_two_readers_of_one_result(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two requests read a finished job at the same moment (a browser and curl polling):
    # both find it stored and done, and one pops it first. The other still gets the
    # result, never a 500.
    namespace: dict[str, t.Any] = {"__name__": "quickstart_app"}
    exec(compile(_quickstart_app_source(), str(QUICKSTART), "exec"), namespace)
    app, executor = namespace["app"], namespace["executor"]
    client = app.test_client()
    try:
        assert client.get("/start/7").status_code == 202
        with app.app_context():
            collection = executor.futures
        future = collection.get(7)
        assert future is not None
        future.result(timeout=30)  # the page's job sleeps 2 s
        real_pop = collection.pop

        def popped_by_the_other_reader_first(key: t.Hashable) -> t.Any:
            real_pop(key)  # the other request's pop, just before this one's
            return real_pop(key)

        monkeypatch.setattr(collection, "pop", popped_by_the_other_reader_first)
        done = client.get("/result/7")
        assert done.status_code == 200
        assert done.json == {"n": 7, "square": 49, "asked_from": "/start/7"}
        assert 7 not in collection
    finally:
        with app.app_context():
            executor.shutdown(wait=True)
