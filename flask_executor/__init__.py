"""Run background jobs from Flask views, with Flask's contexts and awaitable futures."""

from __future__ import annotations

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
