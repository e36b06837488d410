"""The async views example (``examples/async_views.py``), through the test client."""

from __future__ import annotations

import hashlib
import threading
import types
import typing as t
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from example_modules import example_module

EXAMPLE = Path(__file__).parent.parent / "examples" / "async_views.py"
WAIT = 10.0


@pytest.fixture
def example() -> t.Iterator[types.ModuleType]:
    # A fresh module for each test: its own app, executor and stored futures.
    with example_module(EXAMPLE, "flask_executor_async_example") as module:
        yield module


@pytest.fixture
def client(example: types.ModuleType) -> FlaskClient:
    return t.cast(FlaskClient, example.app.test_client())


def test_index_links_every_view(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    for path in ("/hash", "/price/ACME", "/prices", "/squares", "/slow", "/reports"):
        assert f"http://localhost{path}" in page
    # Fits a phone, with the stylesheet the examples share.
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    with client.get("/static/style.css") as style:  # a file response: closed after
        assert style.status_code == 200
        assert style.mimetype == "text/css"


def test_awaiting_a_sync_job(client: FlaskClient) -> None:
    body = client.get("/hash?text=abc&rounds=3").json
    digest = b"abc"
    for _ in range(3):
        digest = hashlib.sha256(digest).digest()
    assert body == {"text": "abc", "rounds": 3, "sha256": digest.hex()}


def test_awaiting_a_coroutine_job_in_a_worker_and_inline(client: FlaskClient) -> None:
    submitted = client.get("/price/ACME", headers={"X-User": "ada"}).json
    inline = client.get("/price/ACME?inline=1", headers={"X-User": "ada"}).json
    assert submitted is not None and inline is not None
    assert submitted["price"] == inline["price"]
    assert submitted["asked_for"] == inline["asked_for"] == "ada"
    assert submitted["worker"] != inline["worker"]
    assert submitted["worker"].startswith("ThreadPoolExecutor")


def test_gathering_coroutine_jobs(client: FlaskClient) -> None:
    body = client.get("/prices?symbols=A,B,C").json
    assert body is not None
    assert [p["symbol"] for p in body["prices"]] == ["A", "B", "C"]


def test_async_for_over_map(client: FlaskClient) -> None:
    assert client.get("/squares?n=6").json == {"n": 6, "squares": [1, 4, 9, 16, 25, 36]}


def test_fire_and_forget_report(example: types.ModuleType, client: FlaskClient) -> None:
    response = client.post("/reports?seconds=0", headers={"X-User": "ada"})
    assert response.status_code == 202
    body = response.json
    assert body is not None
    report_id = body["id"]
    with example.app.app_context():
        example.executor.futures.result(report_id, timeout=WAIT)
    status = client.get(f"/reports/{report_id}").json
    assert status == {
        "id": report_id,
        "done": True,
        "report": {"for": "ada", "requested_at": "/reports", "took": 0.0},
    }
    assert client.get("/reports/nope").status_code == 404


def test_a_timeout_cancels_a_job_not_started(
    example: types.ModuleType, client: FlaskClient
) -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def occupy() -> None:
        started.release()
        release.wait(WAIT)

    with example.app.app_context():
        # Every worker busy: the view's job stays queued until its await times out.
        blockers = [example.executor.submit(occupy) for _ in range(4)]
        for _ in blockers:
            assert started.acquire(timeout=WAIT)
        try:
            response = client.get("/slow?seconds=0&timeout=0.05")
        finally:
            release.set()
        for blocker in blockers:
            blocker.result(WAIT)
    assert response.status_code == 504
    assert response.json == {"timed_out": True, "job_cancelled": True}


def test_a_job_within_its_timeout(client: FlaskClient) -> None:
    response = client.get(f"/slow?seconds=0&timeout={WAIT}")
    assert response.json == {"timed_out": False, "slept": 0.0}
