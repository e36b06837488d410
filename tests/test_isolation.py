"""A job never sees another request's ``request`` or ``g``, however worker threads are reused.

Issue 2, behaviour item 7. The app (``tests/apps/isolation_app.py``) runs every job on
two worker threads, so each thread runs jobs of many different requests in turn. Its
jobs echo the path, a view argument, a header and ``g``; every response must carry its
own request's data. Requests come from many client threads at once: through the test
client, through werkzeug's threaded server, and through gunicorn's gthread worker.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import threading
import typing as t
import uuid

import pytest
from flask import Flask
from flask_executor import Executor
from werkzeug.serving import make_server

from servers import APPS
from servers import BIN
from servers import free_port
from servers import get_json
from servers import running_server

CLIENTS = 16
PER_CLIENT = 15


def create_app() -> Flask:
    spec = importlib.util.spec_from_file_location("isolation_app", APPS / "isolation_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return t.cast(Flask, module.create_app())


@pytest.fixture
def isolation_app() -> t.Iterator[Flask]:
    app = create_app()
    yield app
    # 'module.app' is built too when the module is loaded; only this one is used here.
    executor = app.extensions["executor"]
    with app.app_context():
        executor.shutdown(wait=True)


def expected(uid: str, set_g: bool) -> dict[str, t.Any]:
    return {
        "path": f"/echo/{uid}",
        "view_arg": uid,
        "header": f"token-{uid}",
        "g": uid if set_g else None,
    }


def without_worker(data: dict[str, t.Any]) -> dict[str, t.Any]:
    return {key: value for key, value in data.items() if key not in ("thread", "pid")}


Fetch = t.Callable[[str, bool], dict[str, t.Any]]


def hammer(fetch: Fetch) -> list[dict[str, t.Any]]:
    """Send CLIENTS x PER_CLIENT requests from CLIENTS threads; check each response."""
    # The clients start together, so their requests interleave from the first one.
    start = threading.Barrier(CLIENTS, timeout=30)

    def client(c: int) -> list[tuple[str, bool, dict[str, t.Any]]]:
        start.wait()
        out = []
        for i in range(PER_CLIENT):
            uid = f"{c}-{i}-{uuid.uuid4().hex[:8]}"
            set_g = (c + i) % 2 == 0
            out.append((uid, set_g, fetch(uid, set_g)))
        return out

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as clients:
        results = [r for rs in clients.map(client, range(CLIENTS)) for r in rs]

    assert len(results) == CLIENTS * PER_CLIENT
    crossed = [
        (uid, data) for uid, set_g, data in results if without_worker(data) != expected(uid, set_g)
    ]
    assert crossed == []
    # Two worker threads per process ran them all: threads were reused again and again.
    threads_per_process: dict[int, set[int]] = {}
    for _, _, data in results:
        threads_per_process.setdefault(data["pid"], set()).add(data["thread"])
    assert all(len(threads) <= 2 for threads in threads_per_process.values())
    return [data for _, _, data in results]


# -- In process ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_test_client_from_many_threads(isolation_app: Flask) -> None:
    local = threading.local()

    def fetch(uid: str, set_g: bool) -> dict[str, t.Any]:
        # One test client per thread: a client keeps cookies and is not shared.
        if not hasattr(local, "client"):
            local.client = isolation_app.test_client()
        response = local.client.get(
            f"/echo/{uid}",
            query_string={"set_g": "1" if set_g else "0"},
            headers={"X-Token": f"token-{uid}"},
        )
        assert response.status_code == 200, response.text
        return t.cast(dict[str, t.Any], response.json)

    hammer(fetch)


@pytest.mark.timeout(120)
def test_jobs_that_outlive_their_requests(isolation_app: Flask) -> None:
    executor: Executor = isolation_app.extensions["executor"]
    client = isolation_app.test_client()
    # These jobs block both workers and queue up behind them; their requests all end.
    later = [f"later-{n}" for n in range(20)]
    for uid in later:
        response = client.get(f"/later/{uid}", headers={"X-Token": f"token-{uid}"})
        assert response.text == "accepted"
    # Now they run, on the same two threads as the jobs of the requests that follow.
    isolation_app.extensions["isolation_release"].set()
    echoed = []
    for n in range(40):
        uid = f"now-{n}"
        response = client.get(f"/echo/{uid}?set_g={n % 2}", headers={"X-Token": f"token-{uid}"})
        echoed.append((uid, n % 2 == 1, t.cast(dict[str, t.Any], response.json)))
    assert [without_worker(data) for _, _, data in echoed] == [
        expected(uid, set_g) for uid, set_g, _ in echoed
    ]
    with isolation_app.app_context():
        late = {uid: executor.futures.result(uid, timeout=30) for uid in later}
    assert {uid: without_worker(data) for uid, data in late.items()} == {
        uid: {"path": f"/later/{uid}", "view_arg": uid, "header": f"token-{uid}", "g": uid}
        for uid in later
    }


def _http_fetch(base_url: str) -> Fetch:
    def fetch(uid: str, set_g: bool) -> dict[str, t.Any]:
        return t.cast(
            dict[str, t.Any],
            get_json(
                f"{base_url}/echo/{uid}?set_g={'1' if set_g else '0'}",
                headers={"X-Token": f"token-{uid}"},
            ),
        )

    return fetch


@pytest.mark.server
@pytest.mark.timeout(120)
def test_werkzeug_threaded_server(isolation_app: Flask) -> None:
    port = free_port()
    server = make_server("127.0.0.1", port, isolation_app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        hammer(_http_fetch(f"http://127.0.0.1:{port}"))
    finally:
        server.shutdown()
        server.server_close()
        serving.join(10)


# -- A real server in its own processes ----------------------------------------------------


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_gunicorn_gthread() -> None:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--worker-class", "gthread",
        "--workers", "2",
        "--threads", "8",
        "--bind", f"127.0.0.1:{port}",
        "isolation_app:app",
    ]  # fmt: skip
    with running_server(argv, port) as base_url:
        hammer(_http_fetch(base_url))
