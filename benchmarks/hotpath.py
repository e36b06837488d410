"""Find where flask-executor spends its time beyond the bare pool.

Run from the repository root::

    python benchmarks/hotpath.py split        # submit side and worker side, µs per job
    python benchmarks/hotpath.py profile      # cProfile of figures 1, 2, 3 and 5
    python benchmarks/hotpath.py primitives   # what the building blocks cost
    python benchmarks/hotpath.py importtime   # the package's own import cost
    python benchmarks/hotpath.py process      # figure 5's round trip, taken apart

``split`` separates the two halves of a job without any thread hand-off in the way. The
pool's only worker is held on an event while jobs are submitted, which times the
submitting side alone; then it is released and drains the queue while the submitting
thread sleeps, which times the worker side alone. What figure 1 measures beyond the sum
of the two is the waking of threads, the same on both sides.

``profile`` runs the flask-executor side of figures 1, 2, 3 and 5 under :mod:`cProfile`
with one worker. cProfile sees only the thread it was enabled in, so every thread the
pool starts enables its own (through :func:`threading.setprofile`), and a process worker
profiles itself from the pool's ``initializer`` and sends its figures back.
Deterministic profiling inflates small functions, so read it for *where*, and ``split``
and ``primitives`` for *how much*.

``process`` times figure 5's round trip four ways, side by side: the bare pool; the bare
pool running the call the way flask-executor sends it (pickled by the caller, unpickled
by its worker function, the result pickled back) but without an app; the same with the
app context rebuilt in the worker; and flask-executor itself, all on one pool. The steps
between them say what each part of a process job costs once per round trip, caches
cold, which is several times what it costs in a loop. The first three go through the
pool's ``submit`` and its manager thread; flask-executor's jobs skip that thread when
the pool is idle, which is why its line comes out below the bare pool's.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextvars
import cProfile
import gc
import io
import multiprocessing
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import typing as t

from flask import Flask
from flask import g
from flask.globals import _cv_app
from flask_executor import context as job_context
from flask_executor import Executor
from flask_executor import FutureProxy
from flask_executor.backends import process as process_tasks

from run import bare_job
from run import bare_process_job
from run import flask_job
from run import flask_process_job
from run import PATH
from run import submit_in_context
from run import USER

# -- split -------------------------------------------------------------------------------------


def _split_once(
    submit: t.Callable[..., concurrent.futures.Future[t.Any]], job: t.Any, n: int
) -> tuple[float, float]:
    """µs per job to submit ``n`` jobs to a held worker, then for it to run them."""
    release = threading.Event()
    blocker = submit(release.wait)
    start = time.perf_counter()
    futures = [submit(job) for _ in range(n)]
    submitted = time.perf_counter()
    release.set()
    blocker.result()
    drain_start = time.perf_counter()
    futures[-1].result()
    drained = time.perf_counter()
    # The blocker's own wake-up is off both clocks; what is left of the hand-off is
    # one wake-up of this thread, spread over n jobs.
    return (submitted - start) / n * 1e6, (drained - drain_start) / n * 1e6


def split(n: int = 20_000, rounds: int = 7) -> None:
    app = Flask("bench")
    app.config["EXECUTOR_MAX_WORKERS"] = 1
    executor = Executor(app)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    with app.test_request_context(PATH):
        g.user = USER
        for i in range(rounds):
            sides: list[tuple[str, t.Callable[..., concurrent.futures.Future[t.Any]], t.Any]] = [
                ("bare", pool.submit, bare_job),
                ("bare, in context", submit_in_context(pool), flask_job),
                ("flask-executor", executor.submit, flask_job),
            ]
            for name, submit, job in sides if i % 2 == 0 else sides[::-1]:
                # With n jobs waiting in the queue, the collector walks all of them again
                # and again: shown apart, as it is a cost of its own.
                for collect in (True, False):
                    gc.collect()
                    if not collect:
                        gc.disable()
                    try:
                        sample = _split_once(submit, job, n)
                    finally:
                        gc.enable()
                    results.setdefault((name, collect), []).append(sample)
    executor.shutdown()
    pool.shutdown()
    print(f"Submit side and worker side, one worker, {n:,} jobs queued, best of {rounds} rounds")
    print(f"{'':28}{'submit us/job':>15}{'worker us/job':>15}{'sum':>8}")
    for (name, collect), samples in sorted(results.items(), key=lambda item: not item[0][1]):
        submit_us = min(s for s, _ in samples)
        worker_us = min(w for _, w in samples)
        label = f"{name}, gc {'on' if collect else 'off'}"
        print(f"{label:28}{submit_us:15.2f}{worker_us:15.2f}{submit_us + worker_us:8.2f}")


# -- profile ------------------------------------------------------------------------------------

_thread_profiles: list[cProfile.Profile] = []


def _profile_new_thread(frame: object, event: str, arg: object) -> None:
    # Installed with threading.setprofile: called once in each thread started from now
    # on, where enabling a cProfile.Profile replaces this hook for that thread.
    profile = cProfile.Profile()
    _thread_profiles.append(profile)
    profile.enable()


class _ProcessStats:
    """Stats sent back from a worker process, in the shape pstats.Stats reads."""

    def __init__(self, stats: dict[t.Any, t.Any]) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        pass


_process_profile: cProfile.Profile | None = None


def _profile_this_process() -> None:
    # The process pool's initializer: runs in the worker process before its first job.
    global _process_profile
    _process_profile = cProfile.Profile()
    _process_profile.enable()


def _collect_process_profile() -> dict[t.Any, t.Any]:
    # A job of its own; the pool has one worker, so it reaches the profiled process.
    assert _process_profile is not None
    _process_profile.disable()
    _process_profile.create_stats()
    return _process_profile.stats  # type: ignore[attr-defined,no-any-return,unused-ignore]


def _print_stats(title: str, profiles: t.Sequence[t.Any], jobs: int, top: int) -> None:
    if not profiles:
        return
    out = io.StringIO()
    stats = pstats.Stats(profiles[0], stream=out)
    for more in profiles[1:]:
        stats.add(more)
    stats.sort_stats("tottime").print_stats(top)
    print(f"== {title} ({jobs:,} jobs; tottime is in seconds for all of them)")
    # Drop pstats' preamble; keep the table.
    lines = out.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\n".join(line for line in lines[first:] if line.strip()))
    print()


def profile(top: int = 18) -> None:
    n = 4_000

    def round_trips(executor: Executor) -> None:
        for _ in range(n):
            executor.submit(flask_job).result()

    def batch(executor: Executor) -> None:
        concurrent.futures.wait([executor.submit(flask_job) for _ in range(n)])

    def awaits(executor: Executor) -> None:
        async def main() -> None:
            for _ in range(n):
                await executor.submit(flask_job)

        asyncio.run(main())

    def process_round_trips(executor: Executor) -> None:
        for _ in range(n // 4):
            executor.submit(flask_process_job).result()

    figures: list[tuple[str, t.Callable[[Executor], None], dict[str, t.Any]]] = [
        ("figure 1, round trip", round_trips, {}),
        ("figure 2, batch", batch, {}),
        ("figure 3, await", awaits, {}),
        (
            "figure 5, process round trip",
            process_round_trips,
            {
                "EXECUTOR_TYPE": "process",
                "EXECUTOR_POOL_KWARGS": {
                    "mp_context": "fork",
                    "initializer": _profile_this_process,
                },
            },
        ),
    ]
    for title, body, config in figures:
        app = Flask("bench")
        app.config["EXECUTOR_MAX_WORKERS"] = 1
        app.config.update(config)
        executor = Executor(app)
        in_process = config.get("EXECUTOR_TYPE") == "process"
        jobs = n // 4 if in_process else n
        threading.setprofile(_profile_new_thread)
        try:
            # Figure 5 submits from an app context, the others from a request.
            with app.app_context() if in_process else app.test_request_context(PATH):
                g.user = USER
                # Starts the worker (and its profiler) before the clock.
                executor.submit(flask_process_job if in_process else flask_job).result()
                submitting = cProfile.Profile()
                submitting.enable()
                body(executor)
                submitting.disable()
                worker_process = (
                    [_ProcessStats(executor.submit(_collect_process_profile).result())]
                    if in_process
                    else []
                )
            # The pool's threads end here, and with them their profiles.
            executor.shutdown()
        finally:
            threading.setprofile(None)
        threads, _thread_profiles[:] = list(_thread_profiles), []
        _print_stats(f"{title}: submitting thread", [submitting], jobs, top)
        other = "pool's manager thread" if in_process else "worker thread"
        _print_stats(f"{title}: {other}", threads, jobs, top)
        _print_stats(f"{title}: worker process", worker_process, jobs, top)


# -- primitives ---------------------------------------------------------------------------------


def _us(fn: t.Callable[[], object], number: int = 50_000, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def primitives() -> None:
    app = Flask("bench")

    def push_pop_app_context() -> None:
        with app.app_context():
            pass

    with app.test_request_context(PATH) as request_ctx:
        g.user = USER
        context = contextvars.copy_context()
        app_ctx = _cv_app.get()

        def copy_push_pop_request_context() -> None:
            # What Flask-Executor 1.0 did for each job: matches the URL and opens the
            # session again.
            with request_ctx.copy():
                pass

        def second_future() -> None:
            # What a job costs with a pool future set first and then copied into ours.
            future: concurrent.futures.Future[int] = concurrent.futures.Future()
            future.set_running_or_notify_cancel()
            future.set_result(1)

        rows = [
            ("contextvars.copy_context()", contextvars.copy_context),
            ("Context.copy()", context.copy),
            ("Context.run(bare_job)", lambda: context.run(bare_job)),
            ("copy of the app context's g", lambda: app_ctx.g.__dict__.copy()),
            ("app.app_context()", app.app_context),
            ("push + pop a fresh app context", push_pop_app_context),
            (
                "a job's app context, flask-executor",
                lambda: job_context.run_job(app, context.copy(), None, _nothing, (), {}),
            ),
            ("copy + push + pop the request context", copy_push_pop_request_context),
            ("request.path + g.user (flask_job)", flask_job),
            ("two plain attributes (bare_job)", bare_job),
            ("Future()", concurrent.futures.Future),
            ("FutureProxy()", FutureProxy),
            ("Future(), set running, set result", second_future),
        ]
        print("What the building blocks cost, best of 7, in us per call")
        for name, fn in rows:
            print(f"  {name:40}{_us(fn):8.3f}")


def _nothing() -> None:
    pass


# -- process -------------------------------------------------------------------------------------


def _followed(
    pool: concurrent.futures.ProcessPoolExecutor, snapshot: tuple[t.Any, ...]
) -> t.Callable[[t.Callable[[], t.Any]], concurrent.futures.Future[t.Any]]:
    """Submit as flask-executor does, with ``snapshot``, into a future of our own."""

    def submit(fn: t.Callable[[], t.Any]) -> concurrent.futures.Future[t.Any]:
        call = process_tasks._pickle_call(fn, (), {}, snapshot)
        source = pool.submit(process_tasks._run_pickled_call, *call)
        future: concurrent.futures.Future[t.Any] = concurrent.futures.Future()

        def follow(done: concurrent.futures.Future[bytes]) -> None:
            future.set_running_or_notify_cancel()
            future.set_result(process_tasks.received(done.result()))

        source.add_done_callback(follow)
        return future

    return submit


def process(n: int = 100, rounds: int = 41) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        print("This platform cannot fork.")
        return
    fork = multiprocessing.get_context("fork")
    app = Flask("bench")
    app.teardown_appcontext(lambda exc: None)
    app.config.update(EXECUTOR_TYPE="process", EXECUTOR_POOL_KWARGS={"mp_context": fork})
    executor = Executor(app)
    with app.app_context():
        # One pool for every line, the executor's own (see 'pool_of' in run.py).
        pool = t.cast(concurrent.futures.ProcessPoolExecutor, executor._state()[1].manager.pool)
        # The token a forked worker finds the app by; registering again gives the same.
        token = job_context.register_app(app)
        with_app = job_context.snapshot_for_process(token, None, True)
    without_app = (None,) * len(with_app)
    Submit = t.Callable[..., concurrent.futures.Future[t.Any]]
    sides: dict[str, tuple[Submit, t.Callable[[], t.Any]]] = {
        "bare pool": (pool.submit, bare_process_job),
        "+ flask-executor's call, no app": (_followed(pool, without_app), bare_process_job),
        "+ the app context rebuilt": (_followed(pool, with_app), flask_process_job),
        "flask-executor": (executor.submit, flask_process_job),
    }
    samples: dict[str, list[float]] = {name: [] for name in sides}
    with app.app_context():
        warm = [submit(job) for submit, job in sides.values() for _ in range(16)]
        concurrent.futures.wait(warm)
        order = list(sides)
        for i in range(rounds):
            for name in order if i % 2 == 0 else order[::-1]:
                submit, job = sides[name]
                gc.collect()
                start = time.perf_counter()
                for _ in range(n):
                    submit(job).result()
                samples[name].append((time.perf_counter() - start) / n * 1e6)
    executor.shutdown()
    print(f"Process round trips, 4 fork workers, median of {rounds} rounds of {n}, us per job")
    bare = statistics.median(samples["bare pool"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:34}{median:8.1f}{median - bare:+8.1f}")


# -- importtime ---------------------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def _import_times(code: str, env: dict[str, str]) -> list[tuple[int, int, int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    rows = []
    for line in result.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            rows.append((int(self_us), int(cumulative_us), len(indent), name))
    return rows


def importtime(repeat: int = 7) -> None:
    # Installed packages import from bytecode; a shell with PYTHONDONTWRITEBYTECODE
    # would compile every module on every run and time the compiler instead. The
    # bytecode goes to a scratch folder, not next to the sources.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        _import_times("import flask; import flask_executor", env)  # writes the bytecode
        # Flask is imported first, on the same line: what remains is what importing
        # flask_executor adds to an app that already uses Flask.
        code = "import flask; import flask_executor"
        runs = [_import_times(code, env) for _ in range(repeat)]
        flask_only = [_import_times("import flask", env) for _ in range(repeat)]

    def total(rows: list[tuple[int, int, int, str]]) -> int:
        return sum(self_us for self_us, _, _, _ in rows)

    seen_with_flask = {name for rows in flask_only for *_, name in rows}
    best = min(runs, key=total)
    extra = [row for row in best if row[3] not in seen_with_flask]
    own = sum(row[0] for row in extra if row[3].startswith("flask_executor"))
    deps = sum(row[0] for row in extra if not row[3].startswith("flask_executor"))
    print(
        f"import flask: {min(total(r) for r in flask_only) / 1000:.1f} ms;"
        f" flask_executor on top of it: {(own + deps) / 1000:.1f} ms"
        f" ({own / 1000:.1f} ms its own modules, {deps / 1000:.1f} ms modules Flask"
        " had not imported)"
    )
    print("Modules that importing flask_executor adds (self us, best run):")
    for self_us, _, _, name in sorted(extra, reverse=True)[:20]:
        print(f"  {self_us:7d}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("split", "profile", "primitives", "importtime", "process"))
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    commands: dict[str, t.Callable[[], None]] = {
        "split": split,
        "profile": profile,
        "primitives": primitives,
        "importtime": importtime,
        "process": process,
    }
    commands[args.what]()


if __name__ == "__main__":
    main()
