"""Flask-Executor 1.0's helpers, kept so that code importing them still works.

Nothing in flask-executor 2.0 uses them.
"""

from __future__ import annotations

import typing as t

__all__ = ["InstanceProxy", "str2bool"]


def str2bool(value: object) -> bool:
    """Whether ``value`` reads as true: ``"yes"``, ``"true"``, ``"t"`` or ``"1"``, in any case.

    1.0's loose reading of boolean config values; 2.0's config also refuses values that
    are neither true nor false (see :doc:`/configuration`).
    """
    return str(value).lower() in ("yes", "true", "t", "1")


class InstanceProxy:
    """Stands in for another object: reads its attributes, and passes ``isinstance`` checks
    for its class.

    1.0 built its executor and futures on this, to lend them the pool's and the pool
    future's behaviour. Attributes that the proxy or its subclass define are its own;
    every other attribute is read from the proxied object, which is kept as ``_self``.

    :param proxied: The object to stand in for.
    """

    _self: t.Any

    def __init__(self, proxied: object) -> None:
        # Through 'object', so that a subclass defining '__setattr__' is not involved.
        object.__setattr__(self, "_self", proxied)

    def __getattr__(self, attr: str) -> t.Any:
        # Only called for what the proxy itself does not have.
        if attr == "_self":  # not set yet: during unpickling, say
            raise AttributeError(attr)
        return getattr(self._self, attr)

    # 'isinstance' falls back on '__class__' when the type itself does not match: this
    # makes a proxy of a Future pass for a Future, as in 1.0. 'type(proxy)' is the truth.
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._self!r})>"
