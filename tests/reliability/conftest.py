"""The reliability suite: load, chaos, memory, shutdown races and fork, at two sizes.

Each scenario runs small in CI, in a few seconds. ``--reliability-full`` (or the
environment variable ``FLASK_EXECUTOR_RELIABILITY_FULL=1``) runs it at the size the
figures in ``docs/reliability.rst`` come from. Every scenario records its figures with
the ``figures`` fixture; they are printed at the end of the run, in CI output too.
"""

from __future__ import annotations

import os
import typing as t

import pytest

if t.TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

_recorded: list[tuple[str, dict[str, t.Any]]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-full",
        action="store_true",
        default=False,
        help="Run the reliability scenarios at full size (minutes, not seconds).",
    )


def is_full(config: pytest.Config) -> bool:
    # The option is only registered when pytest starts in or above this folder with it
    # among the arguments; the environment variable works from anywhere.
    option = bool(config.getoption("--reliability-full", default=False))
    return option or os.environ.get("FLASK_EXECUTOR_RELIABILITY_FULL") == "1"


class Size:
    """Picks the CI or the full figure of a scenario."""

    def __init__(self, full: bool) -> None:
        self.full = full

    def __call__(self, ci: t.Any, full: t.Any) -> t.Any:
        return full if self.full else ci


@pytest.fixture
def size(request: pytest.FixtureRequest) -> Size:
    return Size(is_full(request.config))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, t.Any]:
    """A dict the test fills with its figures; printed in the terminal summary."""
    recorded: dict[str, t.Any] = {}
    _recorded.append((request.node.nodeid, recorded))
    return recorded


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not _recorded:
        return
    full = is_full(terminalreporter.config)
    terminalreporter.section(f"reliability figures ({'full' if full else 'CI'} size)")
    for nodeid, recorded in _recorded:
        if recorded:
            shown = ", ".join(f"{key}={value}" for key, value in recorded.items())
            terminalreporter.write_line(f"{nodeid}: {shown}")
