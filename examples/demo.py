"""A small app that runs background jobs, stores their futures and reports on them.

Run it from the repository's root, then open the address it prints,
http://127.0.0.1:5000/ unless that port is taken::

    python examples/demo.py

``PORT=8000 python examples/demo.py`` asks for another port. The index page lists what
to try, with links and curl commands.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import html
import threading
import time
import typing as t
import uuid

from flask import Flask
from flask import g
from flask import request
from flask import url_for
from flask_executor import Executor
from flask_executor import JobState

app = Flask(__name__)
app.config["EXECUTOR_MAX_WORKERS"] = 4
# Keep up to 100 jobs for the status pages; the oldest finished ones go first.
app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = 100
# A job that fails is logged to the console with its traceback, even if nobody asks.
app.config["EXECUTOR_PROPAGATE_EXCEPTIONS"] = True
executor = Executor(app)

# Jobs see every context variable of the request that submitted them.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

MAX_SECONDS = 60.0


@app.before_request
def identify_request() -> None:
    # Stand-ins for what real middleware sets: the user on 'g', a request id in a
    # context variable. Jobs submitted by the view see both.
    g.user = request.headers.get("X-User", "anonymous")
    request_id.set(request.headers.get("X-Request-Id") or uuid.uuid4().hex[:8])


def slow_job(seconds: float, fail: bool) -> dict[str, t.Any]:
    """Pretend to work for a while, then report what the job could see."""
    time.sleep(seconds)
    if fail:
        raise RuntimeError(f"The job was asked to fail after {seconds} s.")
    return {
        "slept": seconds,
        # The request that submitted the job, read from the job's worker thread.
        "submitted_from": f"{request.method} {request.full_path.rstrip('?')}",
        "user": g.user,
        "request_id": request_id.get(),
        "worker": threading.current_thread().name,
    }


@executor.job
def square(n: int) -> dict[str, t.Any]:
    return {"n": n, "square": n * n, "worker": threading.current_thread().name}


def _float_arg(name: str, default: float) -> float:
    try:
        value = float(request.args.get(name, default))
    except ValueError:
        value = default
    return min(max(value, 0.0), MAX_SECONDS)


@app.post("/jobs")
def start_job() -> tuple[dict[str, t.Any], int]:
    """Start a job and store its future under a new id."""
    seconds = _float_arg("seconds", 5.0)
    fail = request.args.get("fail", "").lower() in {"1", "true", "yes"}
    job_id = uuid.uuid4().hex[:12]
    executor.submit_stored(job_id, slow_job, seconds, fail)
    return {
        "id": job_id,
        "status_url": url_for("job_status", job_id=job_id, _external=True),
    }, 202


def _describe(job_id: t.Hashable) -> dict[str, t.Any]:
    future = executor.futures.get(job_id)
    if future is None:
        return {"id": job_id, "state": "UNKNOWN"}
    # PENDING, RUNNING, FINISHED, FAILED or CANCELLED; a JobState is a str, for JSON.
    state = future.state
    if state is JobState.FAILED:
        exc = future.exception()
        return {"id": job_id, "state": state, "error": f"{type(exc).__name__}: {exc}"}
    if state is JobState.FINISHED:
        return {"id": job_id, "state": state, "result": future.result()}
    return {"id": job_id, "state": state}


def _unknown(job_id: str) -> dict[str, t.Any]:
    return {"id": job_id, "state": "UNKNOWN", "error": "No job is stored under this id."}


@app.get("/jobs/<job_id>")
def job_status(job_id: str) -> tuple[dict[str, t.Any], int]:
    """Report on a stored job. ``?wait=N`` waits up to N seconds for it to finish."""
    future = executor.futures.get(job_id)
    if future is None:
        return _unknown(job_id), 404
    wait = _float_arg("wait", 0.0)
    if wait:
        # A long poll: the answer comes as soon as the job is done, or after 'wait'.
        concurrent.futures.wait([future], timeout=wait)
    return _describe(job_id), 200


@app.delete("/jobs/<job_id>")
def forget_job(job_id: str) -> tuple[dict[str, t.Any], int]:
    """Cancel the job if it has not started, and drop its stored future."""
    description = _describe(job_id)
    future = executor.futures.pop(job_id)
    if future is None:
        return _unknown(job_id), 404
    description["cancelled"] = future.cancel()
    return description, 200


@app.get("/jobs")
def list_jobs() -> dict[str, t.Any]:
    """Every stored job, oldest first."""
    return {"jobs": [_describe(key) for key in executor.futures]}


@app.get("/squares")
def squares() -> dict[str, t.Any]:
    """Square 1..n with ``map``: one job per number, results in order."""
    n = int(min(_float_arg("n", 8), 1000))
    return {"results": list(square.map(range(1, n + 1)))}


INDEX = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flask-executor demo</title>
<link rel="stylesheet" href="{style}">
<h1>flask-executor demo</h1>
<p>Each job runs on a pool of 4 worker threads. Its future is stored under an id, and the
status page reports on it. Jobs see the request that started them, its <code>g.user</code>
(from an <code>X-User</code> header) and its request id (a context variable).</p>

<h2>Start a job</h2>
<form method="post" action="{start}?seconds=10"><button>Start a 10 s job</button></form>
<pre>curl -X POST '{start}?seconds=10' -H 'X-User: ada'
curl -X POST '{start}?seconds=2&amp;fail=1'</pre>
<p>The answer holds the job's <code>status_url</code>.</p>

<h2>Check on it</h2>
<pre>curl {jobs}/ID
# Wait until the job is done, 30 s at most:
curl '{jobs}/ID?wait=30'
# Cancel it if it has not started, and forget it:
curl -X DELETE {jobs}/ID</pre>
<p><a href="{jobs}">All stored jobs</a>: {count} now.</p>

<h2>Map</h2>
<p><a href="{squares}?n=10">Square 1 to 10</a>, one job per number.</p>
<pre>curl '{squares}?n=10'</pre>
"""


@app.get("/")
def index() -> str:
    return INDEX.format(
        style=html.escape(url_for("static", filename="style.css")),
        start=html.escape(url_for("start_job", _external=True)),
        jobs=html.escape(url_for("list_jobs", _external=True)),
        squares=html.escape(url_for("squares", _external=True)),
        count=len(executor.futures),
    )


if __name__ == "__main__":
    from _serving import serve  # next to this file: port choice, shared by the examples

    serve(app, 5000, "flask-executor demo", executor)
