"""What the examples share: serving on 127.0.0.1, on a free port.

Not an example itself. Each example imports it when run as a script, from this folder,
which Python puts first on ``sys.path``.
"""

from __future__ import annotations

import os
import socket

from flask import Flask
from flask_executor import Executor


def choose_port(preferred: int) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, or else a free port."""
    with socket.socket() as probe:
        # As the development server binds: a port left in TIME_WAIT by the last run
        # counts as free. One that another program listens on does not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    # Another program could take the port in the instant before the server binds it;
    # the server would then fail to start and say so. Run again to pick another.
    return port


def serve(
    app: Flask, default_port: int, title: str, thread_executor: Executor | None = None
) -> None:
    """Serve ``app`` on ``$PORT`` or ``default_port``, or a free port if that is taken.

    After Ctrl+C, wait for ``thread_executor``'s running jobs, or not if Ctrl+C comes
    again. (Only thread pools: shutting a process pool down this way, with a request
    still waiting on its job, was seen to hang, and is left to the interpreter's exit.)
    """
    wanted = os.environ.get("PORT", str(default_port))
    try:
        preferred = int(wanted)
    except ValueError:
        preferred = -1
    if not 0 <= preferred <= 65535:
        raise SystemExit(
            f"PORT must be a port number from 0 to 65535, such as 8000, not {wanted!r}."
        )
    port = choose_port(preferred)
    if preferred and port != preferred:
        print(f" * Port {preferred} is in use; serving on port {port} instead.", flush=True)
    print(f" * {title}: open http://127.0.0.1:{port}/ for what to try.", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)
    if thread_executor is None:
        return
    # Ctrl+C stopped the server (Werkzeug returns from 'run' then). Python would now wait
    # without a word for every running job before it exits, since concurrent.futures
    # joins its workers at exit: a 60 s job looks like a hang. Say so, drop the jobs that
    # have not started, and let a second Ctrl+C end the process at once.
    try:
        print(" * Stopped. Running jobs finish first; press Ctrl+C again to quit now.", flush=True)
        thread_executor.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        # The running jobs' threads cannot be stopped; leave without joining them.
        os._exit(130)
