"""Every Python code block in the docs and the README runs, so that the docs stay true.

The blocks of one page run in order, in one namespace (a module of its own), in a
temporary working directory, as a reader pasting them one after the other would. Each
block is a test of its own, named after its file and line. A page can add code that the
rendered docs do not show, in comments right where it runs:

``.. test-setup:`` (rst) / ``<!-- test-setup: ... -->`` (Markdown)
    Indented code that defines what the next blocks lean on without showing it, such as a
    stand-in for ``send_email``. It runs in the page's namespace.
``.. test-check:`` / ``<!-- test-check: ... -->``
    Indented code that exercises what the blocks above built, such as a request through
    ``app.test_client()``, and asserts on the outcome.
``.. test-module: NAME``
    The next block is the source of module NAME (``tasks.py`` in the text): it is
    written to the page's directory, which is on ``sys.path``, and imported there, so
    that process workers can import it too.
``.. skip: REASON`` / ``<!-- skip: REASON -->``
    The next block is not run, for the reason given (a shell session, a server, a
    process-wide change). The reason is required and shows in the test report.

Which blocks are Python: ``code-block`` (or ``code``, ``sourcecode``) with ``python``,
``python3``, ``py`` or ``pycon`` (run as a doctest), a literal block introduced by
``::``, which Sphinx highlights as Python, and Markdown fences tagged ``python``.
Anything else must say its language, and a Markdown fence with no language fails the
test, so that no Python block escapes by having none.

After the last block of a page, every executor bound during the page is shut down, and
the page fails if it leaves a thread running.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import doctest
import importlib
import os
import re
import shutil
import sys
import tempfile
import textwrap
import threading
import types
import typing as t
from pathlib import Path

import pytest
from flask import Flask
from flask_executor import Executor

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.rst")), ROOT / "README.md"]

PYTHON = {"python", "python3", "py", "pycon"}
MARKERS = {"test-setup", "test-check", "test-module", "skip"}


@dataclasses.dataclass
class Block:
    """One piece of code in a page: a visible block, or hidden test code."""

    path: Path
    line: int  # 1-based line of the first line of code
    kind: str  # "block", "test-setup" or "test-check"
    language: str
    code: str
    skip: str | None = None  # the reason, when the block is marked to be skipped
    module: str | None = None  # the module name, for a block marked "test-module"

    @property
    def id(self) -> str:
        where = f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"
        return where if self.kind == "block" else f"{where}:{self.kind}"


class DocsSyntaxError(Exception):
    """A marker that the collector cannot make sense of."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indented_body(lines: list[str], start: int, parent_indent: int) -> tuple[int, str]:
    """The block of lines from ``start`` indented deeper than ``parent_indent``.

    Returns the index of its first non-blank line and its dedented text; the block ends
    at the first non-blank line indented no deeper than the parent.
    """
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > parent_indent):
        end += 1
    first = start
    while first < end and not lines[first].strip():
        first += 1
    return first, textwrap.dedent("\n".join(lines[first:end])).strip("\n") + "\n"


_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_MARKER = re.compile(r"^(\s*)\.\. (test-[a-z-]+|skip):(.*)$")
_EXPLICIT = re.compile(r"^\s*\.\. ")
_HIGHLIGHT = re.compile(r"^\.\. highlight::\s*(\S+)")


def rst_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: dict[str, str] = {}  # "skip"/"test-module" markers awaiting their block
    literal_language = "python"  # of '::' blocks: Sphinx's default, until '.. highlight::'
    i = 0
    while i < len(lines):
        line = lines[i]
        highlight = _HIGHLIGHT.match(line)
        if highlight:
            literal_language = highlight[1]
        marker = _MARKER.match(line)
        directive = _DIRECTIVE.match(line)
        if marker:
            indent, name, rest = len(marker[1]), marker[2], marker[3].strip()
            if name not in MARKERS:
                raise DocsSyntaxError(f"{path.name}:{i + 1}: unknown marker '{name}'.")
            if name in ("test-setup", "test-check"):
                first, code = _indented_body(lines, i + 1, indent)
                blocks.append(Block(path, first + 1, name, "python", code))
                i = first + len(code.splitlines())
                continue
            if not rest:
                raise DocsSyntaxError(f"{path.name}:{i + 1}: '{name}' needs a value.")
            pending[name] = rest
        elif directive or (line.rstrip().endswith("::") and not _EXPLICIT.match(line)):
            indent = _indent(line)
            language = directive[2] if directive else literal_language
            j = i + 1
            if directive:  # skip the directive's options
                while j < len(lines) and lines[j].strip().startswith(":"):
                    j += 1
            first, code = _indented_body(lines, j, indent)
            blocks.append(
                Block(
                    path,
                    first + 1,
                    "block",
                    language or literal_language,
                    code,
                    skip=pending.pop("skip", None),
                    module=pending.pop("test-module", None),
                )
            )
            i = first + len(code.splitlines())
            continue
        elif line.strip() and pending:
            raise DocsSyntaxError(
                f"{path.name}:{i + 1}: {sorted(pending)} must come right before a code block."
            )
        i += 1
    if pending:
        raise DocsSyntaxError(f"{path.name}: {sorted(pending)} at the end, with no block.")
    return blocks


_FENCE = re.compile(r"^```(\S*)\s*$")
_HTML_MARKER = re.compile(r"^<!-- (test-setup|test-check|skip):(.*)$")


def markdown_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    skip: str | None = None
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        marker = _HTML_MARKER.match(lines[i])
        if fence:
            if not fence[1]:
                raise DocsSyntaxError(f"{path.name}:{i + 1}: a code fence without a language.")
            end = lines.index("```", i + 1)
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(path, i + 2, "block", fence[1], code, skip=skip))
            skip = None
            i = end + 1
            continue
        if marker:
            name, rest = marker[1], marker[2].strip()
            if name == "skip":
                skip = rest.removesuffix("-->").strip()
                if not skip:
                    raise DocsSyntaxError(f"{path.name}:{i + 1}: 'skip' needs a reason.")
            else:
                end = lines.index("-->", i + 1)
                code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
                blocks.append(Block(path, i + 2, name, "python", code))
                i = end + 1
                continue
        i += 1
    return blocks


def page_blocks(path: Path) -> list[Block]:
    found = markdown_blocks(path) if path.suffix == ".md" else rst_blocks(path)
    return [block for block in found if block.language in PYTHON]


BLOCKS = [block for page in PAGES for block in page_blocks(page)]


def _compile(block: Block) -> types.CodeType:
    # Line numbers of the page, so that a traceback points into the page itself.
    source = "\n" * (block.line - 1) + block.code
    return compile(
        source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )


class PageRun:
    """The state of one page while its blocks run: namespace, directory, executors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.blocks = [block for block in BLOCKS if block.path == path]
        self.done: set[str] = set()
        self.failed: str | None = None
        self._dir = tempfile.TemporaryDirectory(prefix=f"docs-{path.stem}-")
        self.dir = Path(self._dir.name)
        self.module_name = "docs_" + re.sub(r"\W", "_", path.stem)
        self.module = types.ModuleType(self.module_name)
        self.modules: list[str] = []  # modules written by "test-module" blocks
        self.bound: list[tuple[Executor, Flask]] = []
        self.threads_before = set(threading.enumerate())
        self.environ = dict(os.environ)  # a page may set variables, as a reader would
        # A registered module, so that pickle finds the page's functions by name in the
        # workers of a forked process pool, as it would for a reader's own module.
        sys.modules[self.module_name] = self.module
        sys.path.insert(0, str(self.dir))

    def run(self, block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
        """Run the blocks of the page before ``block`` that have not run, then it."""
        for earlier in self.blocks[: self.blocks.index(block)]:
            if earlier.id not in self.done and not earlier.skip:
                self._run_one(earlier, monkeypatch)
        if block.skip:
            self.done.add(block.id)
            pytest.skip(f"marked in the page: {block.skip}")
        self._run_one(block, monkeypatch)

    def _run_one(self, block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
        if self.failed:
            pytest.skip(f"block {self.failed} of this page failed")
        monkeypatch.chdir(self.dir)
        original_init_app = Executor.init_app

        def init_app(executor: Executor, app: Flask) -> None:
            original_init_app(executor, app)
            self.bound.append((executor, app))

        monkeypatch.setattr(Executor, "init_app", init_app)
        try:
            if block.language == "pycon":
                self._run_doctest(block)
            elif block.module:
                (self.dir / f"{block.module}.py").write_text(block.code, encoding="utf-8")
                sys.modules.pop(block.module, None)
                # A new file in a directory whose listing the import system has cached,
                # or a rewritten one whose bytecode looks current: import the new source.
                shutil.rmtree(self.dir / "__pycache__", ignore_errors=True)
                importlib.invalidate_caches()
                self.modules.append(block.module)
                __import__(block.module)
            else:
                outcome = eval(_compile(block), self.module.__dict__)
                if asyncio.iscoroutine(outcome):  # the block awaits at the top level
                    asyncio.run(outcome)
        except BaseException:
            self.failed = block.id
            raise
        finally:
            monkeypatch.undo()
            self.done.add(block.id)

    def _run_doctest(self, block: Block) -> None:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(
            block.code, self.module.__dict__, block.id, str(block.path), block.line - 1
        )
        # Keep the page's namespace: the examples' names are visible to the next blocks.
        test.globs = self.module.__dict__
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        output: list[str] = []
        runner.run(test, out=output.append, clear_globs=False)
        if runner.failures:
            pytest.fail("".join(output), pytrace=False)

    def close(self) -> None:
        """Shut down every executor bound during the page, and check for leaked threads."""
        try:
            for executor, app in self.bound:
                with app.app_context():
                    executor.shutdown(wait=True)
            left = [th for th in threading.enumerate() if th not in self.threads_before]
            for thread in left:
                thread.join(timeout=10)
            alive = [thread.name for thread in left if thread.is_alive()]
            assert not alive, f"{self.path.name} left threads running: {alive}"
        finally:
            os.environ.clear()
            os.environ.update(self.environ)
            sys.modules.pop(self.module_name, None)
            # The page's own modules, and those its code wrote to its directory.
            for name, module in list(sys.modules.items()):
                file = getattr(module, "__file__", None) or ""
                if name in self.modules or file.startswith(str(self.dir)):
                    del sys.modules[name]
            sys.path.remove(str(self.dir))
            self.module.__dict__.clear()
            self._dir.cleanup()


@pytest.fixture(scope="module")
def page_runs() -> t.Iterator[dict[Path, PageRun]]:
    runs: dict[Path, PageRun] = {}
    yield runs
    # Pages whose last block was deselected are closed here.
    for run in runs.values():
        run.close()


# Python 3.12+ warns when a process that runs threads forks. The process pool pages use
# the platform's default start method, fork on Linux before 3.14, as a reader's app would.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
@pytest.mark.keeps_objects(
    "each page runs as a module, whose app, executor and pool live at module level, as"
    " in a reader's app"
)
def test_block_runs(
    block: Block, page_runs: dict[Path, PageRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = page_runs.get(block.path)
    if run is None:
        run = page_runs[block.path] = PageRun(block.path)
    try:
        run.run(block, monkeypatch)
    finally:
        if block is run.blocks[-1]:
            del page_runs[block.path]
            run.close()


def test_every_page_is_collected() -> None:
    # Each page's markers parse (BLOCKS would have failed otherwise), and the pages that
    # show Python code have blocks here: a page that shows code no test finds is a sign
    # the collector missed its syntax.
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        if re.search(r"code-block:: python|```python", text):
            assert page_blocks(page), page


def test_markers_are_understood(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        "Title\n=====\n\nText::\n\n    a = 1\n\n.. test-check:\n\n    assert a == 1\n\n"
        ".. skip: a server\n\n.. code-block:: python\n    :caption: x\n\n    serve()\n\n"
        ".. code-block:: text\n\n    $ ls\n\n.. highlight:: console\n\nThen::\n\n    $ ls\n",
        encoding="utf-8",
    )
    blocks = rst_blocks(page)
    assert [(b.line, b.kind, b.language, b.code, b.skip) for b in blocks] == [
        (6, "block", "python", "a = 1\n", None),
        (10, "test-check", "python", "assert a == 1\n", None),
        (17, "block", "python", "serve()\n", "a server"),
        (21, "block", "text", "$ ls\n", None),
        (27, "block", "console", "$ ls\n", None),
    ]
    page.write_text(".. skip: why\n\nA paragraph.\n", encoding="utf-8")
    with pytest.raises(DocsSyntaxError, match="right before a code block"):
        rst_blocks(page)
    page.write_text(".. test-chek:\n\n    pass\n", encoding="utf-8")
    with pytest.raises(DocsSyntaxError, match="unknown marker 'test-chek'"):
        rst_blocks(page)
    readme = tmp_path / "README.md"
    readme.write_text("```\nls\n```\n", encoding="utf-8")
    with pytest.raises(DocsSyntaxError, match="without a language"):
        markdown_blocks(readme)
