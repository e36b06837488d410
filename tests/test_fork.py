"""Fork safety: an executor made, and used, before ``os.fork()`` works in the child.

This is what ``gunicorn --preload`` does to an app: it is imported in the master, which
then forks the workers. The tests fork for real; the child reports over a pipe and leaves
with ``os._exit``, so that it never runs the rest of pytest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest
from flask import current_app
from flask import Flask
from flask_executor import Executor
from flask_executor import jobs as job_functions

from apps import process_jobs as jobs
from apps.process_jobs import Gate
from servers import BIN
from servers import free_port
from servers import get_json
from servers import running_server

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns that forking a process that runs threads may deadlock the
    # child; forking such a process is exactly what these tests do.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

POOLS = [
    pytest.param({"EXECUTOR_TYPE": "thread"}, id="thread"),
    pytest.param(
        {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"mp_context": "fork"}},
        id="process",
    ),
]


def in_forked_child(report: t.Callable[[], t.Any], timeout: float = 30.0) -> t.Any:
    """Fork; run ``report()`` in the child and return what it returned (as JSON).

    An exception in the child is raised here as an AssertionError with its repr. The
    report is one line: the end of the pipe is no signal, since worker processes that
    the child forks inherit the pipe and may outlive it.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read_fd)
            try:
                outcome = {"result": report()}
            except BaseException as e:
                outcome = {"error": repr(e)}
            os.write(write_fd, json.dumps(outcome).encode() + b"\n")
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        data = _read_all(read_fd, pid, timeout)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    outcome = json.loads(data)
    assert "error" not in outcome, outcome["error"]
    return outcome["result"]


def _read_all(fd: int, pid: int, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"The forked child did not report within {timeout}s.")
        chunk = os.read(fd, 65536)
        data += chunk
        if not chunk or data.endswith(b"\n"):
            return data


def app_name_and_pid() -> dict[str, t.Any]:
    return {"app": current_app.name, "pid": os.getpid()}


@pytest.fixture
def bound(app: Flask, request: pytest.FixtureRequest) -> t.Iterator[tuple[Flask, Executor]]:
    app.config.update(request.param)
    executor = Executor(app)
    yield app, executor
    with app.app_context():
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("bound", POOLS, indirect=True)
def test_an_executor_used_before_fork_runs_jobs_in_the_child(
    bound: tuple[Flask, Executor],
) -> None:
    app, executor = bound
    with app.app_context():
        # The pool now exists, with workers that the child will not have.
        assert executor.submit(jobs.square, 3).result(timeout=30) == 9

    def child() -> dict[str, t.Any]:
        with app.app_context():
            report = executor.submit(jobs.app_report).result(timeout=30)
            squares = list(executor.map(jobs.square, range(10)))
            # The child's own pool: its worker processes must not outlive the child.
            executor.shutdown(wait=True)
        return {"pid": os.getpid(), "report": report, "squares": squares}

    result = in_forked_child(child)

    assert result["pid"] != os.getpid()
    assert result["squares"] == [x * x for x in range(10)]
    assert result["report"]["has_app_context"] is True
    assert result["report"]["app_name"] == app.name
    if app.config["EXECUTOR_TYPE"] == "thread":
        assert result["report"]["pid"] == result["pid"]
    else:
        # A worker process of the child's own pool.
        assert result["report"]["pid"] not in (result["pid"], os.getpid())
    # The parent's pool is untouched by the fork.
    with app.app_context():
        assert executor.submit(jobs.square, 4).result(timeout=30) == 16


@pytest.mark.parametrize("bound", POOLS, indirect=True)
def test_stored_futures_from_the_parent_do_not_pretend_to_run_in_the_child(
    bound: tuple[Flask, Executor],
) -> None:
    app, executor = bound
    with app.app_context(), Gate() as gate:
        running = executor.submit_stored("running", jobs.pass_gate, gate.port, "held")
        gate.wait_for(1)
        finished = executor.submit_stored("finished", jobs.square, 5)
        assert finished.result(timeout=30) == 25

        def child() -> dict[str, t.Any]:
            futures = executor.futures
            held = futures.get("running")
            assert held is not None
            # Waiting must not hang: the job is not running in this process.
            error = held.exception(timeout=5)
            with app.app_context():
                new = executor.submit_stored("new", jobs.square, 6).result(timeout=30)
                executor.shutdown(wait=True)
            return {
                "keys": sorted(futures.keys()),
                "done": futures.done("running"),
                "running": futures.running("running"),
                "error": f"{type(error).__name__}: {error}",
                "finished": futures.result("finished", timeout=0),
                "new": new,
            }

        result = in_forked_child(child)

        # The parent's job was running all along, and is not disturbed.
        assert not running.done()
        gate.open()
        assert running.result(timeout=30) == "held"

    assert result == {
        "keys": ["finished", "new", "running"],
        "done": True,
        "running": False,
        "error": "RuntimeError: This job was submitted in the parent process before it"
        " forked; its result exists only in the parent.",
        "finished": 25,
        "new": 36,
    }


def test_a_job_callback_from_the_parent_does_not_run_in_the_child(app: Flask) -> None:
    executor = Executor(app)
    called_in: list[int] = []
    with app.app_context(), Gate() as gate:
        running = executor.submit_stored("running", jobs.pass_gate, gate.port, "held")
        running.add_done_callback(lambda _: called_in.append(os.getpid()))
        gate.wait_for(1)

        def child() -> list[int]:
            # Failing the stored future must not run the parent's callback here.
            assert executor.futures.done("running")
            return called_in

        assert in_forked_child(child) == []
        gate.open()
        running.result(timeout=30)
        executor.shutdown(wait=True)
    assert called_in == [os.getpid()]


def test_a_fork_while_jobs_run_leaves_the_child_a_working_pool(app: Flask) -> None:
    # The fork happens while the parent's worker threads are busy, maybe holding the
    # locks of the pool's queue: the child must not inherit them.
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    executor = Executor(app)
    stop = threading.Event()
    with app.app_context():
        busy = [executor.submit(_spin_until, stop) for _ in range(2)]
        churn = [executor.submit(jobs.square, x) for x in range(200)]

        def child() -> list[int]:
            with app.app_context():
                squares = list(executor.map(jobs.square, range(50)))
                executor.shutdown(wait=True)
            return squares

        assert in_forked_child(child) == [x * x for x in range(50)]
        stop.set()
        concurrent.futures.wait(busy + churn, timeout=30)
        assert [f.result(0) for f in churn] == [x * x for x in range(200)]
        executor.shutdown(wait=True)


@pytest.mark.timeout(60)
def test_a_forked_child_runs_coroutines_on_an_event_loop_of_its_own() -> None:
    # A thread that ran a coroutine job keeps its event loop for the next one (as a
    # process worker's main thread does). A child forked from that thread must make its
    # own: the parent's loop shares its selector and self-pipe with the parent.
    async def running_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    inherited = job_functions.run_coroutine(running_loop())
    try:
        assert job_functions.run_coroutine(running_loop()) is inherited  # reused in this thread

        def child() -> list[bool]:
            loop = job_functions.run_coroutine(running_loop())
            return [loop is inherited, job_functions.run_coroutine(running_loop()) is loop]

        # 'inherited' stays alive in the child, so a new loop cannot take its address.
        assert in_forked_child(child) == [False, True]
        assert job_functions.run_coroutine(running_loop()) is inherited
    finally:
        # This thread is pytest's; its loop must not outlive the test.
        inherited.close()


@pytest.mark.timeout(60)
def test_a_fork_leaves_the_parents_coroutine_workers_able_to_wake(app: Flask) -> None:
    # A worker thread keeps its event loop between coroutine jobs. A forked child
    # (a fork-started process pool, a gunicorn worker forking later) drops the loops of
    # the parent's threads; closing them there used to unregister their self-pipes from
    # the selector they share with the parent, and the parent's worker then never woke
    # for a result set by another thread.
    app.config["EXECUTOR_MAX_WORKERS"] = 1  # one worker: the same thread, the same loop
    executor = Executor(app)
    other = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    async def woken_by_another_thread(n: int) -> int:
        # 'run_in_executor' reports back with 'call_soon_threadsafe', which wakes the
        # loop through its self-pipe. The watchdog wakes a loop that nothing else would
        # (so that the test fails instead of hanging at exit); it then fires in the same
        # turn of the loop as the late result, and before this coroutine resumes.
        loop = asyncio.get_running_loop()
        woken_by_watchdog: list[bool] = []
        watchdog = loop.call_later(10, woken_by_watchdog.append, True)
        try:
            result = await loop.run_in_executor(other, abs, -n)
        finally:
            watchdog.cancel()
        if woken_by_watchdog:
            raise RuntimeError("The worker's event loop was not woken by the other thread.")
        return result

    try:
        assert executor.submit(woken_by_another_thread, 1).result(timeout=30) == 1
        assert in_forked_child(lambda: os.getpid()) != os.getpid()
        assert executor.submit(woken_by_another_thread, 2).result(timeout=30) == 2
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        other.shutdown(wait=False)


def _spin_until(stop: threading.Event) -> None:
    while not stop.wait(0.001):
        pass


# -- gunicorn --preload ------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_gunicorn_preload_workers_run_jobs() -> None:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--preload",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "-c",
        "python:preload_app",
        "preload_app:app",
    ]
    with running_server(argv, port) as base, Gate() as gate:
        # Two requests that each hold their worker until the gate opens: a sync worker
        # serves one request at a time, so the second one is surely served by the
        # other worker, and both must run jobs.
        with concurrent.futures.ThreadPoolExecutor(2) as clients:
            held = [clients.submit(get_json, f"{base}/hold?port={gate.port}") for _ in range(2)]
            arrived = gate.wait_for(2)
            gate.open()
            held_pids = {f.result()["worker_pid"] for f in held}
        assert {int(pid) for pid in arrived} == held_pids
        assert len(held_pids) == 2

        # Many requests at once, each submitting a job to each pool.
        with concurrent.futures.ThreadPoolExecutor(8) as clients:
            thread_replies = list(clients.map(lambda n: get_json(f"{base}/job/{n}"), range(60)))
            process_replies = list(
                clients.map(lambda _: get_json(f"{base}/process-job"), range(20))
            )
        stored = get_json(f"{base}/stored")

    for n, reply in enumerate(thread_replies):
        assert reply["job"] == {
            "n": n,
            "square": n * n,
            "pid": reply["worker_pid"],
            "app": "preload_app",
            "path": f"/job/{n}",
        }
        assert reply["worker_pid"] in held_pids
    for reply in process_replies:
        assert reply["worker_pid"] in held_pids
        assert reply["job_pid"] not in held_pids
    assert stored["worker_pid"] in held_pids
    assert stored["master_pid"] not in held_pids
    assert stored == {
        **stored,
        "running_done": True,
        "running_running": False,
        "running_error": "This job was submitted in the parent process before it forked;"
        " its result exists only in the parent.",
        "finished_result": 25,
        "new_result": 36,
    }


# -- A child that exits normally -------------------------------------------------------------

FORK_EXIT_SCRIPT = """
import os
import sys
import threading

from flask import Flask

from flask_executor import Executor


def square(x):
    return x * x


if __name__ == "__main__":
    app = Flask("fork_exit")
    app.config["EXECUTOR_TYPE"] = "process"
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    app.config["EXECUTOR_POOL_KWARGS"] = {"mp_context": "fork"}
    executor = Executor(app)
    with app.app_context():
        assert executor.submit(square, 3).result(30) == 9
        # Only the lock: nothing here may keep the pool alive.
        lock = executor._state()[1].manager.pool._shutdown_lock

    # Another thread holds the pool's lock at the fork, as a submit in progress does;
    # in the child it stays held for ever.
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait()

    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        with app.app_context():
            print(f"child job {executor.submit(square, 4).result(30)}", flush=True)
        sys.exit(0)  # 'atexit' functions run, as when a gunicorn worker exits
    release.set()
    _, status = os.waitpid(pid, 0)
    print(f"child exit code {os.waitstatus_to_exitcode(status)}", flush=True)
    with app.app_context():
        executor.shutdown()
"""


@pytest.mark.timeout(90)
def test_a_child_forked_while_a_pool_is_busy_exits_normally(tmp_path: Path) -> None:
    # The parent's pools in the child are never freed there: their CPython finalizer
    # would take the lock held at the fork, and the child would never exit.
    script = tmp_path / "fork_exit.py"
    script.write_text(FORK_EXIT_SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that a hung child can be killed with its parent
    )
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"The script did not finish:\n{out}\n{err}") from None
    assert process.returncode == 0, err
    assert out.splitlines() == ["child job 16", "child exit code 0"], err
