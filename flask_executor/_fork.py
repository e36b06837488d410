"""Resetting state in a child process after ``os.fork()``.

After a fork only the forking thread exists in the child. Whatever the parent's other
threads were doing, a pool's workers, a lock held mid-update, a job about to finish, is
gone, and an object that depended on them must start afresh. Such objects register here
and get their ``_reset_after_fork()`` called in the child, before anything else runs.
"""

from __future__ import annotations

import os
import typing as t
import weakref

__all__ = ["ResetAfterFork", "reset_after_fork"]


class ResetAfterFork(t.Protocol):
    def _reset_after_fork(self) -> None: ...


# Weak: registering must not keep an executor's state alive after its app is gone.
_registered: weakref.WeakSet[ResetAfterFork] = weakref.WeakSet()


def reset_after_fork(obj: ResetAfterFork) -> None:
    """Call ``obj._reset_after_fork()`` in every child this process forks from now on."""
    _registered.add(obj)


def _reset_all() -> None:
    for obj in list(_registered):
        obj._reset_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX only; Windows has no fork
    os.register_at_fork(after_in_child=_reset_all)
