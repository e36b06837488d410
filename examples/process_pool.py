"""CPU-bound jobs on a process pool, with Flask's contexts rebuilt in each worker.

Run it from the repository's root, then open the address it prints,
http://127.0.0.1:5002/ unless that port is taken::

    python examples/process_pool.py

``PORT=8000 python examples/process_pool.py`` asks for another port.

The workers are started with ``spawn``: each is a fresh Python process that knows
nothing of this one. ``EXECUTOR_APP_IMPORT`` tells a worker how to build the app, once,
the way ``flask --app`` would, so that jobs run in an app context of the same app and
see a snapshot of the request that submitted them.
"""

from __future__ import annotations

import html
import math
import os
import signal
import typing as t

from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask import url_for
from flask_executor import Executor

executor = Executor()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_MAX_WORKERS"] = 2
    app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": "spawn"}
    # How a worker finds the app. This module is 'process_pool' to a worker, which has
    # this process's sys.path, where the script's own directory comes first.
    app.config["EXECUTOR_APP_IMPORT"] = "process_pool:create_app()"
    # The largest ?below= served: counting below it takes one worker some 10 s, well
    # within the views' 60 s timeout.
    app.config["PRIME_LIMIT"] = 1_000_000
    executor.init_app(app)

    @app.before_request
    def identify_user() -> None:
        # A stand-in for real authentication. 'g' travels to the worker when it pickles.
        g.user = request.headers.get("X-User", "anonymous")

    app.add_url_rule("/", view_func=index)
    app.add_url_rule("/primes", view_func=primes)
    app.add_url_rule("/primes/ranges", view_func=prime_ranges)
    app.add_url_rule("/crash", view_func=crash)
    return app


# -- Jobs: module-level functions, so that a worker can import them by name ---------------


def count_primes(start: int, stop: int) -> int:
    """Count the primes in ``[start, stop)``: plain CPU work, which threads cannot share."""
    return sum(1 for n in range(max(start, 2), stop) if _is_prime(n))


def _is_prime(n: int) -> bool:
    return all(n % d for d in range(2, math.isqrt(n) + 1))


@executor.job
def count_primes_for_request() -> dict[str, t.Any]:
    """Read what to do from the request snapshot, and report what the worker saw."""
    limit = min(request.args.get("below", 100_000, type=int), current_app.config["PRIME_LIMIT"])
    return {
        "below": limit,
        "primes": count_primes(0, limit),
        "app": current_app.name,
        "requested": f"{request.method} {request.full_path.rstrip('?')}",
        "user": g.user,
        "worker_pid": os.getpid(),
    }


def kill_own_worker() -> None:
    """Stand-in for a crash in C code or the out-of-memory killer."""
    os.kill(os.getpid(), signal.SIGKILL)


# -- Views ---------------------------------------------------------------------------------


def primes() -> dict[str, t.Any]:
    # The job reads 'below' from the request itself; the view only waits for it.
    return {**count_primes_for_request.submit().result(timeout=60), "view_pid": os.getpid()}


def prime_ranges() -> dict[str, t.Any]:
    below = request.args.get("below", 500_000, type=int)
    # At least 1, so that there is a range to split; at most the app's limit.
    below = min(max(below, 1), current_app.config["PRIME_LIMIT"])
    parts = 8
    step = math.ceil(below / parts)
    starts = range(0, below, step)
    stops = [min(start + step, below) for start in starts]
    # 'map' over a process pool; chunksize sends several ranges per round trip.
    counts = list(executor.map(count_primes, starts, stops, chunksize=2, timeout=60))
    return {"below": below, "primes": sum(counts), "per_range": counts}


def crash() -> dict[str, t.Any]:
    failed = executor.submit(kill_own_worker)
    error = failed.exception(timeout=60)
    # The broken pool was replaced (and a warning logged); this job gets a new one.
    after = executor.submit(count_primes, 0, 100).result(timeout=60)
    return {"crashed_job": f"{type(error).__name__}: {error}", "next_job_primes_below_100": after}


def index() -> str:
    # A few seconds each at most; the first also waits for a worker to start.
    links = [
        (url_for("primes", below=200_000, _external=True), "one job in a worker process"),
        (
            url_for("prime_ranges", below=500_000, _external=True),
            "8 ranges with <code>map</code>, shared by the 2 workers",
        ),
        (url_for("crash", _external=True), "kill a worker; the next job gets a new pool"),
    ]
    items = "".join(
        f'<li><a href="{html.escape(url)}">{html.escape(url)}</a>: {what}.</li>'
        for url, what in links
    )
    style = html.escape(url_for("static", filename="style.css"))
    return (
        '<!doctype html>\n<html lang="en">\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>flask-executor: a process pool</title>\n"
        f'<link rel="stylesheet" href="{style}">\n'
        "<h1>flask-executor: a process pool</h1>"
        "<p>Each job runs in a worker process, in an app context of this app, with a"
        " snapshot of the request that submitted it.</p>"
        f"<ul>{items}</ul>"
        f"<p>Try:</p><pre>curl -H 'X-User: ada' '{html.escape(links[0][0])}'</pre>"
    )


if __name__ == "__main__":
    from _serving import serve  # next to this file: port choice, shared by the examples

    serve(create_app(), 5002, "flask-executor process pool example")
