"""Fork: ``os.fork()`` while threads submit jobs; every child can run jobs of its own.

The child has only the forking thread. Whatever the parent's workers and submitters
held at that instant (the pool's locks, the stored futures' lock, half-queued jobs), the
child must build a fresh pool and run jobs; the parent goes on as if nothing happened.
"""

from __future__ import annotations

import os
import select
import threading
import time
import typing as t

import pytest
from flask import current_app
from flask import Flask
from flask_executor import Executor

if t.TYPE_CHECKING:
    from conftest import Size

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12 warns that the process has threads when it forks: that is the point.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

SUBMITTERS = 4
CHILD_TIMEOUT = 30.0


def in_child(executor: Executor, app: Flask) -> bytes:
    with app.app_context():
        plain = executor.submit(lambda: current_app.name).result(10)
        stored = executor.submit_stored("child", pow, 2, 10).result(10)
        mapped = list(executor.map(abs, [-1, -2, -3]))
    return f"{plain} {stored} {mapped}".encode()


@pytest.mark.timeout(300)
def test_fork_while_threads_submit(size: Size, figures: dict[str, t.Any]) -> None:
    forks: int = size(100, 1_000)
    app = Flask("forking")
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    executor = Executor(app)
    stop = threading.Event()
    submitted = [0]

    def submit() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with app.app_context():
                executor.submit_stored(("parent", threading.get_ident(), n), pow, n, 2)
                executor.submit(pow, n, 3).result(10)
            submitted[0] += 1

    threads = [threading.Thread(target=submit) for _ in range(SUBMITTERS)]
    for thread in threads:
        thread.start()
    failures: list[str] = []
    started = time.monotonic()
    try:
        for _ in range(forks):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report one line, then leave without cleanup
                status = 1
                try:
                    os.close(read_fd)
                    os.write(write_fd, in_child(executor, app) + b"\n")
                    status = 0
                finally:
                    os._exit(status)
            os.close(write_fd)
            try:
                ready, _, _ = select.select([read_fd], [], [], CHILD_TIMEOUT)
                line = os.read(read_fd, 4096) if ready else b"(no answer: hung)"
            finally:
                os.close(read_fd)
            if not ready:
                os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
            if line != b"forking 1024 [1, 2, 3]\n" or os.waitstatus_to_exitcode(status) != 0:
                failures.append(f"{line!r}, exit status {status}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    with app.app_context():
        # The parent still serves.
        assert executor.submit(pow, 3, 3).result(10) == 27
        executor.shutdown(wait=True)
    figures.update(
        forks=forks,
        children_failed=len(failures),
        parent_jobs_meanwhile=submitted[0] * 2,
        seconds=round(time.monotonic() - started, 1),
    )
    assert not failures, failures[:3]
    assert not any(thread.is_alive() for thread in threads)
