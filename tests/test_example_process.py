"""Smoke test of ``examples/process_pool.py``, served for real as its docstring says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from servers import free_port
from servers import get
from servers import get_json
from servers import running_server

ROOT = Path(__file__).parent.parent


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_process_pool_example_runs_as_a_real_server() -> None:
    port = free_port()
    argv = [sys.executable, "examples/process_pool.py"]
    with running_server(argv, port, cwd=ROOT, env={"PORT": str(port)}) as base:
        status, index = get(f"{base}/")
        style_status, style = get(f"{base}/static/style.css")
        first = get_json(f"{base}/primes?below=1000", headers={"X-User": "ada"})
        ranges = get_json(f"{base}/primes/ranges?below=10000")
        # Out of range, clamped rather than a 500.
        nothing = get_json(f"{base}/primes/ranges?below=0")
        crash = get_json(f"{base}/crash")
        after_crash = get_json(f"{base}/primes?below=100")

    assert status == 200
    assert f"{base}/primes?below=200000" in index
    assert f"{base}/primes/ranges?below=500000" in index
    # Fits a phone, with the stylesheet the examples share.
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in index
    assert '<link rel="stylesheet" href="/static/style.css">' in index
    assert style_status == 200
    assert "@media (max-width:" in style
    # Built in a spawned worker from EXECUTOR_APP_IMPORT, with the request's snapshot.
    assert first == {
        **first,
        "app": "process_pool",
        "below": 1000,
        "primes": 168,
        "requested": "GET /primes?below=1000",
        "user": "ada",
    }
    assert first["worker_pid"] != first["view_pid"]
    assert ranges["primes"] == 1229
    assert len(ranges["per_range"]) == 8
    assert nothing == {"below": 1, "primes": 0, "per_range": [0]}
    assert crash["crashed_job"].startswith("BrokenProcessPool: ")
    assert crash["next_job_primes_below_100"] == 25
    assert after_crash["primes"] == 25
    assert after_crash["user"] == "anonymous"
