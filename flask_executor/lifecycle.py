"""The lifecycle of a job: the states its future goes through, as a public type.

A job is PENDING until a worker takes it, then RUNNING, and ends FINISHED (it returned
a result), FAILED (it raised) or CANCELLED (it was cancelled before it started). Each
state is also its own name as a string, so that it can go into JSON as it is.
"""

from __future__ import annotations

import enum
import typing as t

if t.TYPE_CHECKING:
    import concurrent.futures

__all__ = ["JobState", "state_of"]


class JobState(str, enum.Enum):
    """The state of a job, as :attr:`FutureProxy.state <flask_executor.FutureProxy.state>`
    and :meth:`FutureCollection.state <flask_executor.FutureCollection.state>` give it.

    Each member is a :class:`str` equal to its name, so ``JobState.RUNNING == "RUNNING"``
    and ``jsonify({"state": future.state})`` writes ``"RUNNING"``.

    .. versionadded:: 2.0
    """

    #: Waiting for a worker.
    PENDING = "PENDING"
    #: A worker is running it now.
    RUNNING = "RUNNING"
    #: It returned: ``result()`` gives its value.
    FINISHED = "FINISHED"
    #: It raised: ``result()`` raises the exception, and ``exception()`` returns it.
    FAILED = "FAILED"
    #: It was cancelled before it started.
    CANCELLED = "CANCELLED"

    # The value, not 'JobState.RUNNING', in str() and f-strings, on every Python: a
    # mixed-in enum's format() changed in 3.12, and str.__str__ pins it to the value.
    __str__ = str.__str__


def state_of(future: concurrent.futures.Future[t.Any]) -> JobState:
    """The state of any :class:`concurrent.futures.Future`, through its public methods.

    A future moves forward only (PENDING, RUNNING, then done), while this asks it one
    question at a time. So "done?" is asked again after "running?" says no: a job that
    finished in between is reported as done, never as PENDING again.
    """
    if not future.done():
        if future.running():
            return JobState.RUNNING
        if not future.done():
            return JobState.PENDING
    if future.cancelled():
        return JobState.CANCELLED
    # Done and not cancelled: exception() returns at once.
    return JobState.FINISHED if future.exception() is None else JobState.FAILED
