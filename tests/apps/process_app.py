"""An app factory that process workers import through ``EXECUTOR_APP_IMPORT``.

Each call counts itself, so a job can tell whether its worker built the app once, and
which module (hence which process) the app it runs in came from.
"""

from __future__ import annotations

import os

from flask import Flask

#: How many apps this process has built with :func:`create_app`.
BUILDS = 0


def create_app() -> Flask:
    global BUILDS
    BUILDS += 1
    app = Flask(__name__)
    app.config["GREETING"] = "hello from process_app"
    app.config["BUILD_NUMBER"] = BUILDS
    app.config["BUILT_IN_PID"] = os.getpid()
    return app
