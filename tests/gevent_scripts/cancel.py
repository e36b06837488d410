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

# Events of the operating system's: the job waits on its native thread, the main greenlet
# sets and waits on them directly.
OsEvent = monkey.get_original("threading", "Event")


def hold(started: t.Any, release: t.Any) -> str:
    started.set()
    release.wait(30)
    return "held"


def echo(n: int) -> int:
    return n


def main() -> dict[str, t.Any]:
    app = Flask("gevent_cancel")
    app.config["EXECUTOR_TYPE"] = "custom"
    app.config["EXECUTOR_POOL_CLASS"] = "gevent.threadpool:ThreadPoolExecutor"
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    started, release = OsEvent(), OsEvent()
    report: dict[str, t.Any] = {}
    with app.app_context():
        running = executor.submit(hold, started, release)
        report["started"] = started.wait(10)
        queued = executor.submit(echo, 1)
        report["cancel_queued"] = queued.cancel()
        report["cancel_running"] = running.cancel()
        report["running_is_running"] = running.running()
        release.set()
        after = executor.submit(echo, 2)
        _, not_done = concurrent.futures.wait([running, queued, after], timeout=20)
        report["all_reported_done"] = not not_done
        report["results"] = [running.result(0), queued.cancelled(), after.result(0)]
    executor.shutdown()
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
