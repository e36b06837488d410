"""Async views that await jobs, under real servers and many concurrent clients.

Each server runs ``tests/apps/async_app.py`` on 127.0.0.1 and a free port. Sixteen
clients send 240 requests between them, each with its own id in the path and in a
header. Every response must come back with the data of its own request, as read inside
both jobs through ``request`` and ``g``: nothing lost, nothing crossed.
"""

from __future__ import annotations

import concurrent.futures
import typing as t
import uuid

import pytest

from servers import BIN
from servers import free_port
from servers import get_json
from servers import running_server

CLIENTS = 16
REQUESTS = 240


def gunicorn_gthread(port: int) -> list[str]:
    # Two processes with four threads each; Flask runs every async view in a fresh
    # event loop on a thread of its own.
    return [
        str(BIN / "gunicorn"),
        "--worker-class", "gthread",
        "--workers", "2",
        "--threads", "4",
        "--bind", f"127.0.0.1:{port}",
        "async_app:app",
    ]  # fmt: skip


def uvicorn(app: str) -> t.Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        # WsgiToAsgi has no lifespan support; turning it off keeps the log clean.
        return [
            str(BIN / "uvicorn"),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--lifespan", "off",
            "--no-access-log",
            app,
        ]  # fmt: skip

    return argv


SERVERS = [
    pytest.param(gunicorn_gthread, id="gunicorn-gthread"),
    # One long-lived loop runs every async view; asgiref serves the WSGI calls one at a
    # time in its single shared thread.
    pytest.param(uvicorn("async_app:asgi"), id="uvicorn-wsgi-to-asgi"),
    # The same loop, with the WSGI calls served at once, each in a thread of its own.
    pytest.param(
        uvicorn("async_app:asgi_per_request_thread"),
        id="uvicorn-wsgi-to-asgi-thread-per-request",
    ),
]


def fetch(base_url: str, n: int) -> tuple[str, t.Any]:
    uid = f"{n}-{uuid.uuid4().hex}"
    return uid, get_json(f"{base_url}/item/{uid}", headers={"X-Token": f"token-{uid}"})


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("server", SERVERS)
def test_every_response_carries_its_own_requests_data(
    server: t.Callable[[int], list[str]],
) -> None:
    port = free_port()
    with (
        running_server(server(port), port) as base_url,
        concurrent.futures.ThreadPoolExecutor(CLIENTS) as clients,
    ):
        responses = list(clients.map(lambda n: fetch(base_url, n), range(REQUESTS)))

    assert len(responses) == REQUESTS
    assert len({uid for uid, _ in responses}) == REQUESTS
    for uid, body in responses:
        assert body["uid"] == uid
        kinds = [job["kind"] for job in body["jobs"]]
        assert kinds == ["sync", "coroutine"]
        for job in body["jobs"]:
            assert job["path"] == f"/item/{uid}", job
            assert job["token"] == f"token-{uid}", job
            assert job["g"] == uid, job
            # The jobs ran in the pool, not in the thread that ran the view.
            assert job["thread"] != body["view_thread"], job
