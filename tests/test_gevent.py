"""gevent: jobs under monkey-patching, and a real ``gunicorn -k gevent`` server.

Monkey-patching changes the whole process for good, so it never happens in the test
process: each case runs in a subprocess (a script in ``gevent_scripts/``) or a server.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from apps.process_jobs import Gate
from servers import APPS
from servers import BIN
from servers import free_port
from servers import get_json
from servers import running_server

pytest.importorskip("gevent")

HERE = Path(__file__).parent
SCRIPTS = HERE / "gevent_scripts"
KINDS = [
    pytest.param("custom", id="gevent-threadpool"),
    pytest.param("thread", id="default-thread"),
]


def run_script(name: str, *args: str) -> t.Any:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(APPS), str(HERE.parent)])}
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", KINDS)
def test_jobs_under_monkey_patching_carry_contexts_and_return_real_futures(kind: str) -> None:
    result = run_script("contexts.py", kind)

    # gevent's own pool hands back an object of its own; the executor converts it.
    assert result["pool_itself_returns"] == ("other" if kind == "custom" else "real Future")
    assert result["real_futures"] is True
    assert result["all_done"] is True
    assert result["as_completed"] == list(range(20))
    assert result["mapped"] == list(range(5))
    assert result["contexts"] == [
        {
            "app": "gevent_contexts",
            "path": "/reports/7",
            "args": {"format": "csv"},
            "user": "ada",
        }
    ]
    # gevent's pool runs jobs on native threads; patched threads are greenlets of the
    # main thread.
    assert result["on_main_native_thread"] == [kind == "thread"]


@pytest.fixture(scope="module")
def gevent_server() -> t.Iterator[str]:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "-k",
        "gevent",
        "-w",
        "1",
        "--worker-connections",
        "200",
        "-b",
        f"127.0.0.1:{port}",
        "gevent_app:app",
    ]
    with running_server(argv, port) as base:
        yield base


SERVER_KINDS = [
    pytest.param("thread", id="default-thread"),
    pytest.param("pool", id="gevent-threadpool"),
]


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_gunicorn_gevent_sync_views_submit_jobs_and_read_results(
    gevent_server: str, kind: str
) -> None:
    assert get_json(f"{gevent_server}/patched") == {"threading": True}

    def fetch(n: int) -> t.Any:
        return get_json(f"{gevent_server}/{kind}/{n}", headers={"X-Client": f"{kind}-{n}"})

    with concurrent.futures.ThreadPoolExecutor(16) as clients:
        replies = list(clients.map(fetch, range(80)))

    for n, reply in enumerate(replies):
        report = reply["report"]
        assert report == {
            **report,
            "n": n,
            "app": "gevent_app",
            "path": f"/{kind}/{n}",
            "client": f"{kind}-{n}",
            "user": f"user-{n}",
        }
        # gevent's pool runs the job on another OS thread; the default pool's threads
        # are greenlets on the worker's one thread.
        on_view_thread = report["native_thread"] == reply["view_native_thread"]
        assert on_view_thread is (kind == "thread")
    assert len({reply["pid"] for reply in replies}) == 1


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_view_waiting_for_its_job_does_not_block_the_gevent_worker(
    gevent_server: str, kind: str
) -> None:
    # One worker process. Four views each wait for a job held at the gate: they can all
    # get there only if waiting for a result yields to the other requests.
    names = [f"{kind}-{i}" for i in range(4)]  # both pools have at least 4 workers
    with Gate() as gate, concurrent.futures.ThreadPoolExecutor(len(names)) as clients:
        replies = [
            clients.submit(get_json, f"{gevent_server}/hold/{kind}/{name}?port={gate.port}")
            for name in names
        ]
        arrived = gate.wait_for(len(names))
        gate.open()
        assert sorted(arrived) == sorted(names)
        assert sorted(r.result()["passed"] for r in replies) == sorted(names)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_cancel_under_monkey_patching() -> None:
    # On gevent's own pool under monkey-patching, the job's worker thread may not touch
    # its future; cancelling must still follow the rules of concurrent.futures.
    result = run_script("cancel.py")

    assert result["started"] is True
    # A queued job can be cancelled, and 'wait' then reports it done.
    assert result["cancel_queued"] is True
    assert result["all_reported_done"] is True
    # A running one cannot, and says it is running.
    assert result["cancel_running"] is False
    assert result["running_is_running"] is True
    assert result["results"] == ["held", True, 2]
