"""Flask-Executor 1.0's module of the extension, kept so that its imports still work.

New code imports these names from :mod:`flask_executor`.
"""

from __future__ import annotations

import typing as t

from . import extension as _extension
from . import futures as _futures
from . import jobs as _jobs

if t.TYPE_CHECKING:
    import concurrent.futures

__all__ = ["Executor", "ExecutorJob", "FutureProxy", "propagate_exceptions_callback"]

Executor = _extension.Executor
ExecutorJob = _jobs.ExecutorJob
FutureProxy = _futures.FutureProxy


def propagate_exceptions_callback(future: concurrent.futures.Future[t.Any]) -> None:
    """Raise the exception of ``future``'s job, if it raised one.

    1.0 added this as a done callback for ``EXECUTOR_PROPAGATE_EXCEPTIONS``, where
    :mod:`concurrent.futures` only logged what it raised. 2.0 logs a failed job through
    ``app.logger`` instead (see :doc:`/migrating`); this is kept for code that calls it
    on a finished future, as 1.0's tests did.
    """
    exc = future.exception()
    if exc is not None:
        raise exc
