"""Reading, coercing and validating an executor's configuration.

This is the one place that reads ``app.config``. Every key is read once, in
:meth:`~flask_executor.Executor.init_app`, and turned into an immutable
:class:`ExecutorConfig`. Values may come straight from Python or as the strings that
environment variables produce (``app.config.from_prefixed_env()`` leaves anything that
is not valid JSON as a string), so strings are coerced. Anything that cannot be used
raises a :exc:`ValueError` or :exc:`TypeError` whose message names the key, the value
it got and what is accepted, so a typo fails the app at start-up rather than the first
job in production.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import inspect
import json
import multiprocessing
import re
import sys
import typing as t

from werkzeug.utils import import_string
from werkzeug.utils import ImportStringError

from . import _cpython

if t.TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "DEFAULTS",
    "EXECUTOR_TYPES",
    "ExecutorConfig",
    "config_prefix",
    "read_config",
    "validate_name",
]

#: The values that ``EXECUTOR_TYPE`` accepts.
EXECUTOR_TYPES = ("thread", "process", "custom")

#: Defaults for every key, without the prefix. ``init_app`` sets these with
#: ``app.config.setdefault`` so that ``app.config`` shows what is in force.
DEFAULTS: dict[str, t.Any] = {
    "TYPE": "thread",
    "POOL_CLASS": None,
    "POOL_KWARGS": None,
    "MAX_WORKERS": None,
    "FUTURES_MAX_LENGTH": 50,
    "PROPAGATE_EXCEPTIONS": False,
    "PUSH_APP_CONTEXT": True,
    "APP_IMPORT": None,
    "FAST_PATHS": True,
}

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = frozenset({"", "none", "null"})


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """The validated configuration of one executor on one app."""

    #: ``"thread"``, ``"process"`` or ``"custom"``.
    executor_type: str
    #: The :class:`concurrent.futures.Executor` subclass to build.
    pool_class: type[concurrent.futures.Executor]
    #: Extra keyword arguments for ``pool_class``, ``max_workers`` included when set.
    pool_kwargs: dict[str, t.Any]
    #: The most futures ``executor.futures`` keeps, or None for no bound.
    futures_max_length: int | None
    #: Log every failed job through ``app.logger``.
    propagate_exceptions: bool
    #: Run each job in a fresh app context.
    push_app_context: bool
    #: How a spawned worker process imports the app (``flask --app`` syntax), or None.
    app_import: str | None
    #: Let CPython's own pools take the fast paths of :mod:`flask_executor._cpython`.
    fast_paths: bool = True

    @property
    def max_workers(self) -> int | None:
        """The ``max_workers`` the pool is built with, or None for the pool's default."""
        return self.pool_kwargs.get("max_workers")


def validate_name(name: str) -> str:
    """Check that an executor's name can prefix config keys, and return it.

    :raises TypeError: if ``name`` is not a string.
    :raises ValueError: if ``name`` is not usable as an environment variable prefix.
    """
    if not isinstance(name, str):
        raise TypeError(f"The executor name must be a string, but got {name!r}.")
    if name and not _NAME_RE.match(name):
        raise ValueError(
            f"The executor name {name!r} cannot be used: it becomes the config prefix"
            f" '{name.upper()}_EXECUTOR_', so it may contain only letters, digits and"
            " underscores, and must not start with a digit."
        )
    return name


def config_prefix(name: str) -> str:
    """The prefix of an executor's config keys: ``EXECUTOR_`` or ``NAME_EXECUTOR_``."""
    return f"{name.upper()}_EXECUTOR_" if name else "EXECUTOR_"


def read_config(app: Flask, name: str) -> ExecutorConfig:
    """Read, coerce and validate the config of the executor called ``name`` on ``app``.

    Missing keys are filled in with their defaults in ``app.config``.

    :raises ValueError: if a value is of the right kind but not allowed.
    :raises TypeError: if a value is of the wrong kind.
    """
    prefix = config_prefix(name)
    for key, default in DEFAULTS.items():
        app.config.setdefault(prefix + key, default)
    reader = _Reader(app.config, prefix)

    executor_type = reader.choice("TYPE", EXECUTOR_TYPES)
    pool_class = _pool_class(reader, executor_type)
    pool_kwargs = reader.mapping("POOL_KWARGS")
    max_workers = reader.positive_int("MAX_WORKERS")
    if max_workers is not None:
        pool_kwargs["max_workers"] = max_workers
    elif pool_kwargs.get("max_workers") is not None:
        # The pool would reject it only when built, at the first job; check it now.
        pool_kwargs["max_workers"] = _positive_pool_argument(reader, pool_kwargs["max_workers"])
    if "mp_context" in pool_kwargs:
        pool_kwargs["mp_context"] = _mp_context(reader, pool_kwargs["mp_context"])
    _check_pool_arguments(reader, pool_class, pool_kwargs, max_workers is not None)
    _check_pool_values(reader, pool_class, pool_kwargs)

    return ExecutorConfig(
        executor_type=executor_type,
        pool_class=pool_class,
        pool_kwargs=pool_kwargs,
        futures_max_length=reader.positive_int("FUTURES_MAX_LENGTH"),
        propagate_exceptions=reader.boolean("PROPAGATE_EXCEPTIONS"),
        push_app_context=reader.boolean("PUSH_APP_CONTEXT"),
        app_import=reader.optional_str("APP_IMPORT"),
        fast_paths=reader.boolean("FAST_PATHS"),
    )


def _pool_class(reader: _Reader, executor_type: str) -> type[concurrent.futures.Executor]:
    if executor_type == "thread":
        return concurrent.futures.ThreadPoolExecutor
    if executor_type == "process":
        return concurrent.futures.ProcessPoolExecutor
    value = reader.raw("POOL_CLASS")
    key = reader.key("POOL_CLASS")
    if value is None:
        raise ValueError(
            f"'{reader.key('TYPE')}' is 'custom', so '{key}' must name the pool class to"
            " use, as a class or an import string such as 'package.module:PoolClass'."
        )
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportStringError as e:
            raise ValueError(
                f"'{key}' is {value!r}, which cannot be imported ({e.exception}). Give a"
                " class or an import string such as 'package.module:PoolClass'."
            ) from e
    if not (isinstance(value, type) and issubclass(value, concurrent.futures.Executor)):
        raise TypeError(
            f"'{key}' must be a subclass of 'concurrent.futures.Executor', but got {value!r}."
        )
    return value


def _mp_context(reader: _Reader, value: object) -> object:
    # A start-method name is accepted so that the whole setting can live in a config
    # file or the environment; the pool itself wants a context object.
    if isinstance(value, str):
        methods = multiprocessing.get_all_start_methods()
        if value not in methods:
            raise ValueError(
                f"'{reader.key('POOL_KWARGS')}' has 'mp_context' {value!r}, which is not a"
                f" start method here. Use one of {', '.join(map(repr, methods))}, or a"
                " context from 'multiprocessing.get_context()'."
            )
        return multiprocessing.get_context(value)
    return value


def _positive_pool_argument(reader: _Reader, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(
        f"'{reader.key('POOL_KWARGS')}' has 'max_workers' {value!r}, but it must be a whole"
        " number greater than 0, or None."
    )


def _check_pool_arguments(
    reader: _Reader,
    pool_class: type[concurrent.futures.Executor],
    kwargs: dict[str, t.Any],
    with_max_workers: bool,
) -> None:
    # The pool is built lazily, at the first job (so that it is built after a fork, in
    # the process that uses it). Binding the arguments to its signature now reports a
    # misspelt keyword at start-up instead.
    try:
        signature = inspect.signature(pool_class)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        keys = f"'{reader.key('POOL_KWARGS')}'"
        if with_max_workers:
            keys += f" (with '{reader.key('MAX_WORKERS')}')"
        # Name what the class does take, so that a misspelling can be put right from
        # the message alone.
        accepted = [
            name
            for name, parameter in signature.parameters.items()
            if parameter.kind
            in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        if not accepted:
            takes = "no keyword arguments"
        elif len(accepted) == 1:
            takes = repr(accepted[0])
        else:
            takes = ", ".join(map(repr, accepted[:-1])) + f" and {accepted[-1]!r}"
        raise TypeError(
            f"{keys} gives {sorted(kwargs)}, which {pool_class.__qualname__} does not accept: {e}."
            f" It takes {takes}."
        ) from None


def _check_pool_values(
    reader: _Reader, pool_class: type[concurrent.futures.Executor], kwargs: dict[str, t.Any]
) -> None:
    # The values that CPython's pools check in '__init__' (3.9 to 3.13), and a few they
    # take on trust and fail on later. Unchecked, they pass 'init_app' and then fail
    # every job, at the first submit, with a message that names no config key.
    is_thread = issubclass(pool_class, concurrent.futures.ThreadPoolExecutor)
    is_process = issubclass(pool_class, concurrent.futures.ProcessPoolExecutor)
    if not (is_thread or is_process):
        return  # a custom pool's arguments mean what it says they mean
    key = reader.key("POOL_KWARGS")

    def refuse(name: str, accepted: str, error: type[Exception] = TypeError) -> t.NoReturn:
        raise error(f"'{key}' has {name!r} {kwargs[name]!r}, but it must be {accepted}.")

    initializer = kwargs.get("initializer")
    if initializer is not None and not callable(initializer):
        refuse("initializer", "a callable that each worker calls once when it starts, or None")
    if "initargs" in kwargs and not isinstance(kwargs["initargs"], (tuple, list)):
        refuse("initargs", "a tuple of arguments for the initializer")
    prefix = kwargs.get("thread_name_prefix")
    if is_thread and prefix is not None and not isinstance(prefix, str):
        refuse("thread_name_prefix", "a string, or None")
    max_workers = kwargs.get("max_workers")
    if is_process and sys.platform == "win32" and max_workers is not None and max_workers > 61:
        refuse("max_workers", "at most 61 for a process pool on Windows", ValueError)
    if not is_process or kwargs.get("max_tasks_per_child") is None:
        return
    # Only on Python 3.11 and later: on 3.9 and 3.10 '_check_pool_arguments' has already
    # refused the keyword, which their ProcessPoolExecutor does not take.
    value = kwargs["max_tasks_per_child"]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        refuse("max_tasks_per_child", "a whole number greater than 0, or None", ValueError)
    get_start_method = getattr(kwargs.get("mp_context"), "get_start_method", None)
    if get_start_method is not None and get_start_method(allow_none=False) == "fork":
        raise ValueError(
            f"'{key}' has 'max_tasks_per_child' {value!r} with the 'fork' start method,"
            " which ProcessPoolExecutor does not allow together: a worker forked to"
            " replace one that retired could inherit the parent's locks held. Give"
            " 'mp_context' as 'spawn' or 'forkserver', or leave it out ('spawn' is then"
            " used)."
        )
    if not _cpython.replaces_retired_workers():
        raise ValueError(
            f"'{key}' has 'max_tasks_per_child' {value!r}, which this Python"
            f" ({sys.version.split()[0]}) cannot honour: its ProcessPoolExecutor stops"
            " starting workers once one retires while jobs are queued, and the queued"
            " jobs then wait for ever and the interpreter hangs at exit (CPython issue"
            " gh-115634, fixed after 3.12). Leave 'max_tasks_per_child' out, or run on a"
            " Python whose concurrent.futures has the fix."
        )


class _Reader:
    """Reads prefixed keys and coerces strings, naming the key in every error."""

    def __init__(self, config: t.Mapping[str, t.Any], prefix: str) -> None:
        self.config = config
        self.prefix = prefix

    def key(self, key: str) -> str:
        return self.prefix + key

    def raw(self, key: str) -> t.Any:
        return self.config[self.prefix + key]

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.raw(key)
        normal = value.strip().lower() if isinstance(value, str) else value
        if normal not in choices:
            raise ValueError(
                f"'{self.key(key)}' is {value!r}, but it must be one of"
                f" {', '.join(map(repr, choices))}."
            )
        return t.cast(str, normal)

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            normal = value.strip().lower()
            if normal in _TRUE:
                return True
            if normal in _FALSE:
                return False
        raise ValueError(
            f"'{self.key(key)}' is {value!r}, but it must be True or False (from the"
            " environment: 'true', 'false', '1', '0', 'yes', 'no', 'on' or 'off')."
        )

    def positive_int(self, key: str) -> int | None:
        value = self.raw(key)
        original = value
        if isinstance(value, str):
            value = value.strip()
            if value.lower() in _NONE:
                return None
            try:
                value = int(value)
            except ValueError:
                value = original
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise ValueError(
            f"'{self.key(key)}' is {original!r}, but it must be a whole number greater"
            " than 0, or None."
        )

    def mapping(self, key: str) -> dict[str, t.Any]:
        value = original = self.raw(key)
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError(
                    f"'{self.key(key)}' is {value!r}, which is not a JSON object. Give a"
                    " dict of keyword arguments for the pool class."
                ) from None
        if not isinstance(value, t.Mapping) or not all(isinstance(k, str) for k in value):
            raise TypeError(
                f"'{self.key(key)}' must be a dict of keyword arguments for the pool"
                f" class, but got {original!r}."
            )
        return dict(value)

    def optional_str(self, key: str) -> str | None:
        value = self.raw(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise TypeError(
                f"'{self.key(key)}' must be a string such as 'package.module:create_app()',"
                f" but got {value!r}."
            )
        return value.strip()
