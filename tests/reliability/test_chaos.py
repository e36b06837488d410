"""Chaos: a worker process is SIGKILLed every 200 ms while four threads submit jobs.

The pool's workers are forked, so that a new pool is up long before the next kill. Each
kill breaks the process pool; the jobs in flight fail with BrokenProcessPool and the
next job builds a new pool. What must hold: every future settles (with its result or
BrokenProcessPool), none hangs, and the pool serves normally once the killing stops.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import sys
import threading
import time
import typing as t
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from flask import Flask
from flask_executor import Executor

from apps import process_jobs as jobs

if t.TYPE_CHECKING:
    from conftest import Size

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the pool's workers through /proc"
)

SUBMITTERS = 4
KILL_EVERY = 0.2
SETTLE_TIMEOUT = 60.0


def worker_pids() -> list[int]:
    """The pool's worker processes: children forked from this process, so running its
    command line (the resource tracker, also a child, runs another)."""
    me = os.getpid()
    own_command = Path(f"/proc/{me}/cmdline").read_bytes()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # The parent pid is the second field after the command, which is in parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and command == own_command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
# 'fork' starts a replacement worker in milliseconds, so jobs run between the kills;
# Python 3.12 warns that the submitting threads exist when it forks.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_sigkill_a_worker_every_200_ms(size: Size, figures: dict[str, t.Any]) -> None:
    duration: float = size(3.0, 30.0)
    app = Flask("chaos")
    app.config.update(
        EXECUTOR_TYPE="process",
        EXECUTOR_MAX_WORKERS=2,
        EXECUTOR_PUSH_APP_CONTEXT=False,
        EXECUTOR_POOL_KWARGS={"mp_context": "fork"},
    )
    executor = Executor(app)
    stop = threading.Event()
    futures: list[concurrent.futures.Future[t.Any]] = []
    refused: list[BaseException] = []
    lock = threading.Lock()

    def submit() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                future = executor.submit(jobs.square, n)
            except BrokenProcessPool as e:  # the pool broke while this job went in
                refused.append(e)
                continue
            with lock:
                futures.append(future)
            # Bounded backlog: wait a little on the job before the next one, so that
            # the kills hit jobs in flight rather than a queue of thousands.
            concurrent.futures.wait([future], timeout=0.05)

    kills = 0
    submitters = [threading.Thread(target=submit) for _ in range(SUBMITTERS)]
    for thread in submitters:
        thread.start()
    try:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            # The pause is the scenario itself: one kill per period.
            stop.wait(KILL_EVERY)
            pids = worker_pids()
            if pids:
                try:
                    os.kill(random.choice(pids), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
    finally:
        stop.set()
        for thread in submitters:
            thread.join(SETTLE_TIMEOUT)

    done, not_done = concurrent.futures.wait(futures, timeout=SETTLE_TIMEOUT)
    results = sum(1 for f in done if f.exception() is None)
    broken = sum(1 for f in done if isinstance(f.exception(), BrokenProcessPool))
    other = [f.exception() for f in done if f.exception() is not None]
    other = [e for e in other if not isinstance(e, BrokenProcessPool)]
    # Afterwards the pool serves as if nothing had happened.
    after = [executor.submit(jobs.square, n) for n in range(20)]
    served = [f.result(SETTLE_TIMEOUT) for f in after]
    executor.shutdown(wait=True)

    figures.update(
        seconds=duration,
        kills=kills,
        jobs=len(futures),
        succeeded=results,
        broken=broken,
        refused_at_submit=len(refused),
        hung=len(not_done),
        python=sys.version.split()[0],
    )
    assert not any(thread.is_alive() for thread in submitters)
    assert not not_done
    assert not other, other[:3]
    assert kills > 0 and broken > 0
    assert served == [n * n for n in range(20)]
