"""Load: gunicorn's gthread worker, many requests at once, each echoed by a job.

``tests/apps/isolation_app.py`` serves ``/echo/<uid>``: the view submits a job that
reports the path, view argument and header of the request it sees, and returns it. Every
response must come back (0 lost) and be its own request's (0 crossed).
"""

from __future__ import annotations

import concurrent.futures
import time
import typing as t
import uuid

import pytest

from servers import BIN
from servers import free_port
from servers import get_json
from servers import running_server

if t.TYPE_CHECKING:
    from conftest import Size


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gunicorn_gthread_load(size: Size, figures: dict[str, t.Any]) -> None:
    requests: int = size(2_000, 10_000)
    concurrency: int = size(16, 64)
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--worker-class", "gthread",
        "--workers", "2",
        "--threads", str(max(8, concurrency // 2)),
        "--backlog", "2048",
        "--bind", f"127.0.0.1:{port}",
        "isolation_app:app",
    ]  # fmt: skip
    lost: list[str] = []
    crossed: list[tuple[str, t.Any]] = []

    with running_server(argv, port) as base_url:

        def one(uid: str) -> None:
            try:
                data = get_json(f"{base_url}/echo/{uid}", {"X-Token": f"token-{uid}"}, timeout=60)
            except Exception as e:  # counted, then asserted on below
                lost.append(f"{uid}: {e!r}")
                return
            mine = {"path": f"/echo/{uid}", "view_arg": uid, "header": f"token-{uid}"}
            if {key: data.get(key) for key in mine} != mine:
                crossed.append((uid, data))

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as clients:
            done = list(clients.map(one, (uuid.uuid4().hex for _ in range(requests))))
        elapsed = time.monotonic() - started

    figures.update(
        requests=requests,
        concurrency=concurrency,
        lost=len(lost),
        crossed=len(crossed),
        seconds=round(elapsed, 1),
        requests_per_second=round(requests / elapsed),
    )
    assert len(done) == requests
    assert not lost, lost[:5]
    assert not crossed, crossed[:5]
