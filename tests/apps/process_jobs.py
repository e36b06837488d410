"""Module-level jobs for process pools: workers import them by module and name.

Each returns plain data describing what it saw, so that a test in the parent process can
assert on the contexts that reached the worker. :class:`Gate` holds jobs, in any process,
until the test lets them go.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import threading
import typing as t

from flask import current_app
from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from flask_executor import Executor

#: Bound to each test's app with ``init_app``; decorating needs no app.
executor = Executor()


def square(x: int) -> int:
    return x * x


def negate(x: int) -> int:
    return -x


def add(x: int, y: int) -> int:
    return x + y


@executor.job
def cube(x: int) -> int:
    return x * x * x


@executor.job
def worker_pid_and_app(tag: str) -> dict[str, t.Any]:
    return {"tag": tag, "pid": os.getpid(), "app": current_app.name}


def worker_pid() -> int:
    return os.getpid()


def app_report() -> dict[str, t.Any]:
    """Which app, built where, the job runs in, if any."""
    if not has_app_context():
        return {"pid": os.getpid(), "has_app_context": False}
    return {
        "pid": os.getpid(),
        "has_app_context": True,
        "app_name": current_app.name,
        "greeting": current_app.config.get("GREETING"),
        "build_number": current_app.config.get("BUILD_NUMBER"),
        "built_in_pid": current_app.config.get("BUILT_IN_PID"),
    }


def request_report() -> dict[str, t.Any]:
    """The parts of the request a job in a worker can read."""
    return {
        "method": request.method,
        "path": request.path,
        "url": request.url,
        "args": request.args.to_dict(flat=False),
        "headers": {"X-Trace": request.headers.get("X-Trace"), "Host": request.host},
        "cookies": request.cookies.to_dict(),
        "view_args": request.view_args,
    }


def request_body() -> bytes:
    return request.get_data()


def request_form() -> dict[str, list[str]]:
    return request.form.to_dict(flat=False)


def g_report() -> dict[str, t.Any]:
    return dict(vars(g))


def context_report() -> dict[str, t.Any]:
    """Everything a leaked request or ``g`` would show up in."""
    return {
        "pid": os.getpid(),
        "has_request_context": has_request_context(),
        "path": request.path if has_request_context() else None,
        "g": dict(vars(g)) if has_app_context() else None,
    }


def exit_worker() -> None:
    # Ends the worker process without any clean-up, as a crash in C code would.
    os._exit(13)


def kill_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def block(seconds: float) -> str:
    """Occupy a worker; a broken pool terminates it long before ``seconds``."""
    threading.Event().wait(seconds)
    return "unblocked"


def pass_gate(port: int, name: str) -> str:
    """Tell the test's :class:`Gate` that this job is running, and wait until it opens."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(name.encode() + b"\n")
        conn.recv(16)
    return name


def hold_the_second_worker(port: int, count_path: str) -> None:
    """Pool initializer: the second worker to start waits at the :class:`Gate`."""
    # Appends are atomic, and the test starts the workers one after another.
    with open(count_path, "a") as count:
        count.write("+")
    with open(count_path) as count:
        if len(count.read()) == 2:
            pass_gate(port, "second worker")


def make_lock() -> threading.Lock:
    """Return a value that cannot be pickled back to the parent."""
    return threading.Lock()


def echo(value: t.Any) -> t.Any:
    return value


class Tally:
    """A callable object with state: each call counts itself and returns the count."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def make_counter(start: int) -> t.Callable[[], int]:
    count = [start]

    def counter() -> int:
        count[0] += 1
        return count[0]

    return counter


class PicklesAsClosure:
    """Unpickles as a closure with state of its own: a plain function, in the worker."""

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (make_counter, (0,))

    def __call__(self) -> int:
        raise AssertionError("only the closure it unpickles as runs")


class Box:
    def holds(self, other: object) -> bool:
        return other is self


class TwoPartError(Exception):
    """Pickles, but cannot be rebuilt from what pickles: its one argument, the message."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


def raise_two_part_error() -> None:
    raise TwoPartError(7, "out of widgets")


class FollowedProcessPool(concurrent.futures.ProcessPoolExecutor):
    """A subclass, which flask-executor drives through ``submit`` and its futures only."""


class Gate:
    """A gate that jobs in other processes (or threads) wait at, on a local TCP socket.

    A job calls :func:`pass_gate` with :attr:`port`: that tells the test it has started
    and blocks it. The test waits for the arrivals with :meth:`wait_for`, looks at what is
    running, then lets every job through with :meth:`open`. No value has to be pickled or
    inherited, so it works with every start method and across unrelated processes.
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._arrived: list[socket.socket] = []

    def wait_for(self, count: int, timeout: float = 30.0) -> list[str]:
        """Wait until ``count`` more jobs have arrived; return the names they gave."""
        names = []
        self._server.settimeout(timeout)
        for _ in range(count):
            conn, _ = self._server.accept()
            self._arrived.append(conn)
            conn.settimeout(timeout)
            names.append(_read_line(conn))
        return names

    def open(self) -> None:
        """Let through every job that has arrived so far."""
        for conn in self._arrived:
            # A job whose worker was killed meanwhile has nobody left to tell.
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"go")
        self._arrived.clear()

    def close(self) -> None:
        self.open()
        self._server.close()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_line(conn: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()
