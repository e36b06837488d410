"""An app for ``gunicorn -k gevent``, whose plain (sync) views submit jobs and wait for them.

gunicorn's gevent worker monkey-patches the standard library before it imports this
module, so every request is a greenlet, and so is every thread of the default thread
pool. The ``pool`` executor uses gevent's pool of native threads instead.
"""

from __future__ import annotations

import os
import threading
import typing as t

from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor
from process_jobs import pass_gate

app = Flask(__name__)
app.config["EXECUTOR_MAX_WORKERS"] = 8
app.config["POOL_EXECUTOR_TYPE"] = "custom"
app.config["POOL_EXECUTOR_POOL_CLASS"] = "gevent.threadpool:ThreadPoolExecutor"
app.config["POOL_EXECUTOR_MAX_WORKERS"] = 4
executor = Executor(app)
pool_executor = Executor(app, name="pool")


def job_report(n: int) -> dict[str, t.Any]:
    return {
        "n": n,
        "app": current_app.name,
        "path": request.path,
        "client": request.headers.get("X-Client"),
        "user": g.user,
        "native_thread": threading.get_native_id(),
    }


@app.get("/<kind>/<int:n>")
def run_job(kind: str, n: int) -> dict[str, t.Any]:
    g.user = f"user-{n}"
    chosen = pool_executor if kind == "pool" else executor
    report = chosen.submit(job_report, n).result(timeout=30)
    return {
        "report": report,
        "pid": os.getpid(),
        "view_native_thread": threading.get_native_id(),
    }


@app.get("/hold/<kind>/<name>")
def hold(kind: str, name: str) -> dict[str, t.Any]:
    # Waits, in a plain view, for a job that waits at the test's gate. The worker must
    # go on serving other requests meanwhile.
    chosen = pool_executor if kind == "pool" else executor
    port = int(request.args["port"])
    return {"passed": chosen.submit(pass_gate, port, name).result(timeout=60)}


@app.get("/patched")
def patched() -> dict[str, bool]:
    from gevent import monkey

    return {"threading": monkey.is_module_patched("threading")}
