"""Under gevent's monkey-patching, run jobs from a request and print what they saw as JSON.

Usage: ``python contexts.py custom|thread``. ``custom`` uses gevent's own pool of native
threads (``gevent.threadpool.ThreadPoolExecutor``); ``thread`` the default thread type,
whose threads are greenlets once ``threading`` is patched.
"""

from gevent import monkey

# First, before anything else imports 'threading', 'socket' or 'ssl'.
monkey.patch_all()

import concurrent.futures  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import typing as t  # noqa: E402

from flask import current_app  # noqa: E402
from flask import Flask  # noqa: E402
from flask import g  # noqa: E402
from flask import request  # noqa: E402
from flask_executor import Executor  # noqa: E402


def job(n: int) -> dict[str, t.Any]:
    return {
        "n": n,
        "app": current_app.name,
        "path": request.path,
        "args": request.args.to_dict(),
        "user": g.user,
        # Not patched by gevent: the OS thread the job really runs on.
        "native_thread": threading.get_native_id(),
    }


def main(kind: str) -> dict[str, t.Any]:
    app = Flask("gevent_contexts")
    app.config["EXECUTOR_TYPE"] = kind
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    if kind == "custom":
        app.config["EXECUTOR_POOL_CLASS"] = "gevent.threadpool:ThreadPoolExecutor"
    executor = Executor(app)

    with app.test_request_context("/reports/7?format=csv"):
        g.user = "ada"
        futures = [executor.submit(job, n) for n in range(20)]
        real_futures = all(isinstance(f, concurrent.futures.Future) for f in futures)
        done, not_done = concurrent.futures.wait(futures, timeout=30)
        completed = sorted(f.result()["n"] for f in concurrent.futures.as_completed(futures))
        mapped = list(executor.map(job, range(5), timeout=30))
        executor.shutdown(wait=True)

    results = [f.result() for f in futures] + mapped
    return {
        "pool_itself_returns": _what_the_pool_itself_returns(app),
        "real_futures": real_futures,
        "all_done": len(done) == 20 and not not_done,
        "as_completed": completed,
        "mapped": [r["n"] for r in mapped],
        # What every job saw, once each: one set of contexts, the request's.
        "contexts": [json.loads(c) for c in {_contexts_of(r) for r in results}],
        "on_main_native_thread": sorted(
            {r["native_thread"] == threading.get_native_id() for r in results}
        ),
    }


def _contexts_of(result: dict[str, t.Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k not in ("n", "native_thread")})


def _what_the_pool_itself_returns(app: Flask) -> str:
    # gevent's pool returns a future-like object of its own from 'submit'; the executor
    # must hand out a real concurrent.futures.Future all the same.
    from werkzeug.utils import import_string

    pool_class = app.config["EXECUTOR_POOL_CLASS"] or concurrent.futures.ThreadPoolExecutor
    if isinstance(pool_class, str):
        pool_class = import_string(pool_class)
    pool = pool_class(1)
    try:
        future = pool.submit(int)
        future.result(timeout=30)
        return "real Future" if isinstance(future, concurrent.futures.Future) else "other"
    finally:
        pool.shutdown(wait=True)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
