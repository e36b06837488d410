"""CPython's :class:`~concurrent.futures.ThreadPoolExecutor` and its subclasses.

As any pool of this process's threads (:mod:`.pool`), with one fast path for CPython's
own class: each job's task goes straight into the pool's queue, so that a job is one
object, not a task plus the pool's Future and the work item that holds it. Whether
that path is used is decided once per pool by :class:`flask_executor._cpython.FastPath`.
"""

from __future__ import annotations

import concurrent.futures
import typing as t

from .. import _cpython
from .pool import PoolBackend

if t.TYPE_CHECKING:
    from ..config import ExecutorConfig
    from ..futures import FutureProxy

__all__ = ["ThreadBackend"]


class ThreadBackend(PoolBackend):
    """CPython's thread pool, and its subclasses (which get no fast path)."""

    @classmethod
    def handles(cls, config: ExecutorConfig) -> bool:
        return issubclass(config.pool_class, concurrent.futures.ThreadPoolExecutor)

    def __init__(self, config: ExecutorConfig, *args: t.Any) -> None:
        super().__init__(config, *args)
        off = None if config.fast_paths else _cpython.SWITCHED_OFF
        self.fast_path = _cpython.FastPath("thread", self.pool, off)

    def start(self, future: FutureProxy[t.Any], call: t.Any) -> None:
        fast_path = self.fast_path
        if fast_path.on:
            task = t.cast(t.Any, future)
            task._fn, task._args, task._kwargs = call
            _cpython.put_thread_job(t.cast(concurrent.futures.ThreadPoolExecutor, self.pool), task)
            return
        fast_path.expire()
        super().start(future, call)
