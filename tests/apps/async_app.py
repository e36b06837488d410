"""An app with async views that await jobs, served by real servers in the tests.

Each request awaits a sync job and a coroutine job. Both report what they read through
``request`` and ``g``, so the client can check that every response carries its own
request's data.

Served three ways:

* ``gunicorn -k gthread async_app:app``: a WSGI server; Flask runs each async view in a
  fresh event loop on its own thread.
* ``uvicorn async_app:asgi``: the app through :class:`asgiref.wsgi.WsgiToAsgi`. The
  async views run on uvicorn's one long-lived loop.
* ``uvicorn async_app:asgi_per_request_thread``: the same, with each request in an
  :class:`asgiref.sync.ThreadSensitiveContext`, so that requests are served at once
  rather than one after another (see the "Async views" docs page).
"""

from __future__ import annotations

import asyncio
import os
import threading
import typing as t

from asgiref.sync import ThreadSensitiveContext
from asgiref.wsgi import WsgiToAsgi
from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor

app = Flask(__name__)
app.config["EXECUTOR_MAX_WORKERS"] = 8
executor = Executor(app)


def seen(kind: str) -> dict[str, t.Any]:
    return {
        "kind": kind,
        "path": request.path,
        "token": request.headers.get("X-Token"),
        "g": g.get("uid"),
        "thread": threading.get_ident(),
    }


def read_sync() -> dict[str, t.Any]:
    return seen("sync")


async def read_async() -> dict[str, t.Any]:
    # Suspend once: what follows runs in a later step of the job's task.
    await asyncio.sleep(0)
    return seen("coroutine")


@app.get("/item/<uid>")
async def item(uid: str) -> dict[str, t.Any]:
    g.uid = uid
    sync_seen = await executor.submit(read_sync)
    coroutine_seen = await executor.submit(read_async)
    return {
        "uid": uid,
        "pid": os.getpid(),
        "view_thread": threading.get_ident(),
        "jobs": [sync_seen, coroutine_seen],
    }


asgi = WsgiToAsgi(app)


async def asgi_per_request_thread(
    scope: dict[str, t.Any],
    receive: t.Callable[[], t.Awaitable[dict[str, t.Any]]],
    send: t.Callable[[dict[str, t.Any]], t.Awaitable[None]],
) -> None:
    # Without this, asgiref runs every WSGI call in one shared thread.
    async with ThreadSensitiveContext():
        await asgi(scope, receive, send)
