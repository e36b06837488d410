"""Memory: many stored and plain jobs; nothing grows, and everything is let go of.

RSS is read at the half-way mark and at the end: jobs whose futures are dropped (and
stored futures beyond the bound, evicted) must not make it grow over the second half.
After shutdown the worker threads and file descriptors are back to where they started,
and the app and a job's result are freed.
"""

from __future__ import annotations

import gc
import os
import threading
import typing as t
import weakref
from pathlib import Path

import pytest
from flask import Flask
from flask_executor import Executor

if t.TYPE_CHECKING:
    from conftest import Size

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/statm").exists(), reason="reads RSS and descriptors through /proc"
)

# The most RSS may grow over the second half. Allocator arenas and the interpreter's
# free lists move by a few megabytes; a leak of even 100 bytes a job over 100,000 jobs
# shows as more.
MAX_GROWTH_MB = 8.0


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Result:
    """A job's result, which must be freed once its future is."""


def make_result(n: int) -> Result:
    return Result()


def wave(app: Flask, executor: Executor, count: int) -> weakref.ref[Result]:
    """Run ``count`` stored and ``count`` plain jobs; return the last result, weakly."""
    with app.test_request_context("/jobs"):
        window = []
        for n in range(count):
            # A stored job, evicted once 50 newer ones have finished, and a plain one.
            stored = executor.submit_stored(("job", n), make_result, n)
            plain = executor.submit(make_result, n)
            window += (stored, plain)
            if len(window) >= 200:  # a bounded backlog, as a busy app has
                for future in window:
                    future.result(30)
                window.clear()
        for future in window:
            future.result(30)
        return weakref.ref(executor.submit(make_result, -1).result(30))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stored_and_plain_jobs_do_not_grow(size: Size, figures: dict[str, t.Any]) -> None:
    jobs: int = size(20_000, 100_000)
    gc.collect()
    threads_before, fds_before = threading.active_count(), open_fds()
    app = Flask("memory")
    app.config["EXECUTOR_MAX_WORKERS"] = 4
    executor = Executor(app)
    wave(app, executor, 1_000)  # warms up the pool, the context machinery and the allocator
    gc.collect()
    rss_start = rss_mb()
    wave(app, executor, jobs // 2)
    gc.collect()
    rss_half = rss_mb()
    result_ref = wave(app, executor, jobs // 2)
    gc.collect()
    rss_end = rss_mb()
    stored = len(executor.futures)
    executor.shutdown(wait=True)
    app_ref = weakref.ref(app)
    del app, executor
    gc.collect()

    figures.update(
        jobs=f"{jobs} stored + {jobs} plain",
        rss_mb_after_warmup=round(rss_start, 1),
        rss_mb_half=round(rss_half, 1),
        rss_mb_end=round(rss_end, 1),
        growth_mb_second_half=round(rss_end - rss_half, 2),
        stored_at_end=stored,
        threads=f"{threads_before} -> {threading.active_count()}",
        fds=f"{fds_before} -> {open_fds()}",
    )
    assert stored == 50
    assert rss_end - rss_half < MAX_GROWTH_MB
    assert threading.active_count() == threads_before
    assert open_fds() == fds_before
    assert app_ref() is None
    assert result_ref() is None
