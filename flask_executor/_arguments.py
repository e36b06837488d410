"""Arguments that may come by position or, as Flask-Executor 1.0 allowed, by keyword.

``submit(fn, /, *args, **kwargs)`` keeps ``fn`` positional-only, so that a job may take
a keyword argument named ``fn``. Code written for 1.0 passes it as a keyword, though
(``submit_stored(future_key=key, fn=run, cmd=cmd)``). A positional-only parameter with
a default leaves its name free: such a keyword lands in ``**kwargs``, and is taken out
of it only when nothing was passed by position.
"""

from __future__ import annotations

import typing as t

__all__ = ["MISSING", "pop_keyword"]


class _Missing:
    """The default of a positional-only parameter that may come as a keyword instead."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: t.Any = _Missing()


def pop_keyword(
    method: str, name: str, what: str, position: str, kwargs: dict[str, t.Any]
) -> t.Any:
    """Take the argument ``name`` out of ``kwargs``, for a call that did not pass it first.

    :raises TypeError: if it is not there either.
    """
    try:
        return kwargs.pop(name)
    except KeyError:
        raise TypeError(
            f"'{method}' needs {what}: pass it as its {position} argument, or as '{name}='."
        ) from None
