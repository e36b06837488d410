"""Shutdown races: threads submit while another shuts the pool down.

Each submit either returns a future or raises RuntimeError (the executor is shut down).
Whatever ``wait`` and ``cancel_futures`` say, no future may stay pending once
``shutdown(wait=True)`` has returned: each is done, failed or cancelled.
"""

from __future__ import annotations

import concurrent.futures
import threading
import typing as t

import pytest
from flask import Flask
from flask_executor import Executor

if t.TYPE_CHECKING:
    from conftest import Size

SUBMITTERS = 4


def slow_enough(release: threading.Event, n: int) -> int:
    # Jobs wait until shutdown has begun, so that some are queued when it comes.
    release.wait(10)
    return n


@pytest.mark.parametrize("wait", [True, False], ids=["wait", "no-wait"])
@pytest.mark.parametrize("cancel_futures", [True, False], ids=["cancel", "keep"])
@pytest.mark.parametrize("pool_type", ["thread", "process"])
@pytest.mark.timeout(300)
def test_submitters_racing_shutdown(
    size: Size,
    figures: dict[str, t.Any],
    wait: bool,
    cancel_futures: bool,
    pool_type: str,
) -> None:
    rounds: int = size(3, 20) if pool_type == "process" else size(10, 100)
    totals = {"submitted": 0, "refused": 0, "done": 0, "cancelled": 0, "pending": 0}
    for _ in range(rounds):
        for key, value in race(pool_type, wait, cancel_futures).items():
            totals[key] += value
    figures.update(rounds=rounds, **totals)
    assert totals["pending"] == 0
    assert totals["refused"] > 0 and totals["submitted"] > 0


def race(pool_type: str, wait: bool, cancel_futures: bool) -> dict[str, int]:
    app = Flask("shutdown_race")
    app.config.update(EXECUTOR_TYPE=pool_type, EXECUTOR_MAX_WORKERS=2)
    if pool_type == "process":
        app.config.update(
            EXECUTOR_PUSH_APP_CONTEXT=False, EXECUTOR_POOL_KWARGS={"mp_context": "forkserver"}
        )
    executor = Executor(app)
    # A process job cannot wait on an event of this process: it gets a plain job.
    release = threading.Event()
    go = threading.Barrier(SUBMITTERS + 1)
    futures: list[concurrent.futures.Future[t.Any]] = []
    refused = [0]
    lock = threading.Lock()
    enough = threading.Event()

    def submit() -> None:
        go.wait(10)
        for n in range(100_000):
            try:
                if pool_type == "thread":
                    future = executor.submit(slow_enough, release, n)
                else:
                    future = executor.submit(abs, -n)
            except RuntimeError:
                with lock:
                    refused[0] += 1
                return
            with lock:
                futures.append(future)
                if len(futures) >= 50:
                    enough.set()

    threads = [threading.Thread(target=submit) for _ in range(SUBMITTERS)]
    for thread in threads:
        thread.start()
    go.wait(10)
    # Shut down once jobs are queued, while the submitters are still going. Thread jobs
    # are held until then; a waiting shutdown lets them go first, or it would wait on
    # them for ever.
    assert enough.wait(30)
    if wait:
        release.set()
    executor.shutdown(wait=wait, cancel_futures=cancel_futures)
    release.set()
    for thread in threads:
        thread.join(30)
    # A later shutdown(wait=True) waits for whatever an earlier one left running.
    executor.shutdown(wait=True)
    done, not_done = concurrent.futures.wait(futures, timeout=30)
    return {
        "submitted": len(futures),
        "refused": refused[0],
        "done": sum(1 for f in done if not f.cancelled()),
        "cancelled": sum(1 for f in done if f.cancelled()),
        "pending": len(not_done),
    }
