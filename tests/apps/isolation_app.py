"""An app whose jobs echo what they see of their request, for the isolation tests.

Two worker threads serve every job, so each thread runs jobs of many requests one after
another. A job reports the path, a view argument, a header and ``g`` as it sees them;
the client checks that they are its own request's.

``gunicorn -k gthread isolation_app:app`` serves it in the real-server test; the
in-process tests call :func:`create_app`.
"""

from __future__ import annotations

import os
import threading
import typing as t

from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor


def report() -> dict[str, t.Any]:
    """What the job sees, read inside the job."""
    return {
        "path": request.path,
        "view_arg": (request.view_args or {}).get("uid"),
        "header": request.headers.get("X-Token"),
        "g": g.get("uid"),
        "thread": threading.get_ident(),
        "pid": os.getpid(),
    }


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["EXECUTOR_MAX_WORKERS"] = 2
    app.config["EXECUTOR_FUTURES_MAX_LENGTH"] = None
    executor = Executor(app)
    # Stored jobs wait for this before they read their request, which has ended by then.
    release = app.extensions["isolation_release"] = threading.Event()

    def report_later() -> dict[str, t.Any]:
        release.wait(30)
        return report()

    @app.route("/echo/<uid>")
    def echo(uid: str) -> dict[str, t.Any]:
        # Only some requests set g, so a job that saw a leftover value would show it.
        if request.args.get("set_g") == "1":
            g.uid = uid
        return executor.submit(report).result(30)

    @app.route("/later/<uid>")
    def later(uid: str) -> str:
        g.uid = uid
        executor.submit_stored(uid, report_later)
        return "accepted"

    return app


app = create_app()
