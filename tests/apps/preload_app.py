"""An app for ``gunicorn --preload -w 2``: its executors are made and used before the fork.

With ``--preload``, gunicorn imports this module once, in the master, and then forks the
workers. By then both executors have a pool with live workers in the master, and two
stored futures: one finished, one still running. Each worker must build pools of its own
and must not pretend that the master's running job runs there too.

Run it as ``gunicorn --preload -w 2 -c python:preload_app preload_app:app``: the ``-c``
part reads :func:`on_exit` as a server hook.
"""

from __future__ import annotations

import os
import threading
import typing as t

from flask import current_app
from flask import Flask
from flask import request
from flask_executor import Executor
from process_jobs import pass_gate

app = Flask(__name__)
app.config["PROC_EXECUTOR_TYPE"] = "process"
app.config["PROC_EXECUTOR_MAX_WORKERS"] = 1
app.config["PROC_EXECUTOR_POOL_KWARGS"] = {"mp_context": "fork"}
executor = Executor(app)
process_executor = Executor(app, name="proc")

MASTER_PID = os.getpid()
# Holds the master's stored job until the server exits (see on_exit).
_release_master_job = threading.Event()


def job_report(n: int) -> dict[str, t.Any]:
    return {
        "n": n,
        "square": n * n,
        "pid": os.getpid(),
        "app": current_app.name,
        "path": request.path,
    }


def square(n: int) -> int:
    return n * n


def process_pid() -> int:
    return os.getpid()


with app.app_context():
    # Use both pools before the fork, so that the master has worker threads and a
    # worker process that the forked children must not rely on.
    assert executor.submit(square, 2).result(timeout=30) == 4
    assert process_executor.submit(square, 3).result(timeout=30) == 9
    executor.submit_stored("finished", square, 5).result(timeout=30)
    executor.submit_stored("running", _release_master_job.wait)


def on_exit(server: object) -> None:
    """Gunicorn hook, in the master: let the held job end so that the master can exit."""
    _release_master_job.set()


@app.get("/job/<int:n>")
def job(n: int) -> dict[str, t.Any]:
    report = executor.submit(job_report, n).result(timeout=30)
    return {"worker_pid": os.getpid(), "job": report}


@app.get("/process-job")
def process_job() -> dict[str, t.Any]:
    job_pid = process_executor.submit(process_pid).result(timeout=30)
    return {"worker_pid": os.getpid(), "job_pid": job_pid}


@app.get("/hold")
def hold() -> dict[str, t.Any]:
    # Occupies this (sync) worker until the test opens its gate, so that a second
    # request at the same time must be served by the other worker.
    port = int(request.args["port"])
    executor.submit(pass_gate, port, str(os.getpid())).result(timeout=60)
    return {"worker_pid": os.getpid()}


@app.get("/stored")
def stored() -> dict[str, t.Any]:
    running = executor.futures.get("running")
    assert running is not None
    return {
        "worker_pid": os.getpid(),
        "master_pid": MASTER_PID,
        "running_done": executor.futures.done("running"),
        "running_running": executor.futures.running("running"),
        "running_error": str(executor.futures.exception("running", timeout=0)),
        "finished_result": executor.futures.result("finished", timeout=0),
        "new_result": executor.submit(square, 6).result(timeout=30),
    }
