"""CPython's fast paths: used only where allowed and checked, else the public ``submit``.

Each reason to fall back is logged, and jobs run the same either way. The whole suite
also runs with the fast paths off (``FLASK_EXECUTOR_FAST_PATHS=0``, see conftest.py).
"""

from __future__ import annotations

import logging
import typing as t

import pytest
from flask import Flask
from flask_executor import _cpython
from flask_executor import Executor

from apps import process_jobs as jobs

RESULT_TIMEOUT = 30

POOLS = [
    pytest.param({"EXECUTOR_TYPE": "thread"}, "thread", id="thread"),
    pytest.param(
        {"EXECUTOR_TYPE": "process", "EXECUTOR_POOL_KWARGS": {"mp_context": "fork"}},
        "process",
        id="process",
    ),
]


@pytest.fixture
def run_jobs(caplog: pytest.LogCaptureFixture) -> t.Iterator[t.Callable[..., list[str]]]:
    """Run jobs on a fresh one-worker executor; return what it logged about fast paths.

    ``fast=True`` or ``False`` also checks whether the pool took the fast path in the end.
    """
    caplog.set_level(logging.DEBUG, "flask_executor")
    made: list[tuple[Flask, Executor]] = []

    def run(fast: bool, **config: t.Any) -> list[str]:
        app = Flask("fast_paths_test")
        app.config.update(EXECUTOR_MAX_WORKERS=1, **config)
        executor = Executor(app)
        made.append((app, executor))
        with app.app_context():
            # One worker: the pool's probe job runs, and answers, before these.
            assert [executor.submit(jobs.square, x).result(RESULT_TIMEOUT) for x in (2, 3)] == [
                4,
                9,
            ]
            futures = [executor.submit(jobs.square, x) for x in range(20)]
            assert [f.result(RESULT_TIMEOUT) for f in futures] == [x * x for x in range(20)]
        backend = t.cast(t.Any, executor._state()[1].manager.backend)
        assert backend.fast_path.on is fast
        return [r.getMessage() for r in caplog.records if "fast path" in r.getMessage()]

    yield run
    for app, executor in made:
        with app.app_context():
            executor.shutdown(wait=True)


@pytest.mark.parametrize(("config", "kind"), POOLS)
def test_cpythons_own_pools_take_the_fast_path_when_allowed(
    run_jobs: t.Callable[..., list[str]], config: dict[str, t.Any], kind: str
) -> None:
    if not _cpython.verified(kind):
        pytest.skip(f"the {kind} fast path is not verified on this Python")
    assert run_jobs(True, EXECUTOR_FAST_PATHS=True, **config) == []


@pytest.mark.parametrize(("config", "kind"), POOLS)
def test_the_switch_turns_the_fast_path_off(
    run_jobs: t.Callable[..., list[str]], config: dict[str, t.Any], kind: str
) -> None:
    # Nothing logged: the app's config says so already.
    assert run_jobs(False, EXECUTOR_FAST_PATHS="off", **config) == []


@pytest.mark.parametrize(("config", "kind"), POOLS)
def test_a_python_outside_the_allowlist_gets_the_public_path(
    run_jobs: t.Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, t.Any],
    kind: str,
) -> None:
    monkeypatch.setitem(_cpython.VERIFIED, kind, ((3, 0, 0), (3, 1, 0)))
    [message] = run_jobs(False, EXECUTOR_FAST_PATHS=True, **config)
    assert "it was not verified on Python 3." in message


@pytest.mark.parametrize(("config", "kind"), POOLS)
def test_a_probe_with_the_wrong_answer_turns_the_fast_path_off(
    run_jobs: t.Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, t.Any],
    kind: str,
) -> None:
    # As if the pool ran something else than what was queued: a change of shape.
    if not _cpython.verified(kind):
        pytest.skip(f"the {kind} fast path is not verified on this Python")
    monkeypatch.setattr(_cpython, "_probe", jobs.square)
    [message] = run_jobs(False, EXECUTOR_FAST_PATHS=True, **config)
    assert "its self-check failed: the probe job came back with 'the answer " in message


@pytest.mark.parametrize(("config", "kind"), POOLS)
def test_a_probe_that_comes_back_late_turns_the_fast_path_off(
    run_jobs: t.Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, t.Any],
    kind: str,
) -> None:
    if not _cpython.verified(kind):
        pytest.skip(f"the {kind} fast path is not verified on this Python")
    monkeypatch.setattr(_cpython, "PROBE_TIMEOUT", -1.0)
    [message] = run_jobs(False, EXECUTOR_FAST_PATHS=True, **config)
    assert "its self-check failed: the probe job did not come back within -1.0 s" in message


def test_a_subclass_gets_the_public_path(run_jobs: t.Callable[..., list[str]]) -> None:
    [message] = run_jobs(
        False,
        EXECUTOR_FAST_PATHS=True,
        EXECUTOR_TYPE="custom",
        EXECUTOR_POOL_CLASS=jobs.FollowedProcessPool,
        EXECUTOR_POOL_KWARGS={"mp_context": "fork"},
    )
    assert message.endswith("not the fast path: the pool is a FollowedProcessPool.")


def test_the_allowlist_is_checked_against_exact_versions() -> None:
    assert not _cpython.verified("process", (3, 9, 15))
    assert _cpython.verified("process", (3, 9, 16))
    assert _cpython.verified("thread", (3, 9, 0))
    assert _cpython.verified("thread", (3, 13, 0))
    assert not _cpython.verified("thread", (3, 14, 0))
    assert not _cpython.verified("process", (3, 14, 1))


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("false", False), (0, False), ("on", True)]
)
def test_the_switch_is_coerced_like_the_other_booleans(value: object, expected: bool) -> None:
    app = Flask("fast_paths_config")
    app.config["EXECUTOR_FAST_PATHS"] = value
    executor = Executor(app)
    assert executor._state()[1].config.fast_paths is expected


def test_a_bad_switch_is_refused_in_init_app() -> None:
    app = Flask("fast_paths_config")
    app.config["EXECUTOR_FAST_PATHS"] = "sometimes"
    with pytest.raises(ValueError, match="'EXECUTOR_FAST_PATHS' is 'sometimes', but it must be"):
        Executor(app)
