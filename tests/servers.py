"""Starting real HTTP servers on 127.0.0.1 for tests, and talking to them.

Each server runs in its own process group on a free port; :func:`running_server` waits
until the port accepts connections (or the process dies, whose output is then shown)
and always stops the whole group, workers included.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
APPS = HERE / "apps"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(
    argv: list[str],
    port: int,
    *,
    cwd: Path = APPS,
    env: dict[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> t.Iterator[str]:
    """Run ``argv`` until the block ends; yield the base URL ``http://127.0.0.1:PORT``."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(cwd), str(HERE.parent)]),
        **(env or {}),
    }
    process = subprocess.Popen(
        argv, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_port(process, port, startup_timeout, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


def _wait_for_port(
    process: subprocess.Popen[bytes], port: int, timeout: float, log: t.IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"The server exited early:\n{log.read().decode(errors='replace')}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        # Polling a port has no event to wait on; the pause only spaces the attempts.
        time.sleep(0.05)
    log.seek(0)
    raise RuntimeError(
        f"The server did not listen on {port} in {timeout}s:\n{log.read().decode(errors='replace')}"
    )


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, str]:
    """GET ``url``; return the status and the body as text."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode()


def get_json(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> t.Any:
    status, body = get(url, headers, timeout)
    assert status == 200, body
    return json.loads(body)
