"""Under gevent's monkey-patching, cancel jobs of gevent's own pool and print what happened.

Usage: ``python cancel.py``. Prints one JSON object. The pool has one native worker
thread, held by a first job while the test cancels a queued job and tries to cancel the
running one.
"""

from gevent import monkey

# First, before anything else imports 'threading', 'socket' or 'ssl'.
monkey.patch_all()

import concurrent.futures  # noqa: E402
import json  # noqa: E402
import typing as t  # noqa: E402

from flask import Flask  # noqa: E402
from flask_executor import Executor  # noqa: E402

# Locks of the operating system's, used as one-shot signals between the job's native
# thread and the main greenlet. (The original 'threading.Event' would still build itself
# from the patched module's locks.)
allocate_os_lock = monkey.get_original("_thread", "allocate_lock")


def os_signal() -> t.Any:
    signal = allocate_os_lock()
    signal.acquire()
    return signal  # 'release()' gives it; 'acquire(timeout=...)' waits for it


def hold(started: t.Any, release: t.Any) -> str:
    started.release()
    release.acquire(timeout=30)
    return "held"


def echo(n: int) -> int:
    return n


def main() -> dict[str, t.Any]:
    app = Flask("gevent_cancel")
    app.config["EXECUTOR_TYPE"] = "custom"
    app.config["EXECUTOR_POOL_CLASS"] = "gevent.threadpool:ThreadPoolExecutor"
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    started, release = os_signal(), os_signal()
    report: dict[str, t.Any] = {}
    with app.app_context():
        running = executor.submit(hold, started, release)
        report["started"] = started.acquire(timeout=10)
        queued = executor.submit(echo, 1)
        report["cancel_queued"] = queued.cancel()
        report["cancel_running"] = running.cancel()
        report["running_is_running"] = running.running()
        release.release()
        after = executor.submit(echo, 2)
        _, not_done = concurrent.futures.wait([running, queued, after], timeout=20)
        report["all_reported_done"] = not not_done
        report["results"] = [running.result(0), queued.cancelled(), after.result(0)]
    executor.shutdown()
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
