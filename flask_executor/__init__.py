"""Run background jobs from Flask views, with Flask's contexts and awaitable futures."""

from __future__ import annotations

import typing as t

from .extension import Executor
from .futures import FutureCollection
from .futures import FutureProxy
from .jobs import AsyncExecutorJob
from .jobs import ExecutorJob
from .lifecycle import JobState
from .results import MapResult

__all__ = [
    "AsyncExecutorJob",
    "Executor",
    "ExecutorJob",
    "FutureCollection",
    "FutureProxy",
    "JobState",
    "MapResult",
]

if t.TYPE_CHECKING:
    #: The installed version, as in 1.0; read from the package's metadata when asked.
    __version__: str


def __getattr__(name: str) -> t.Any:
    # Read on demand from the one place the version is written (pyproject.toml, through
    # the installed metadata), so that importing the package costs nothing for it.
    if name == "__version__":
        from importlib.metadata import version

        return version("flask-executor")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
