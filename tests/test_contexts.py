"""What a job sees of the code that submitted it, and what it leaves alone.

Issue 2, behaviour item 5 (contexts in thread pools).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import inspect
import io
import re
import threading
import typing as t
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from flask import copy_current_request_context
from flask import current_app
from flask import Flask
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import render_template_string
from flask import request
from flask import session
from flask import url_for
from flask.ctx import AppContext
from flask.globals import _cv_app
from flask.signals import appcontext_popped
from flask.signals import appcontext_pushed
from flask.signals import appcontext_tearing_down
from flask_executor import context
from flask_executor import Executor
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import Session

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def g_values() -> dict[str, t.Any]:
    """What is set on ``g``, as a dict."""
    return {name: g.get(name) for name in g}


# Flask 2.2 makes blinker optional; without it, signals take no receivers at all.
needs_signals = pytest.mark.skipif(
    not hasattr(appcontext_pushed, "receivers"),
    reason="Flask's signals need blinker, which Flask 2.2 does not install",
)


# -- What a job sees -----------------------------------------------------------------------


def test_job_sees_the_request_it_came_from(app: Flask, executor: Executor) -> None:
    @app.route("/users/<int:user_id>/report")
    def report(user_id: int) -> dict[str, t.Any]:
        g.user = "ada"

        def job() -> dict[str, t.Any]:
            return {
                "app": current_app.name,
                "path": request.path,
                "args": request.args.to_dict(),
                "header": request.headers.get("X-Trace"),
                "view_args": request.view_args,
                "endpoint": request.endpoint,
                "method": request.method,
                "url": url_for("report", user_id=9, _external=True),
                "template": render_template_string("{{ request.path }} {{ g.user }}"),
            }

        return executor.submit(job).result(10)

    response = app.test_client().get("/users/7/report?format=csv", headers={"X-Trace": "t-1"})
    assert response.json == {
        "app": app.name,
        "path": "/users/7/report",
        "args": {"format": "csv"},
        "header": "t-1",
        "view_args": {"user_id": 7},
        "endpoint": "report",
        "method": "GET",
        "url": "http://localhost/users/9/report",
        "template": "/users/7/report ada",
    }


def test_job_sees_the_session(app: Flask, executor: Executor) -> None:
    app.secret_key = "test"

    @app.route("/login")
    def login() -> str:
        session["user"] = "ada"
        return "ok"

    @app.route("/whoami")
    def whoami() -> str:
        return str(executor.submit(lambda: session.get("user")).result(10))

    client = app.test_client()
    client.get("/login")
    assert client.get("/whoami").text == "ada"


def test_job_sees_a_copy_of_g_taken_at_submit(app: Flask, executor: Executor) -> None:
    started, changed = threading.Event(), threading.Event()
    shared_list: list[str] = []

    def job() -> dict[str, t.Any]:
        before = g_values()
        started.set()
        # Wait until the view has changed its own g.
        changed.wait(10)
        seen = g_values()
        g.user = "changed in the job"
        g.from_job = True
        g.items.append("appended in the job")
        return {"before": before, "after_view_changed": seen, "same_list": g.items is shared_list}

    with app.test_request_context("/"):
        g.user = "ada"
        g.items = shared_list
        future = executor.submit(job)
        assert started.wait(10)
        g.user = "changed in the view"
        g.late = "set after submit"
        changed.set()
        outcome = future.result(10)
        # Nothing the job did to its g reaches the view's...
        assert g.user == "changed in the view"
        assert "from_job" not in g
        # ...except through a mutable value both share: the copy is shallow.
        assert g.items == ["appended in the job"]
    assert outcome == {
        "before": {"user": "ada", "items": shared_list},
        "after_view_changed": {"user": "ada", "items": shared_list},
        "same_list": True,
    }


def test_each_job_has_its_own_g(app: Flask, executor: Executor) -> None:
    def job(n: int) -> tuple[str, int | None]:
        previous = g.get("n")
        g.n = n
        return g.user, previous

    with app.test_request_context("/"):
        g.user = "ada"
        results = [executor.submit(job, n).result(10) for n in range(20)]
    # No job saw what an earlier one (maybe on the same worker thread) set.
    assert results == [("ada", None)] * 20


def test_job_sees_other_context_variables(app: Flask, executor: Executor) -> None:
    started, changed = threading.Event(), threading.Event()

    def job() -> tuple[str, str]:
        seen = request_id.get()
        started.set()
        changed.wait(10)
        later = request_id.get()
        request_id.set("set in the job")
        return seen, later

    with app.test_request_context("/"):
        token = request_id.set("req-1")
        try:
            future = executor.submit(job)
            assert started.wait(10)
            request_id.set("req-2")
            changed.set()
            assert future.result(10) == ("req-1", "req-1")
            assert request_id.get() == "req-2"
        finally:
            request_id.reset(token)
    # Outside a request too.
    token = request_id.set("cli-1")
    try:
        assert executor.submit(request_id.get).result(10) == "cli-1"
    finally:
        request_id.reset(token)


def test_job_that_outlives_its_request(app: Flask, executor: Executor) -> None:
    release = threading.Event()

    @app.route("/slow")
    def slow() -> str:
        g.user = "ada"

        def job() -> tuple[str, str | None, str]:
            release.wait(10)
            return request.path, request.args.get("q"), g.user

        executor.submit_stored("slow", job)
        return "accepted"

    assert app.test_client().get("/slow?q=1").text == "accepted"
    # The request is over and its contexts are popped; the job still sees its data.
    release.set()
    assert executor.futures.result("slow", timeout=10) == ("/slow", "1", "ada")


def test_job_submitted_by_a_job_sees_the_request(app: Flask, executor: Executor) -> None:
    @app.route("/chain")
    def chain() -> str:
        g.user = "ada"

        def inner() -> str:
            return f"{request.path} {g.user} {g.get('outer')}"

        def outer() -> str:
            g.outer = True
            return str(executor.submit(inner).result(10))

        return str(executor.submit(outer).result(10))

    # The inner job gets a copy of the outer job's g, and still the view's request.
    assert app.test_client().get("/chain").text == "/chain ada True"


@pytest.mark.skipif(
    not context.MERGED_REQUEST_CONTEXT,
    reason="Flask 2.2 to 3.1 copy the view's own request context, which pops as a view's",
)
def test_copy_current_request_context_in_a_job_leaves_the_request_alone(
    app: Flask, executor: Executor
) -> None:
    teardowns: list[str] = []
    app.teardown_request(lambda exc: teardowns.append(request.path))

    @app.route("/copy")
    def copy_view() -> str:
        def job() -> str:
            @copy_current_request_context
            def elsewhere() -> str:
                return f"{request.path} {session.get('user')}"

            # Run in yet another thread, as the decorator is meant for.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(elsewhere).result(10)

        return str(executor.submit(job).result(10))

    assert app.test_client().get("/copy").text == "/copy None"
    # Only the view's own context ran teardown_request.
    assert teardowns == ["/copy"]


def test_the_flask_internals_this_module_relies_on(app: Flask) -> None:
    """Fails when Flask changes a private name that ``flask_executor.context`` uses.

    The names are listed in docs/design.rst; the behaviour that rests on them is what
    the other tests of this module check (a job sees the request, never tears it down).
    """
    assert isinstance(_cv_app, contextvars.ContextVar)
    with app.test_request_context("/internals") as view_context:
        assert _cv_app.get().app is app
        live_request = request._get_current_object()  # type: ignore[attr-defined]
        if context.MERGED_REQUEST_CONTEXT:
            # Flask 3.2: the app context holds the request. Push and pop decide by
            # '_request' whether the context owns one; Flask's other code reads the
            # public properties, which a job's context answers from the view's.
            assert _cv_app.get() is view_context
            assert view_context._request is live_request  # type: ignore[attr-defined]
            assert app.app_context()._request is None  # type: ignore[attr-defined]
            for name in ("has_request", "request", "session"):
                assert isinstance(inspect.getattr_static(AppContext, name), property), name
            assert hasattr(view_context, "url_adapter")
        else:
            # Flask 2.2 to 3.1: the request context has a context variable of its own.
            cv_request = context._cv_request
            assert isinstance(cv_request, contextvars.ContextVar)
            assert cv_request.get().request is live_request
            assert not hasattr(app.app_context(), "request")


# -- A fresh app context per job -----------------------------------------------------------


def test_teardown_appcontext_runs_once_per_job_in_the_worker(
    app: Flask, executor: Executor
) -> None:
    calls: list[tuple[t.Any, int, str | None]] = []
    lock = threading.Lock()

    @app.teardown_appcontext
    def teardown(exc: BaseException | None) -> None:
        with lock:
            calls.append((g.get("job"), threading.get_ident(), type(exc).__name__ if exc else None))

    def failing(n: int) -> bool:
        # Some of the submitted jobs fail; the mapped ones (100 and up) do not.
        return n < 40 and n % 5 == 0

    def job(n: int) -> int:
        g.job = n
        if failing(n):
            raise ValueError(n)
        return threading.get_ident()

    with app.app_context():
        g.job = -1
        futures = [executor.submit(job, n) for n in range(40)]
        mapped = executor.map(job, range(100, 140))
        idents = {n: f.exception(10) or f.result() for n, f in enumerate(futures)}
        assert len(list(mapped)) == 40
    # The caller's own app context was torn down once, in this thread.
    assert calls.count((-1, threading.get_ident(), None)) == 1
    job_calls = [call for call in calls if call[0] != -1]
    assert sorted(call[0] for call in job_calls) == [*range(40), *range(100, 140)]
    for n, thread, exc_name in job_calls:
        assert thread != threading.get_ident()
        if n < 40 and not failing(n):
            assert thread == idents[n]
        # The job's exception reaches the teardown functions, as a view's does.
        assert exc_name == ("ValueError" if failing(n) else None)


@needs_signals
def test_app_context_signals_are_sent_for_each_job(app: Flask, executor: Executor) -> None:
    # Every job's app context is pushed and popped by Flask, which sends all three.
    events: list[tuple[str, t.Any, t.Any]] = []
    lock = threading.Lock()

    def receiver(name: str) -> t.Callable[..., None]:
        def receive(sender: Flask, **extra: t.Any) -> None:
            with lock:
                events.append((name, g.get("job"), type(extra.get("exc")).__name__))

        return receive

    def job(n: int) -> int:
        g.job = n
        if n == 2:
            raise ValueError(n)
        return n

    pushed, torn_down, popped = receiver("pushed"), receiver("torn"), receiver("popped")
    with app.app_context():
        assert executor.submit(job, 0).result(10) == 0
        assert events == []
        appcontext_pushed.connect(pushed, app)
        appcontext_tearing_down.connect(torn_down, app)
        appcontext_popped.connect(popped, app)
        try:
            assert executor.submit(job, 1).result(10) == 1
            assert isinstance(executor.submit(job, 2).exception(10), ValueError)
        finally:
            appcontext_pushed.disconnect(pushed, app)
            appcontext_tearing_down.disconnect(torn_down, app)
            appcontext_popped.disconnect(popped, app)
        assert executor.submit(job, 3).result(10) == 3
    # 'pushed' runs before the job sets g.job; 'popped' runs after the job's context is
    # gone (the caller's is current again, which has no 'job').
    assert events == [
        ("pushed", None, "NoneType"),
        ("torn", 1, "NoneType"),
        ("popped", None, "NoneType"),
        ("pushed", None, "NoneType"),
        ("torn", 2, "ValueError"),
        ("popped", None, "NoneType"),
    ]


def _raised(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is a ``kind``, or an exception group that holds only those."""
    inner = getattr(exc, "exceptions", None)
    if inner is not None:
        return bool(inner) and all(_raised(e, kind) for e in inner)
    return isinstance(exc, kind)


def test_teardown_that_fails_fails_the_job_and_spares_the_next(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    seen: list[tuple[t.Any, str | None]] = []

    @app.teardown_appcontext
    def teardown(exc: BaseException | None) -> None:
        seen.append((g.get("job"), type(exc).__name__ if exc else None))
        if g.get("job") == "bad teardown":
            raise LookupError("teardown failed")

    def job(name: str) -> tuple[str, bool]:
        # A leftover app context from the job before would show as g.job already set.
        previous = g.get("job")
        g.job = name
        if name == "raises":
            raise ValueError(name)
        return name, previous is None

    try:
        bad = executor.submit(job, "bad teardown")
        raises = executor.submit(job, "raises")
        good = executor.submit(job, "good")
        # Flask 3.2 runs every teardown function and raises what failed as a group.
        assert _raised(bad.exception(10), LookupError)
        assert isinstance(raises.exception(10), ValueError)
        assert good.result(10) == ("good", True)
    finally:
        executor.shutdown()
    assert seen == [("bad teardown", None), ("raises", "ValueError"), ("good", None)]
    # A callback added now gets a fresh app context, never one a failed teardown left
    # behind (the futures let go of the jobs' context variables when they were done).
    late: list[object] = []
    for future in (bad, raises, good):
        future.add_done_callback(lambda _: late.append(g.get("job")))
    assert late == [None, None, None]
    assert seen[3:] == [(None, None)] * 3


def test_async_teardown_functions_run_to_completion(app: Flask, executor: Executor) -> None:
    # Flask's own pop runs them through 'ensure_sync'.
    events: list[str] = []

    @app.teardown_appcontext
    async def async_teardown(exc: BaseException | None) -> None:
        events.append("async teardown")

    @app.teardown_appcontext
    def sync_teardown(exc: BaseException | None) -> None:
        events.append("sync teardown")

    executor.submit(len, "job").result(10)
    # Flask runs teardown functions last registered first.
    assert events == ["sync teardown", "async teardown"]


def test_job_that_reenters_its_app_context_is_torn_down_once(
    app: Flask, executor: Executor
) -> None:
    # Flask counts the pushes of one app context; only the outermost pop tears down.
    events: list[str] = []
    app.teardown_appcontext(lambda exc: events.append("teardown"))

    def job() -> None:
        job_context = _cv_app.get()
        with job_context:
            events.append("inner")
        events.append("after inner")

    executor.submit(job).result(10)
    assert events == ["inner", "after inner", "teardown"]


def test_job_that_leaves_another_app_context_pushed_fails(app: Flask, executor: Executor) -> None:
    # As Flask's own pop does: popping the job's app context while another one is still
    # pushed above it is a bug in the job, and the job fails with Flask's error.
    def job() -> str:
        app.app_context().push()
        return "returned"

    failure = executor.submit(job).exception(10)
    # Flask 2.2 to 3.1 raise AssertionError, Flask 3.2 RuntimeError.
    assert isinstance(failure, (AssertionError, RuntimeError))
    assert re.search("Popped wrong app context|not the active context", str(failure))


# -- Flask-SQLAlchemy ----------------------------------------------------------------------


@pytest.fixture
def db(app: Flask, tmp_path: Path) -> t.Iterator[tuple[SQLAlchemy, type[t.Any]]]:
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'jobs.db'}"

    # A new declarative base per test, so that each test defines its model afresh.
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(app, model_class=Base)

    class User(db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    with app.app_context():
        db.create_all()
        db.session.add_all([User(name=f"user-{n}") for n in range(10)])
        db.session.commit()
    yield db, User
    with app.app_context():
        # Closes the pooled SQLite connections, which would otherwise warn when collected.
        db.engine.dispose()


def test_job_gets_its_own_session_removed_at_teardown(
    app: Flask, executor: Executor, db: tuple[SQLAlchemy, type[t.Any]]
) -> None:
    sql, User = db

    def job() -> tuple[Session, list[str]]:
        names = [u.name for u in sql.session.execute(sa.select(User).order_by(User.id)).scalars()]
        return sql.session(), names

    @app.route("/users")
    def users() -> dict[str, t.Any]:
        view_session = sql.session()
        first = sql.session.get_one(User, 1)
        job_session, names = executor.submit(job).result(10)
        return {
            "different_session": job_session is not view_session,
            # The job's session was closed at its teardown: no transaction, nothing loaded.
            "job_session_closed": not job_session.in_transaction()
            and len(job_session.identity_map) == 0,
            # Only the view's connection is still out of the pool.
            "checked_out_during_view": sql.engine.pool.checkedout(),  # type: ignore[attr-defined]
            "view_session_untouched": view_session.in_transaction()
            and first in view_session
            and first.name == "user-0",
            "names": names,
        }

    assert app.test_client().get("/users").json == {
        "different_session": True,
        "job_session_closed": True,
        "checked_out_during_view": 1,
        "view_session_untouched": True,
        "names": [f"user-{n}" for n in range(10)],
    }
    with app.app_context():
        assert sql.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_concurrent_jobs_get_separate_sessions(
    app: Flask, db: tuple[SQLAlchemy, type[t.Any]]
) -> None:
    sql, User = db
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    executor = Executor(app)
    # Four jobs hold their sessions open at once, so they cannot be sharing one.
    together = threading.Barrier(4, timeout=10)

    def job(n: int) -> tuple[Session, str]:
        name = sql.session.get_one(User, n % 10 + 1).name
        if n < 4:
            together.wait()
        return sql.session(), name

    with app.app_context():
        try:
            results = list(executor.map(job, range(40)))
        finally:
            executor.shutdown(wait=True)
        sessions = [s for s, _ in results]
        assert len({id(s) for s in sessions[:4]}) == 4
        assert [name for _, name in results] == [f"user-{n % 10}" for n in range(40)]
        assert all(not s.in_transaction() and not s.identity_map for s in sessions)
        assert sql.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_job_writes_are_committed_in_its_own_transaction(
    app: Flask, executor: Executor, db: tuple[SQLAlchemy, type[t.Any]]
) -> None:
    sql, User = db

    def add_user(name: str) -> int:
        user = User(name=name)
        sql.session.add(user)
        sql.session.commit()
        return int(user.id)

    def add_without_commit(name: str) -> None:
        sql.session.add(User(name=name))
        sql.session.flush()

    with app.app_context():
        new_id = executor.submit(add_user, "grace").result(10)
        executor.submit(add_without_commit, "lost").result(10)
        # Removing the job's session rolled back what it did not commit.
        assert sql.session.get_one(User, new_id).name == "grace"
        assert sql.session.scalar(sa.select(sa.func.count()).select_from(User)) == 11
        sql.session.remove()
        assert sql.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


# -- The submitting request is left alone --------------------------------------------------


def test_job_does_not_close_the_requests_files(app: Flask, executor: Executor) -> None:
    @app.route("/upload", methods=["POST"])
    def upload() -> dict[str, t.Any]:
        def job() -> tuple[str | None, bytes]:
            # The view has not parsed the form yet: the job does.
            upload = request.files["document"]
            content = upload.read()
            upload.seek(0)
            return upload.filename, content

        filename, content = executor.submit(job).result(10)
        # The job's context is gone; the view's file is still open and readable.
        document = request.files["document"]
        return {
            "job": [filename, content.decode()],
            "closed": document.stream.closed,
            "view": document.read().decode(),
            "form": request.form["title"],
        }

    response = app.test_client().post(
        "/upload",
        data={"title": "report", "document": (io.BytesIO(b"quarterly numbers"), "q3.txt")},
        content_type="multipart/form-data",
    )
    assert response.json == {
        "job": ["q3.txt", "quarterly numbers"],
        "closed": False,
        "view": "quarterly numbers",
        "form": "report",
    }


def test_job_does_not_run_teardown_request(app: Flask, executor: Executor) -> None:
    teardowns: list[tuple[str, int]] = []
    after: list[str] = []

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        teardowns.append((request.path, threading.get_ident()))

    @app.after_request
    def after_request(response: t.Any) -> t.Any:
        after.append(request.path)
        return response

    @app.route("/jobs")
    def jobs() -> str:
        futures = [executor.submit(lambda: request.path) for _ in range(10)]
        futures.append(executor.submit(lambda: 1 / 0))
        results = list(executor.map(lambda _: request.path, range(10)))
        concurrent.futures.wait(futures, timeout=10)
        return ",".join(sorted(set(results)))

    assert app.test_client().get("/jobs").text == "/jobs"
    executor.shutdown(wait=True)
    assert teardowns == [("/jobs", threading.get_ident())]
    assert after == ["/jobs"]


# -- Where contexts are missing ------------------------------------------------------------


def _context_report() -> dict[str, t.Any]:
    return {
        "app": current_app.name,
        "app_context": has_app_context(),
        "request_context": has_request_context(),
        "g": g_values(),
    }


def test_submit_and_map_with_only_an_app_context(app: Flask, executor: Executor) -> None:
    with app.app_context():
        g.source = "startup"
        expected = {
            "app": app.name,
            "app_context": True,
            "request_context": False,
            "g": {"source": "startup"},
        }
        assert executor.submit(_context_report).result(10) == expected
        assert list(executor.map(lambda _: _context_report(), range(3))) == [expected] * 3
        executor.submit_stored("k", _context_report)
        assert executor.futures.result("k", timeout=10) == expected


def test_submit_and_map_outside_any_context(app: Flask, executor: Executor) -> None:
    # For example at import time or in a startup hook of a worker process.
    expected = {"app": app.name, "app_context": True, "request_context": False, "g": {}}
    assert executor.submit(_context_report).result(10) == expected
    assert list(executor.map(lambda _: _context_report(), range(3))) == [expected] * 3


def test_submit_and_map_from_a_cli_command(app: Flask, executor: Executor) -> None:
    @app.cli.command("crunch")
    @click.argument("count", type=int)
    def crunch(count: int) -> None:
        g.invoked_by = "cli"
        report = executor.submit(_context_report).result(10)
        squares = list(executor.map(lambda n: n * n, range(count)))
        click.echo(f"{report['app']} {report['request_context']} {report['g']} {squares}")

    result = app.test_cli_runner().invoke(args=["crunch", "4"])
    assert result.exception is None, result.output
    assert result.output == f"{app.name} False {{'invoked_by': 'cli'}} [0, 1, 4, 9]\n"


# -- EXECUTOR_PUSH_APP_CONTEXT=False -------------------------------------------------------


@pytest.fixture
def no_push(app: Flask) -> t.Iterator[Executor]:
    app.config["EXECUTOR_PUSH_APP_CONTEXT"] = False
    executor = Executor(app)
    yield executor
    executor.shutdown(wait=True)


def test_no_push_runs_with_the_request_in_a_fresh_app_context(
    app: Flask, no_push: Executor
) -> None:
    # As 1.0 did: the request, and the app context Flask gives every request, a fresh
    # one with an empty g, torn down by the job. Never the view's own (test_compat.py).
    teardowns: list[int] = []
    app.teardown_appcontext(lambda exc: teardowns.append(threading.get_ident()))

    with app.test_request_context("/path?q=1"):
        g.user = "ada"
        view_context = _cv_app.get()

        def job() -> tuple[bool, dict[str, t.Any], str, str | None, int]:
            g.from_job = True
            shared = _cv_app.get() is view_context
            return shared, g_values(), request.path, request.args.get("q"), threading.get_ident()

        shared, job_g, path, query, job_thread = no_push.submit(job).result(10)
        assert list(no_push.map(lambda n: (request.path, n), range(3))) == [
            ("/path", 0),
            ("/path", 1),
            ("/path", 2),
        ]
        assert (shared, job_g, path, query) == (False, {"from_job": True}, "/path", "1")
        assert "from_job" not in g
        no_push.shutdown(wait=True)
        # One teardown per job, in its worker; the view's own has not run yet.
        assert teardowns[0] == job_thread
        assert len(teardowns) == 4
    assert len(teardowns) == 5
    assert teardowns[-1] == threading.get_ident()


def test_no_push_outside_any_context(no_push: Executor) -> None:
    assert no_push.submit(has_app_context).result(10) is False
    assert list(no_push.map(lambda _: has_request_context(), range(2))) == [False, False]


def test_no_push_still_carries_context_variables(app: Flask, no_push: Executor) -> None:
    token = request_id.set("req-9")
    try:
        assert no_push.submit(request_id.get).result(10) == "req-9"
    finally:
        request_id.reset(token)
