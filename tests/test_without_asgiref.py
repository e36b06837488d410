"""Without asgiref, whatever needs it says to ``pip install "flask-executor[async]"``.

Issue 11, section 3, item 7. Each case runs in a fresh interpreter in which importing
asgiref fails, as it does where it is not installed: a finder on ``sys.meta_path``
refuses it. flask-executor's own code runs unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
INSTALL = 'pip install "flask-executor[async]"'

BLOCK_ASGIREF = textwrap.dedent(
    """
    import sys

    class _NoAsgiref:
        def find_spec(self, name, path=None, target=None):
            if name == "asgiref" or name.startswith("asgiref."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoAsgiref())
    """
)


def run_without_asgiref(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_ASGIREF + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


JOB_WITH_ASYNC_TEARDOWN = """
    import asyncio
    from flask import Flask
    from flask_executor import Executor

    app = Flask("no_asgiref")
    executor = Executor(app)

    @app.teardown_appcontext
    async def close_client(exc):
        pass

    async def coroutine_job():
        await asyncio.sleep(0)
        return "ran"

    for fn in (lambda: "ran", coroutine_job):
        error = executor.submit(fn).exception(timeout=30)
        assert isinstance(error, RuntimeError), repr(error)
        assert "async" in str(error.__cause__), repr(error.__cause__)
        print(error)
    executor.shutdown()
"""


@pytest.mark.timeout(60)
def test_a_job_with_an_async_teardown_function() -> None:
    done = run_without_asgiref(JOB_WITH_ASYNC_TEARDOWN)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "teardown_appcontext" in line
        assert line.endswith(f"Install it with: {INSTALL}")


@pytest.mark.timeout(60)
def test_coroutine_jobs_and_awaiting_futures_need_no_asgiref() -> None:
    done = run_without_asgiref(
        """
        import asyncio
        from flask import Flask
        from flask_executor import Executor

        app = Flask("no_asgiref")
        executor = Executor(app)

        @executor.job
        async def double(n):
            await asyncio.sleep(0)
            return 2 * n

        async def main():
            return await double.submit(2) + await executor.submit(pow, 2, 3)

        print(asyncio.run(main()))
        executor.shutdown()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "12"


@pytest.mark.timeout(60)
def test_the_async_views_example_says_what_to_install() -> None:
    done = run_without_asgiref(
        """
        import runpy
        runpy.run_path("examples/async_views.py", run_name="__main__")
        """
    )
    assert done.returncode != 0
    assert INSTALL in done.stderr
    assert "Traceback" not in done.stderr
