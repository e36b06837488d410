"""Async views that await background jobs.

Async views need Flask's ``async`` extra. From the repository's root::

    pip install -e ".[async]"
    python examples/async_views.py

and open the address it prints, http://127.0.0.1:5001/ unless that port is taken, which
lists what to try. ``PORT=8000 python examples/async_views.py`` asks for another port.

The same app also runs under an ASGI server, where every async view shares the server's
one event loop::

    pip install uvicorn
    uvicorn --app-dir examples --lifespan off --port 5001 async_views:asgi
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import threading
import time
import typing as t
import uuid

try:
    from asgiref.sync import ThreadSensitiveContext
    from asgiref.wsgi import WsgiToAsgi
except ImportError:
    raise SystemExit(
        "This example's async views need asgiref, which is not installed. Install it with:"
        ' pip install "flask-executor[async]"'
    ) from None
from flask import Flask
from flask import g
from flask import request
from flask import url_for
from flask_executor import Executor

app = Flask(__name__)
app.config["EXECUTOR_MAX_WORKERS"] = 4
executor = Executor(app)

MAX_SECONDS = 30.0


@app.before_request
def identify_user() -> None:
    # A stand-in for real authentication. Jobs get a copy of 'g'.
    g.user = request.headers.get("X-User", "anonymous")


# -- A sync job, awaited -----------------------------------------------------------------


def sha256(text: str, rounds: int) -> str:
    """CPU work that would block the event loop if it ran in the view."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@app.get("/hash")
async def hash_text() -> dict[str, t.Any]:
    text = request.args.get("text", "hello")
    rounds = min(request.args.get("rounds", 100_000, type=int), 1_000_000)
    # The view waits, not the loop: other coroutines run meanwhile.
    digest = await executor.submit(sha256, text, rounds)
    return {"text": text, "rounds": rounds, "sha256": digest}


# -- A coroutine job -------------------------------------------------------------------


@executor.job
async def fetch_price(symbol: str) -> dict[str, t.Any]:
    """Pretend to ask a slow price service; a coroutine, run on a worker's event loop."""
    await asyncio.sleep(0.1)
    cents = int(hashlib.sha256(symbol.encode()).hexdigest()[:4], 16) % 10_000
    return {
        "symbol": symbol,
        "price": cents / 100,
        "asked_for": g.user,
        "worker": threading.current_thread().name,
    }


@app.get("/price/<symbol>")
async def price(symbol: str) -> dict[str, t.Any]:
    if request.args.get("inline"):
        # Awaiting the job itself runs it right here, in this view's loop.
        return await fetch_price(symbol)
    return await fetch_price.submit(symbol)


@app.get("/prices")
async def prices() -> dict[str, t.Any]:
    symbols = [s for s in request.args.get("symbols", "ACME,INITECH,UMBRELLA").split(",") if s]
    # All at once; gather accepts the futures as they are.
    results = await asyncio.gather(*(fetch_price.submit(s) for s in symbols[:20]))
    return {"prices": results}


# -- async for over map ------------------------------------------------------------------


@executor.job
def square(n: int) -> int:
    return n * n


@app.get("/squares")
async def squares() -> dict[str, t.Any]:
    n = min(request.args.get("n", 10, type=int), 10_000)
    # At most 4 jobs in flight, however long the input; results come in order.
    results = [r async for r in square.map(range(1, n + 1), buffersize=4)]
    return {"n": n, "squares": results}


# -- Fire and forget ---------------------------------------------------------------------


def build_report(seconds: float) -> dict[str, t.Any]:
    time.sleep(seconds)
    return {"for": g.user, "requested_at": request.path, "took": seconds}


@app.post("/reports")
async def start_report() -> tuple[dict[str, t.Any], int]:
    seconds = min(max(request.args.get("seconds", 2.0, type=float), 0.0), MAX_SECONDS)
    report_id = uuid.uuid4().hex[:8]
    # Not awaited: the job goes on after this view returns and its loop is gone.
    # (A task from asyncio.create_task would be cancelled with that loop.)
    executor.submit_stored(report_id, build_report, seconds)
    status_url = url_for("report_status", report_id=report_id, _external=True)
    return {"id": report_id, "status_url": status_url}, 202


@app.get("/reports/<report_id>")
def report_status(report_id: str) -> tuple[dict[str, t.Any], int]:
    future = executor.futures.get(report_id)
    if future is None:
        return {"error": f"No report {report_id!r}."}, 404
    if not future.done():
        return {"id": report_id, "done": False}, 200
    return {"id": report_id, "done": True, "report": future.result()}, 200


# -- Timeouts ----------------------------------------------------------------------------


@app.get("/slow")
async def slow() -> tuple[dict[str, t.Any], int]:
    seconds = min(max(request.args.get("seconds", 3.0, type=float), 0.0), MAX_SECONDS)
    timeout = request.args.get("timeout", 1.0, type=float)
    future = executor.submit(time.sleep, seconds)
    try:
        await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        # A job still queued is cancelled with the await; a running one goes on.
        return {"timed_out": True, "job_cancelled": future.cancelled()}, 504
    return {"timed_out": False, "slept": seconds}, 200


# -- Index and ASGI ----------------------------------------------------------------------

INDEX = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flask-executor: async views</title>
<link rel="stylesheet" href="{style}">
<h1>Async views that await jobs</h1>
<ul>
<li><a href="{hash}?text=hello">{hash}?text=hello</a>: await a sync job.</li>
<li><a href="{price}">{price}</a>: await a coroutine job;
    <a href="{price}?inline=1">?inline=1</a> awaits it in the view instead.</li>
<li><a href="{prices}?symbols=ACME,INITECH">{prices}?symbols=ACME,INITECH</a>:
    several at once with asyncio.gather.</li>
<li><a href="{squares}?n=20">{squares}?n=20</a>: <code>async for</code> over
    <code>map</code>, 4 jobs in flight at most.</li>
<li><a href="{slow}?seconds=3&amp;timeout=1">{slow}?seconds=3&amp;timeout=1</a>:
    a timeout; the running job goes on.</li>
</ul>
<p>Fire and forget, then check on it:</p>
<pre>curl -X POST '{reports}?seconds=5' -H 'X-User: ada'
curl {reports}/ID</pre>
"""


@app.get("/")
def index() -> str:
    return INDEX.format(
        style=html.escape(url_for("static", filename="style.css")),
        hash=html.escape(url_for("hash_text", _external=True)),
        price=html.escape(url_for("price", symbol="ACME", _external=True)),
        prices=html.escape(url_for("prices", _external=True)),
        squares=html.escape(url_for("squares", _external=True)),
        slow=html.escape(url_for("slow", _external=True)),
        reports=html.escape(url_for("start_report", _external=True)),
    )


_wsgi_to_asgi = WsgiToAsgi(app)


async def asgi(
    scope: dict[str, t.Any],
    receive: t.Callable[[], t.Awaitable[dict[str, t.Any]]],
    send: t.Callable[[dict[str, t.Any]], t.Awaitable[None]],
) -> None:
    """The app for ASGI servers: each request's sync parts get a thread of their own.

    WsgiToAsgi alone runs every WSGI call in one shared thread, one request at a time.
    """
    async with ThreadSensitiveContext():
        await _wsgi_to_asgi(scope, receive, send)


if __name__ == "__main__":
    from _serving import serve  # next to this file: port choice, shared by the examples

    serve(app, 5001, "flask-executor async views", executor)
