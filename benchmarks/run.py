"""Measure flask-executor against the bare pool it wraps, side by side in one process.

Run from the repository root::

    python benchmarks/run.py           # every figure; exits 1 if one misses its goal
    python benchmarks/run.py --quick   # tiny sizes, 3 rounds: proves the script runs (CI)
    python benchmarks/run.py --only 1,3

Each figure does the same work two ways on one :mod:`concurrent.futures` pool: through
flask-executor, and submitted to the bare pool itself (the very pool flask-executor runs
on, see 'pool_of'). In the thread figures both sides run the same job, which reads
``request.path`` and ``g.user``; the bare side runs it in a copy of the caller's context
variables, as ``asyncio.to_thread`` does, which is all a bare pool can do for it (see
"The jobs" below). The process figure's job reads ``current_app`` against a bare job
that returns a constant. The two sides alternate which goes first, over many short
rounds, so that a neighbour's load or a CPU clock change falls on both alike; each
figure reports the median of the rounds. The figures and their goals are those of
issue 5; docs/performance.rst explains each one.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import gc
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import typing as t
from importlib.metadata import version

from flask import current_app
from flask import Flask
from flask import g
from flask import request
from flask_executor import Executor
from flask_executor import FutureCollection
from flask_executor import FutureProxy

PATH = "/reports/42"
USER = "ada"
APP_NAME = "bench"

#: Runs ``n`` jobs and returns how many seconds that took (set-up left out).
Timer = t.Callable[[int], float]
T = t.TypeVar("T")


# -- The jobs ------------------------------------------------------------------------------
# Module-level, so that process workers find them by name.
#
# The thread figures run the *same* job on both sides: it reads ``request.path`` and
# ``g.user`` through Flask's proxies. A bare pool does not carry the caller's contexts to
# its workers; the bare side does what the standard library does for that, the recipe of
# ``asyncio.to_thread``: the job runs in ``contextvars.copy_context().run``, so the
# proxies resolve to the submitting request (see 'submit_in_context'). What flask-executor
# costs beyond that is the price of its semantics: a fresh app context per job with its
# teardown, a copy of ``g``, futures whose callbacks run in the job's contexts.
#
# 'bare_job' reads plain attributes instead: a job that needs nothing of Flask. Figure 2
# shows it for comparison, and the process figure's second row uses it, since no context
# can be copied into another process.


class _Plain:
    """Stands in for ``request`` and ``g`` in jobs that need nothing of Flask."""

    def __init__(self) -> None:
        self.path = PATH
        self.user = USER


PLAIN = _Plain()


def flask_job() -> tuple[str, str]:
    return request.path, g.user


def bare_job() -> tuple[str, str]:
    return PLAIN.path, PLAIN.user


async def coroutine_job() -> tuple[str, str]:
    await asyncio.sleep(0)
    return request.path, g.user


def run_coroutine_job() -> tuple[str, str]:
    # What a bare pool has to do with a coroutine: a new event loop for each job. The
    # loop's task copies the current context, which 'submit_in_context' has entered.
    return asyncio.run(coroutine_job())


def flask_process_job() -> str:
    return current_app.name


def bare_process_job() -> str:
    return APP_NAME


def flask_item_job(item: int) -> int:
    return item + len(g.user)


def bare_item_job(item: int) -> int:
    return item + len(PLAIN.user)


def submit_in_context(
    pool: concurrent.futures.Executor,
) -> t.Callable[[t.Callable[[], T]], concurrent.futures.Future[T]]:
    """``pool.submit`` that runs the job in a copy of the caller's context variables.

    This is how the standard library runs a function in a thread with its caller's
    context (``asyncio.to_thread`` does the same with ``loop.run_in_executor``), and all
    that a job which reads Flask's proxies needs from a bare pool.
    """
    submit = pool.submit
    copy_context = contextvars.copy_context

    def submit_with_context(fn: t.Callable[[], T]) -> concurrent.futures.Future[T]:
        return submit(copy_context().run, fn)

    return submit_with_context


# -- Settings and results --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """How big each figure is; ``--quick`` shrinks everything."""

    quick: bool
    #: Rounds of figures 1 to 5, and of the FutureCollection operations.
    rounds: int
    #: Rounds of the scale figure's largest size, which takes seconds a round.
    scale_rounds: int
    workers: int
    round_trips: int
    batch: int
    coroutine_jobs: int
    process_round_trips: int
    scale_sizes: tuple[int, ...]
    stored_sizes: tuple[int, ...]
    collection_sizes: tuple[int, int]
    map_items: int

    @classmethod
    def make(cls, quick: bool, rounds: int | None, workers: int) -> Settings:
        if quick:
            return cls(
                quick=True,
                rounds=rounds or 3,
                scale_rounds=rounds or 3,
                workers=workers,
                round_trips=200,
                batch=400,
                coroutine_jobs=100,
                process_round_trips=100,
                scale_sizes=(10**2, 10**3),
                stored_sizes=(10**2, 10**3),
                collection_sizes=(10**2, 10**3),
                map_items=10**4,
            )
        return cls(
            quick=False,
            # Many short rounds: on a shared machine the cost of waking a thread or a
            # process drifts by 15% within seconds, and short rounds that alternate let
            # that drift fall on both sides alike. Two identical bare pools measured
            # against each other (an A/A run) differed by up to 6% over 41 rounds, and
            # by 15% to 110% over 9 rounds of 2,000 round trips or 4,000-job batches.
            rounds=rounds or 41,
            scale_rounds=rounds or 9,
            workers=workers,
            round_trips=1_000,
            batch=4_000,
            coroutine_jobs=1_000,
            process_round_trips=100,
            scale_sizes=(10**3, 10**4, 10**5),
            stored_sizes=(10**3, 10**4),
            collection_sizes=(10**3, 10**5),
            map_items=10**6,
        )


@dataclasses.dataclass
class Row:
    """One line of the table.

    ``max_ratio`` is a goal on flask-executor / bare; ``max_value`` a goal on the
    flask-executor value itself. A row with neither is shown for comparison only.
    """

    figure: str
    bare: float | None
    flask: float
    unit: str
    max_ratio: float | None = None
    max_value: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if not self.bare else self.flask / self.bare

    @property
    def goal(self) -> str:
        if self.max_ratio is not None:
            return f"ratio <= {self.max_ratio:g}"
        if self.max_value is not None:
            return f"<= {self.max_value:g} {self.unit}"
        return "-"

    @property
    def ok(self) -> bool | None:
        if self.max_ratio is not None:
            ratio = self.ratio
            return ratio is not None and ratio <= self.max_ratio
        if self.max_value is not None:
            return self.flask <= self.max_value
        return None


# -- Measuring -------------------------------------------------------------------------------


def side_by_side(bare: Timer, flask: Timer, n: int, rounds: int) -> tuple[float, float]:
    """Return the median µs per job of each side over ``rounds`` rounds of ``n`` jobs.

    Both sides run once first, untimed, so that pool threads, processes and caches exist
    before the clock starts. Even rounds run the bare side first, odd rounds the other.
    """
    timers = (bare, flask)
    for timer in timers:
        timer(min(n, 500))
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            # Garbage of the previous round must not be collected on this one's clock.
            gc.collect()
            samples[side].append(timers[side](n) / n * 1e6)
    if _show_rounds:
        for name, values in zip(("bare", "flask-executor"), samples):
            print(f"    {name:>14} rounds: " + " ".join(f"{v:.2f}" for v in values))
    return statistics.median(samples[0]), statistics.median(samples[1])


# Set by --show-rounds: print every round's µs per job under the figure's row.
_show_rounds = False
# EXECUTOR_FAST_PATHS for every app the figures make ('--fast-paths').
_fast_paths = True


def one_at_a_time(submit: t.Callable[..., concurrent.futures.Future[t.Any]], job: t.Any) -> Timer:
    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            submit(job).result()
        return time.perf_counter() - start

    return run


def submit_then_wait(
    submit: t.Callable[..., concurrent.futures.Future[t.Any]], job: t.Any
) -> Timer:
    def run(n: int) -> float:
        start = time.perf_counter()
        futures = [submit(job) for _ in range(n)]
        concurrent.futures.wait(futures)
        elapsed = time.perf_counter() - start
        futures[-1].result()  # a failed job would make the figure meaningless
        return elapsed

    return run


def submit_held_then_drain(
    submit: t.Callable[..., concurrent.futures.Future[t.Any]], job: t.Any, workers: int
) -> Timer:
    """Like :func:`submit_then_wait`, but every worker is held while the jobs are submitted.

    Submitting and running then do not take turns on the GIL. With more workers than
    cores, who gets it when is up to the scheduler, and at 10⁵ jobs that alone moves
    the cost per job of either side by half, up or down, from run to run. Held, the
    clock sees the work per job: submitting them all, then the workers draining them.
    """

    def run(n: int) -> float:
        release = threading.Event()
        held = threading.Barrier(workers + 1, timeout=60)

        def hold() -> None:
            held.wait()
            release.wait(60)

        blockers = [submit(hold) for _ in range(workers)]
        held.wait()
        start = time.perf_counter()
        futures = [submit(job) for _ in range(n)]
        release.set()
        concurrent.futures.wait(futures)
        elapsed = time.perf_counter() - start
        concurrent.futures.wait(blockers)
        futures[-1].result()  # a failed job would make the figure meaningless
        return elapsed

    return run


def expect(actual: object, expected: object, what: str) -> None:
    # Checked once per figure, outside the clock: a figure whose job does not see its
    # contexts would be measuring the wrong thing.
    if actual != expected:
        raise RuntimeError(f"{what}: expected {expected!r}, got {actual!r}.")


def make_app(settings: Settings, **config: t.Any) -> tuple[Flask, Executor]:
    app = Flask(APP_NAME)
    app.config["EXECUTOR_MAX_WORKERS"] = settings.workers
    app.config["EXECUTOR_FAST_PATHS"] = _fast_paths
    app.config.update(config)
    # Real apps have teardown functions (Flask-SQLAlchemy registers one), and each job's
    # app context calls them; an app without any would flatter flask-executor.
    app.teardown_appcontext(_teardown)
    return app, Executor(app)


def _teardown(exc: BaseException | None) -> None:
    pass


def pool_of(app: Flask, executor: Executor) -> t.Any:
    """The pool that ``executor`` runs ``app``'s jobs on: the bare side's pool too.

    Both sides share one pool, its threads or processes, so that the operating system
    treats them alike. A pool's round trip depends on how the scheduler places its
    threads, and that follows what they did in the last tens of milliseconds: with a
    pool for each side, a round that came right after the other pool's round ran up to
    40% faster than one after its own, and the median fell now on one side of that gap,
    now on the other. Two identical bare pools measured against each other (an A/A
    run) differed by up to 6% over 41 rounds; one pool against itself, by 1%. (This
    reaches into the executor: no public API hands out its pool, on purpose.)
    """
    with app.app_context():
        return executor._state()[1].manager.pool


@contextlib.contextmanager
def thread_sides(
    s: Settings, **config: t.Any
) -> t.Iterator[tuple[Executor, concurrent.futures.ThreadPoolExecutor]]:
    """The two sides of a thread figure, inside the request the jobs read.

    Yields flask-executor and the bare pool it runs on (see :func:`pool_of`), with a
    test request context pushed and ``g.user`` set; the pool is shut down afterwards.
    """
    app, executor = make_app(s, **config)
    try:
        pool = pool_of(app, executor)
        with app.test_request_context(PATH):
            g.user = USER
            yield executor, pool
    finally:
        executor.shutdown()


# -- The figures -----------------------------------------------------------------------------


def figure_1(s: Settings) -> list[Row]:
    with thread_sides(s) as (executor, pool):
        expect(executor.submit(flask_job).result(), (PATH, USER), "figure 1 job")
        bare, flask = side_by_side(
            one_at_a_time(submit_in_context(pool), flask_job),
            one_at_a_time(executor.submit, flask_job),
            s.round_trips,
            s.rounds,
        )
    return [Row("1 thread round trip", bare, flask, "us/job", max_ratio=1.2)]


def figure_2(s: Settings) -> list[Row]:
    with thread_sides(s) as (executor, pool):
        expect(executor.submit(flask_job).result(), (PATH, USER), "figure 2 job")
        bare, flask = side_by_side(
            submit_then_wait(submit_in_context(pool), flask_job),
            submit_then_wait(executor.submit, flask_job),
            s.batch,
            s.rounds,
        )
        # For comparison, not a goal: a bare job that reads no proxies at all. The
        # difference is mostly Werkzeug's proxies (two reads, about 1.7 µs) and the
        # fresh app context, both of which the job asks for.
        plain_bare, plain_flask = side_by_side(
            submit_then_wait(pool.submit, bare_job),
            submit_then_wait(executor.submit, flask_job),
            s.batch,
            s.rounds,
        )
    return [
        Row(f"2 thread batch, {s.batch:,} then wait", bare, flask, "us/job", max_ratio=1.5),
        Row("2 ... bare job reading no proxies", plain_bare, plain_flask, "us/job"),
    ]


def figure_3(s: Settings) -> list[Row]:
    with thread_sides(s) as (executor, pool):
        # asyncio.run copies the current context into its task, as an async view's
        # loop has the request context of its view.
        expect(asyncio.run(_await_once(executor)), (PATH, USER), "figure 3 job")
        bare, flask = side_by_side(
            lambda n: asyncio.run(_await_in_context(pool, n)),
            lambda n: asyncio.run(_await_executor(executor, n)),
            s.round_trips,
            s.rounds,
        )
    return [Row("3 await in a coroutine", bare, flask, "us/job", max_ratio=1.2)]


async def _await_in_context(pool: concurrent.futures.Executor, n: int) -> float:
    # What asyncio.to_thread does, on the figure's own pool.
    loop = asyncio.get_running_loop()
    copy_context = contextvars.copy_context
    start = time.perf_counter()
    for _ in range(n):
        await loop.run_in_executor(pool, copy_context().run, flask_job)
    return time.perf_counter() - start


async def _await_executor(executor: Executor, n: int) -> float:
    submit = executor.submit
    start = time.perf_counter()
    for _ in range(n):
        await submit(flask_job)
    return time.perf_counter() - start


async def _await_once(executor: Executor) -> tuple[str, str]:
    return await executor.submit(flask_job)


def figure_4(s: Settings) -> list[Row]:
    with thread_sides(s) as (executor, pool):
        expect(executor.submit(coroutine_job).result(), (PATH, USER), "figure 4 job")
        bare, flask = side_by_side(
            one_at_a_time(submit_in_context(pool), run_coroutine_job),
            one_at_a_time(executor.submit, coroutine_job),
            s.coroutine_jobs,
            s.rounds,
        )
    return [Row("4 coroutine job round trip", bare, flask, "us/job", max_ratio=1.0)]


def figure_5(s: Settings) -> list[Row]:
    if "fork" not in multiprocessing.get_all_start_methods():
        print("(figure 5 skipped: this platform cannot fork)")
        return []
    app, executor = make_app(
        s, EXECUTOR_TYPE="process", EXECUTOR_POOL_KWARGS={"mp_context": "fork"}
    )
    pool = pool_of(app, executor)
    try:
        with app.app_context():
            # Fork-started pools start every worker at the first job; this wait is for
            # all of them, so start-up stays off the clock.
            warm: list[concurrent.futures.Future[str]] = [
                executor.submit(flask_process_job) for _ in range(4 * s.workers)
            ]
            warm += [pool.submit(bare_process_job) for _ in range(4 * s.workers)]
            concurrent.futures.wait(warm)
            expect(executor.submit(flask_process_job).result(), APP_NAME, "figure 5 job")
            bare, flask = side_by_side(
                one_at_a_time(pool.submit, bare_process_job),
                one_at_a_time(executor.submit, flask_process_job),
                s.process_round_trips,
                s.rounds,
            )
        # For comparison, not a goal: from a view, the worker also rebuilds the request
        # (its environ, view_args and g travel with every job).
        with app.test_request_context(PATH):
            g.user = USER
            expect(executor.submit(flask_job).result(), (PATH, USER), "figure 5 request job")
            bare_request, flask_request = side_by_side(
                one_at_a_time(pool.submit, bare_job),
                one_at_a_time(executor.submit, flask_job),
                s.process_round_trips,
                s.rounds,
            )
    finally:
        executor.shutdown()
    return [
        Row("5 process round trip (fork)", bare, flask, "us/job", max_ratio=1.2),
        Row("5 ... from a request, reading it", bare_request, flask_request, "us/job"),
    ]


def figure_6(s: Settings) -> list[Row]:
    rows: list[Row] = []
    with thread_sides(s, EXECUTOR_FUTURES_MAX_LENGTH=None) as (executor, pool):
        expect(executor.submit(flask_job).result(), (PATH, USER), "figure 6 job")
        rows += _flat_rows(
            "6 scale",
            s,
            s.scale_sizes,
            submit_held_then_drain(submit_in_context(pool), flask_job, s.workers),
            submit_held_then_drain(executor.submit, flask_job, s.workers),
        )
        rows += _flat_rows(
            "6 stored", s, s.stored_sizes, _stored_on_bare(pool), _stored_on_executor(executor)
        )
    return rows + _collection_rows(s)


def _stored_on_bare(pool: concurrent.futures.Executor) -> Timer:
    def run(n: int) -> float:
        stored: dict[int, concurrent.futures.Future[t.Any]] = {}
        submit = submit_in_context(pool)
        start = time.perf_counter()
        for key in range(n):
            stored[key] = submit(flask_job)
        concurrent.futures.wait(list(stored.values()))
        for key in range(n):
            if key in stored:
                stored.get(key)
                stored.pop(key)
        return time.perf_counter() - start

    return run


def _stored_on_executor(executor: Executor) -> Timer:
    def run(n: int) -> float:
        futures = executor.futures
        submit_stored = executor.submit_stored
        start = time.perf_counter()
        started = [submit_stored(key, flask_job) for key in range(n)]
        concurrent.futures.wait(started)
        for key in range(n):
            if key in futures:
                futures.get(key)
                futures.pop(key)
        elapsed = time.perf_counter() - start
        expect(len(futures), 0, "figure 6 stored futures left")
        return elapsed

    return run


def _flat_rows(
    label: str, s: Settings, sizes: tuple[int, ...], bare: Timer, flask: Timer
) -> list[Row]:
    """One row per size, then how much the cost per job grows from size to size.

    The goal is on flask-executor's growth *beside the bare pool's*, not on its cost
    alone: the bare pool's own cost per job grows with the batch (allocation, cache
    misses, the garbage collector walking every live future), and nothing that wraps
    it can be flatter than it is. What the goal catches is flask-executor doing more
    work per job as jobs pile up, as Flask-Executor 1.0's scan of the stored futures did.
    """
    rows = []
    for size in sizes:
        rounds = s.rounds if size < max(s.scale_sizes) else s.scale_rounds
        b, f = side_by_side(bare, flask, size, rounds)
        rows.append(Row(f"{label}, {size:,} jobs", b, f, "us/job"))
    rows.append(_growth_row(f"{label}: growth, max/min", rows))
    return rows


def _growth_row(figure: str, rows: list[Row]) -> Row:
    bare = [row.bare or 0.0 for row in rows]
    flask = [row.flask for row in rows]
    return Row(figure, max(bare) / min(bare), max(flask) / min(flask), "x", max_ratio=1.1)


def _collection_rows(s: Settings) -> list[Row]:
    """Time ``in``, ``get``, ``pop`` and ``add`` at two sizes: O(1) means the same cost.

    The same keys, the oldest ones, are used at both sizes, so that they are as warm in
    the CPU's caches in a large store as in a small one; what is left to differ is the
    work each operation does. (Keys spread over a large store miss the caches, and
    then a plain dict slows down as much as the collection does.)
    """
    passes = 10
    keys = list(range(min(s.collection_sizes[0], 1000)))
    rows = []
    for size in s.collection_sizes:
        collection = FutureCollection(max_length=None)
        plain: dict[int, FutureProxy[t.Any]] = {}
        for key in range(size):
            future: FutureProxy[t.Any] = FutureProxy()
            future.set_result(None)
            collection.add(key, future)
            plain[key] = future

        def on_plain(n: int, plain: dict[int, FutureProxy[t.Any]] = plain) -> float:
            start = time.perf_counter()
            for _ in range(passes):
                for key in keys:
                    if key in plain:
                        plain.get(key)
                        plain[key] = plain.pop(key)
            return time.perf_counter() - start

        def on_collection(n: int, collection: FutureCollection = collection) -> float:
            start = time.perf_counter()
            for _ in range(passes):
                for key in keys:
                    if key in collection:
                        collection.get(key)
                        collection.add(key, t.cast(FutureProxy[t.Any], collection.pop(key)))
            return time.perf_counter() - start

        b, f = side_by_side(on_plain, on_collection, passes * len(keys), s.rounds)
        rows.append(Row(f"6 FutureCollection ops, {size:,} stored", b, f, "us/key"))
    rows.append(_growth_row("6 FutureCollection: growth", rows))
    return rows


# -- Figure 7: memory, each side in a fresh process ------------------------------------------

MEMORY_MODES = {
    "bare-eager": "bare pool.map (eager)",
    "flask-buffered": "executor.map, buffersize=64",
    "flask-eager": "executor.map (eager)",
}


def figure_7(s: Settings) -> list[Row]:
    growth = {mode: _memory_in_child(mode, s) for mode in MEMORY_MODES}
    items = f"{s.map_items:,}"
    return [
        Row(
            f"7 map {items} items, buffersize=64",
            growth["bare-eager"],
            growth["flask-buffered"],
            "MB",
            max_value=20.0,
        ),
        Row(f"7 map {items} items, eager", growth["bare-eager"], growth["flask-eager"], "MB"),
    ]


def _memory_in_child(mode: str, s: Settings) -> float:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        mode,
        str(s.map_items),
        "--workers",
        str(s.workers),
        "--fast-paths",
        "on" if _fast_paths else "off",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"The memory run {mode!r} failed:\n{result.stderr}")
    return float(json.loads(result.stdout.splitlines()[-1])["growth_mb"])


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    # Linux resets VmHWM to the current RSS when "5" is written to clear_refs, so the
    # peak measured afterwards belongs to the map alone, not to imports or warm-up.
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _max_rss_kb() -> int:
    import resource  # Unix only, and only needed where /proc is missing

    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value


def memory_child(mode: str, items: int, workers: int) -> None:
    """Run one ``map`` in this (fresh) process and print its peak RSS growth as JSON."""
    settings = Settings.make(quick=True, rounds=None, workers=workers)
    app, executor = make_app(settings)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    with app.test_request_context(PATH):
        g.user = USER
        # Warm up: worker threads, first-use allocations and free lists are not the map's.
        expect(sum(executor.map(flask_item_job, range(1000), buffersize=64)), 502_500, "map")
        expect(sum(pool.map(bare_item_job, range(1000))), 502_500, "bare map")
        gc.collect()
        reset = _reset_peak_rss()
        before = _proc_status_kb("VmRSS") if reset else None
        if before is None:
            before = _max_rss_kb()
        results: t.Iterable[int]
        if mode == "flask-buffered":
            results = executor.map(flask_item_job, range(items), buffersize=64)
        elif mode == "flask-eager":
            results = executor.map(flask_item_job, range(items))
        else:
            results = pool.map(bare_item_job, range(items))
        total = sum(results)
        peak = _proc_status_kb("VmHWM") if reset else None
        if peak is None:
            peak = _max_rss_kb()
        expect(total, items * (items - 1) // 2 + 3 * items, "map total")
    executor.shutdown()
    pool.shutdown()
    print(json.dumps({"growth_mb": max(0, peak - before) / 1024, "exact": reset}))


# -- Output ------------------------------------------------------------------------------------

FIGURES: dict[int, t.Callable[[Settings], list[Row]]] = {
    1: figure_1,
    2: figure_2,
    3: figure_3,
    4: figure_4,
    5: figure_5,
    6: figure_6,
    7: figure_7,
}

_COLUMNS = ("figure", "bare pool", "flask-executor", "ratio", "goal", "")
_WIDTHS = (40, 12, 15, 7, 15, 4)


def _format_row(cells: t.Sequence[str]) -> str:
    first, *rest = cells
    line = first.ljust(_WIDTHS[0])
    for cell, width in zip(rest, _WIDTHS[1:]):
        line += "  " + cell.rjust(width)
    return line.rstrip()


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.{1 if unit == 'MB' else 2}f} {unit}"


def format_row(row: Row) -> str:
    ratio = row.ratio
    ok = row.ok
    return _format_row(
        (
            row.figure,
            _value(row.bare, row.unit),
            _value(row.flask, row.unit),
            "-" if ratio is None else f"{ratio:.2f}",
            row.goal,
            "" if ok is None else ("OK" if ok else "MISS"),
        )
    )


def header(s: Settings) -> str:
    mode = "quick" if s.quick else "full"
    return "\n".join(
        (
            f"flask-executor {version('flask-executor')} against the bare pool",
            f"Python {platform.python_version()} ({platform.python_implementation()}),"
            f" Flask {version('flask')}, Werkzeug {version('werkzeug')},"
            f" {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            f"{mode} mode: median of {s.rounds} rounds ({s.scale_rounds} for"
            f" {max(s.scale_sizes):,} jobs), sides alternating on one pool of"
            f" {s.workers} workers; us = microseconds; fast paths"
            f" {'on' if _fast_paths else 'off'}",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes; never fails on goals")
    parser.add_argument(
        "--rounds", type=int, help="rounds per figure (default 41, 9 at 100,000 jobs; quick 3)"
    )
    parser.add_argument("--workers", type=int, default=4, help="pool size on both sides")
    parser.add_argument("--only", help="comma-separated figure numbers, such as 1,3")
    parser.add_argument(
        "--show-rounds", action="store_true", help="print every round, to see the spread"
    )
    parser.add_argument(
        "--fast-paths",
        choices=("on", "off"),
        default="on",
        help="EXECUTOR_FAST_PATHS for flask-executor's side (default on)",
    )
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("MODE", "ITEMS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    global _fast_paths
    _fast_paths = args.fast_paths == "on"

    if args.memory_child:
        mode, items = args.memory_child
        memory_child(mode, int(items), args.workers)
        return 0

    global _show_rounds
    _show_rounds = args.show_rounds
    s = Settings.make(args.quick, args.rounds, args.workers)
    if not s.quick and s.rounds < 9:
        parser.error("full mode needs at least 9 rounds")
    chosen = sorted(FIGURES) if not args.only else [int(n) for n in args.only.split(",")]

    print(header(s), end="\n\n")
    print(_format_row(_COLUMNS))
    print(_format_row(["-" * w for w in _WIDTHS]))
    rows: list[Row] = []
    for number in chosen:
        for row in FIGURES[number](s):
            rows.append(row)
            print(format_row(row), flush=True)

    missed = [row.figure for row in rows if row.ok is False]
    print()
    if not missed:
        print("Every goal is met.")
        return 0
    print("Missed: " + "; ".join(missed) + ".")
    if s.quick:
        # Quick mode only proves that the script runs: its sizes are too small to judge.
        print("(Quick mode: the sizes are too small to judge a goal; not a failure.)")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
