"""Awaiting jobs: in Flask async views, in plain asyncio, across loops and threads.

Flask runs each async view in a fresh event loop on a fresh thread (through asgiref),
and closes that loop when the view returns. A future must therefore bind to whichever
loop is running when it is awaited, survive that loop's end quietly, and cancel a job
that has not started when the coroutine awaiting it is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import threading
import typing as t

import pytest
from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor
from flask_executor import FutureProxy

# Generous bound for waits on events that another thread sets; never reached when the
# code works, and it turns a hang into a failure.
WAIT = 10.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


@pytest.fixture
def single(app: Flask) -> t.Iterator[Executor]:
    """An executor whose pool has exactly one worker thread."""
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    yield executor
    with app.app_context():
        executor.shutdown(wait=True)


class Gate:
    """A job that signals when it starts and then waits to be let through."""

    def __init__(self, result: t.Any = None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.result = result

    def __call__(self) -> t.Any:
        self.started.set()
        assert self.release.wait(WAIT)
        return self.result


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> t.Iterator[None]:
    """Fail the test if anything at all is logged while it runs.

    Everything down to DEBUG is captured, ``concurrent.futures`` included (where a failing
    done callback is reported). Warnings fail the test already (``filterwarnings =
    error``), and so do unraisable exceptions, which the final collection brings out.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="concurrent.futures")
    caplog.set_level(logging.DEBUG, logger="asyncio")
    yield
    gc.collect()
    unexpected = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        # Every new event loop says which selector it uses; that is asyncio at work,
        # not something going wrong.
        if not (r.name == "asyncio" and r.getMessage().startswith("Using selector"))
    ]
    assert unexpected == []


# -- Awaitable futures ------------------------------------------------------------------


def test_every_kind_of_future_can_be_awaited_in_an_async_view(
    app: Flask, executor: Executor
) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    job = executor.job(add)

    @app.get("/sums")
    async def view() -> dict[str, int]:
        return {
            "submit": await executor.submit(add, 1, 2),
            "submit_stored": await executor.submit_stored("s", add, 3, 4),
            "job.submit": await job.submit(5, 6),
            "job.submit_stored": await job.submit_stored("js", 7, 8),
        }

    assert app.test_client().get("/sums").json == {
        "submit": 3,
        "submit_stored": 7,
        "job.submit": 11,
        "job.submit_stored": 15,
    }


def test_await_in_a_view_sees_the_request_and_g(app: Flask, executor: Executor) -> None:
    def read() -> dict[str, str]:
        return {"path": request.path, "token": request.headers["X-Token"], "g": g.user}

    @app.get("/read/<name>")
    async def view(name: str) -> dict[str, str]:
        g.user = name
        return await executor.submit(read)

    body = app.test_client().get("/read/ada", headers={"X-Token": "t1"}).json
    assert body == {"path": "/read/ada", "token": "t1", "g": "ada"}


def test_await_raises_the_jobs_own_exception_in_a_view(app: Flask, executor: Executor) -> None:
    error = KeyError("missing")

    def fail() -> None:
        raise error

    @app.get("/fail")
    async def view() -> dict[str, bool]:
        try:
            await executor.submit(fail)
        except KeyError as e:
            return {"same": e is error}
        return {"same": False}

    assert app.test_client().get("/fail").json == {"same": True}


def test_await_in_plain_asyncio(app: Flask, executor: Executor) -> None:
    error = ValueError("bad")

    def fail() -> None:
        raise error

    async def main() -> int:
        with pytest.raises(ValueError) as excinfo:
            await executor.submit(fail)
        assert excinfo.value is error
        return await executor.submit(pow, 2, 10)

    with app.app_context():
        assert asyncio.run(main()) == 1024


def test_a_future_binds_to_the_loop_running_when_it_is_awaited(
    app: Flask, executor: Executor
) -> None:
    gate = Gate("done")

    async def submit_and_leave() -> FutureProxy[str]:
        # Submitted inside a loop that then ends, without awaiting.
        return executor.submit(gate)

    async def await_it(future: FutureProxy[str]) -> str:
        return await future

    with app.app_context():
        from_a_loop = asyncio.run(submit_and_leave())
        from_no_loop = executor.submit(pow, 3, 3)
        assert gate.started.wait(WAIT)

        async def release_then_await() -> tuple[str, int]:
            # Awaited in a new loop while still pending.
            task = asyncio.ensure_future(await_it(from_a_loop))
            await asyncio.sleep(0)
            gate.release.set()
            return await task, await from_no_loop

        assert asyncio.run(release_then_await()) == ("done", 27)
        # And once done, in yet another loop.
        assert asyncio.run(await_it(from_a_loop)) == "done"


def test_two_loops_in_two_threads_await_the_same_future(app: Flask, executor: Executor) -> None:
    gate = Gate(42)
    results: dict[str, t.Any] = {}
    waiting = {name: threading.Event() for name in ("a", "b")}

    def run_loop(name: str, future: FutureProxy[int]) -> None:
        async def main() -> None:
            task = asyncio.ensure_future(_await(future))
            # One step for the task to start awaiting; then say so.
            await asyncio.sleep(0)
            waiting[name].set()
            results[name] = (await task, asyncio.get_running_loop())

        asyncio.run(main())

    with app.app_context():
        future = executor.submit(gate)
        threads = [threading.Thread(target=run_loop, args=(name, future)) for name in waiting]
        for thread in threads:
            thread.start()
        for event in waiting.values():
            assert event.wait(WAIT)
        gate.release.set()
        for thread in threads:
            thread.join(WAIT)
    assert results["a"][0] == results["b"][0] == 42
    assert results["a"][1] is not results["b"][1]


async def _await(future: t.Awaitable[t.Any]) -> t.Any:
    return await future


def test_gather_and_wait_for_accept_futures(app: Flask, executor: Executor) -> None:
    async def main() -> tuple[list[int], int]:
        gathered = await asyncio.gather(*(executor.submit(pow, 2, n) for n in range(5)))
        waited = await asyncio.wait_for(executor.submit(pow, 3, 4), WAIT)
        return gathered, waited

    with app.app_context():
        assert asyncio.run(main()) == ([1, 2, 4, 8, 16], 81)


def test_gather_raises_the_first_job_exception(app: Flask, executor: Executor) -> None:
    def fail() -> None:
        raise ArithmeticError("no")

    async def main() -> None:
        await asyncio.gather(executor.submit(pow, 2, 2), executor.submit(fail))

    with app.app_context(), pytest.raises(ArithmeticError, match="no"):
        asyncio.run(main())


def test_awaiting_a_cancelled_job_raises_cancelled_error(app: Flask, single: Executor) -> None:
    gate = Gate()
    with app.app_context():
        blocker = single.submit(gate)
        assert gate.started.wait(WAIT)
        queued = single.submit(pow, 2, 2)
        assert queued.cancel()
        gate.release.set()
        blocker.result(WAIT)
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(_await(queued))


async def process_job_double(n: int) -> int:
    # Module level, so that a process worker can unpickle it by name.
    await asyncio.sleep(0)
    return 2 * n


def test_process_pool_futures_can_be_awaited(app: Flask) -> None:
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": "fork"}
    executor = Executor(app)

    async def main() -> tuple[int, int]:
        with pytest.raises(ZeroDivisionError):
            await executor.submit(divmod, 1, 0)
        return await executor.submit(pow, 2, 5), await executor.submit(process_job_double, 21)

    with app.app_context():
        try:
            assert asyncio.run(main()) == (32, 42)
        finally:
            executor.shutdown(wait=True)


def test_a_coroutine_job_can_await_other_jobs(app: Flask) -> None:
    app.config["EXECUTOR_MAX_WORKERS"] = 3
    executor = Executor(app)

    async def fan_out() -> list[int]:
        # Runs on a worker's own loop; the jobs it awaits run on the other workers.
        return list(await asyncio.gather(*(executor.submit(pow, 2, n) for n in range(4))))

    with app.app_context():
        try:
            assert executor.submit(fan_out).result(WAIT) == [1, 2, 4, 8]
        finally:
            executor.shutdown(wait=True)


# -- Cancellation -----------------------------------------------------------------------


def test_cancelling_the_awaiting_task_cancels_a_job_not_started(
    app: Flask, single: Executor
) -> None:
    gate = Gate()
    ran = threading.Event()

    async def main(future: FutureProxy[None]) -> None:
        task = asyncio.ensure_future(_await(future))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with app.app_context():
        blocker = single.submit(gate)
        assert gate.started.wait(WAIT)
        queued = single.submit(ran.set)
        asyncio.run(main(queued))
        assert queued.cancelled()
        gate.release.set()
        blocker.result(WAIT)
        single.shutdown(wait=True)
    assert not ran.is_set()


def test_a_timeout_while_awaiting_cancels_a_job_not_started(app: Flask, single: Executor) -> None:
    gate = Gate()
    ran = threading.Event()

    @app.get("/slow")
    async def view() -> tuple[str, int]:
        queued = single.submit_stored("queued", ran.set)
        try:
            await asyncio.wait_for(queued, 0.05)
        except asyncio.TimeoutError:
            return "timed out", 504
        return "done", 200

    with app.app_context():
        blocker = single.submit(gate)
        assert gate.started.wait(WAIT)
        response = app.test_client().get("/slow")
        assert response.status_code == 504
        queued = single.futures.pop("queued")
        assert queued is not None and queued.cancelled()
        gate.release.set()
        blocker.result(WAIT)
        single.shutdown(wait=True)
    assert not ran.is_set()


def test_cancelling_the_awaiting_task_lets_a_running_job_finish(
    app: Flask, executor: Executor
) -> None:
    gate = Gate("finished")

    async def main(future: FutureProxy[str]) -> None:
        task = asyncio.ensure_future(_await(future))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with app.app_context():
        running = executor.submit(gate)
        assert gate.started.wait(WAIT)
        asyncio.run(main(running))
        assert not running.cancelled()
        assert running.running()
        gate.release.set()
        assert running.result(WAIT) == "finished"


def test_a_timeout_in_a_view_lets_a_running_job_finish(app: Flask, executor: Executor) -> None:
    gate = Gate("finished")

    @app.get("/slow")
    async def view() -> tuple[str, int]:
        running = executor.submit_stored("running", gate)
        assert await asyncio.to_thread(gate.started.wait, WAIT)
        try:
            await asyncio.wait_for(running, 0.05)
        except asyncio.TimeoutError:
            return "timed out", 504
        return "done", 200

    with app.app_context():
        assert app.test_client().get("/slow").status_code == 504
        gate.release.set()
        assert executor.futures.result("running", timeout=WAIT) == "finished"


def test_cancelling_one_of_two_awaiting_tasks_cancels_a_job_not_started_for_both(
    app: Flask, single: Executor
) -> None:
    gate = Gate()

    async def main(future: FutureProxy[int]) -> None:
        first = asyncio.ensure_future(_await(future))
        second = asyncio.ensure_future(_await(future))
        await asyncio.sleep(0)
        first.cancel()
        for task in (first, second):
            with pytest.raises(asyncio.CancelledError):
                await task

    with app.app_context():
        blocker = single.submit(gate)
        assert gate.started.wait(WAIT)
        queued = single.submit(pow, 2, 2)
        asyncio.run(main(queued))
        assert queued.cancelled()
        gate.release.set()
        blocker.result(WAIT)


def test_a_shielded_wait_still_cancels_a_job_not_started_when_the_view_returns(
    app: Flask, single: Executor
) -> None:
    gate = Gate()

    @app.get("/shielded")
    async def view() -> str:
        queued = single.submit_stored("queued", pow, 2, 2)
        try:
            await asyncio.wait_for(asyncio.shield(queued), 0.05)
        except asyncio.TimeoutError:
            return "timed out"
        return "done"

    with app.app_context():
        blocker = single.submit(gate)
        assert gate.started.wait(WAIT)
        assert app.test_client().get("/shielded").data == b"timed out"
        # The shield's inner wait was left on the view's loop, which cancelled it on
        # the way out.
        assert single.futures.cancelled("queued")
        gate.release.set()
        blocker.result(WAIT)


def test_waiting_in_a_thread_gives_up_without_cancelling_the_job(
    app: Flask, single: Executor
) -> None:
    gate = Gate()

    @app.get("/wait-in-thread")
    async def view() -> str:
        queued = single.submit_stored("queued", pow, 2, 2)
        done, _ = await asyncio.to_thread(concurrent.futures.wait, [queued], 0.05)
        return "done" if done else "still queued"

    with app.app_context():
        blocker = single.submit(gate)
        assert gate.started.wait(WAIT)
        assert app.test_client().get("/wait-in-thread").data == b"still queued"
        gate.release.set()
        blocker.result(WAIT)
        assert single.futures.result("queued", timeout=WAIT) == 4


# -- Abandoned loops --------------------------------------------------------------------


@pytest.mark.usefixtures("quiet")
def test_a_view_that_returns_without_awaiting_logs_nothing(app: Flask, executor: Executor) -> None:
    gate = Gate("late")

    @app.get("/leave")
    async def view() -> str:
        executor.submit_stored("left", gate)
        return "left"

    with app.app_context():
        assert app.test_client().get("/leave").data == b"left"
        # The view's loop is closed by now; the job finishes afterwards.
        gate.release.set()
        assert executor.futures.result("left", timeout=WAIT) == "late"


@pytest.mark.usefixtures("quiet")
def test_a_view_that_times_out_while_a_job_runs_logs_nothing(
    app: Flask, executor: Executor
) -> None:
    gate = Gate("late")

    @app.get("/give-up")
    async def view() -> str:
        future = executor.submit_stored("running", gate)
        assert await asyncio.to_thread(gate.started.wait, WAIT)
        try:
            await asyncio.wait_for(future, 0.01)
        except asyncio.TimeoutError:
            return "gave up"
        return "done"

    with app.app_context():
        assert app.test_client().get("/give-up").data == b"gave up"
        gate.release.set()
        assert executor.futures.result("running", timeout=WAIT) == "late"


@pytest.mark.usefixtures("quiet")
def test_asyncio_run_ending_while_an_awaited_job_runs_logs_nothing(
    app: Flask, executor: Executor
) -> None:
    gate = Gate("late")

    async def main(future: FutureProxy[str]) -> None:
        # Left awaiting: asyncio.run cancels it and closes the loop, as asgiref does
        # after an async view.
        left = asyncio.ensure_future(_await(future))
        await asyncio.sleep(0)
        assert not left.done()

    with app.app_context():
        future = executor.submit(gate)
        assert gate.started.wait(WAIT)
        asyncio.run(main(future))
        gate.release.set()
        assert future.result(WAIT) == "late"


@pytest.mark.usefixtures("quiet")
def test_a_loop_closed_under_a_waiting_task_logs_nothing_when_the_job_ends(
    app: Flask, executor: Executor
) -> None:
    gate = Gate("late")
    reported: list[str] = []
    loop = asyncio.new_event_loop()
    # Closing a loop under a pending task is reported by asyncio itself ("Task was
    # destroyed but it is pending!") when the task is collected. That report is about
    # the caller's task, not about the job; it goes to this list rather than the log.
    loop.set_exception_handler(lambda loop, context: reported.append(context["message"]))

    with app.app_context():
        future = executor.submit(gate)
        assert gate.started.wait(WAIT)
        task = loop.create_task(_await(future))
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        # The job ends after the loop it was awaited in has closed: waking that loop
        # is impossible, and must not show up as "Event loop is closed" in the log.
        gate.release.set()
        assert future.result(WAIT) == "late"
        done_callbacks_ran = threading.Event()
        future.add_done_callback(lambda _: done_callbacks_ran.set())
        assert done_callbacks_ran.wait(WAIT)
    assert not task.done()
    del task, future
    gc.collect()
    assert all("Event loop is closed" not in message for message in reported)


# -- Fire and forget --------------------------------------------------------------------


def test_a_job_not_awaited_runs_to_completion_after_the_view_returns(
    app: Flask, executor: Executor
) -> None:
    go = threading.Event()
    done = threading.Event()
    seen: dict[str, str] = {}

    def send_report() -> None:
        assert go.wait(WAIT)
        seen.update(path=request.path, user=g.user, app=current_app.name)
        done.set()

    @app.post("/report")
    async def view() -> tuple[str, int]:
        g.user = "ada"
        executor.submit(send_report)
        return "accepted", 202

    assert app.test_client().post("/report").status_code == 202
    # Only now, with the view returned and its loop closed, may the job go on.
    go.set()
    assert done.wait(WAIT)
    assert seen == {"path": "/report", "user": "ada", "app": app.name}


def test_a_task_created_in_a_view_is_cancelled_when_the_view_returns(
    app: Flask, executor: Executor
) -> None:
    gate = Gate()
    steps: list[str] = []

    async def background() -> None:
        steps.append("started")
        try:
            await executor.submit(gate)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        steps.append("finished")

    tasks: set[asyncio.Task[None]] = set()

    @app.post("/report")
    async def view() -> str:
        # Even a task that is kept referenced, as asyncio's docs advise, does not outlive
        # the view's loop.
        tasks.add(asyncio.create_task(background()))
        # One step for the task to start and suspend in its await.
        await asyncio.sleep(0)
        return "accepted"

    assert app.test_client().post("/report").data == b"accepted"
    # The view's loop ended with the response, and took the task with it.
    assert steps == ["started", "cancelled"]
    gate.release.set()
    with app.app_context():
        executor.shutdown(wait=True)
    assert steps == ["started", "cancelled"]


# -- Callbacks --------------------------------------------------------------------------


@pytest.mark.parametrize("view_kind", ["sync view", "async view"])
def test_callbacks_of_awaited_futures_run_in_the_worker_with_the_jobs_contexts(
    app: Flask, executor: Executor, view_kind: str
) -> None:
    seen: dict[str, dict[str, t.Any]] = {}
    let_job_finish = threading.Event()

    def record(name: str) -> t.Callable[[object], None]:
        def callback(_: object) -> None:
            seen[name] = {
                "app": current_app.name,
                "path": request.path,
                "g": g.user,
                "var": request_id.get(),
                "thread": threading.get_ident(),
            }

        return callback

    executor.add_default_done_callback(record("default"))

    def job() -> int:
        # Held until the view has added its callback, so that it runs in the worker too.
        assert let_job_finish.wait(WAIT)
        return threading.get_ident()

    def start() -> FutureProxy[int]:
        g.user = "ada"
        request_id.set("rid-1")
        future = executor.submit(job)
        future.add_done_callback(record("added"))
        let_job_finish.set()
        return future

    if view_kind == "sync view":

        @app.get("/cb")
        def sync_view() -> dict[str, int]:
            return {"worker": start().result(WAIT)}

    else:

        @app.get("/cb")
        async def async_view() -> dict[str, int]:
            return {"worker": await start()}

    body = app.test_client().get("/cb").json
    assert body is not None
    # Both ran before the result was handed over: callbacks precede the wake-up.
    assert set(seen) == {"default", "added"}
    for name in ("default", "added"):
        assert seen[name] == {
            "app": app.name,
            "path": "/cb",
            "g": "ada",
            "var": "rid-1",
            "thread": body["worker"],
        }
