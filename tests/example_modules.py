"""Loading an example from ``examples/`` as a module of its own, for a test to use."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
import typing as t
from pathlib import Path


@contextlib.contextmanager
def example_module(path: Path, name: str) -> t.Iterator[types.ModuleType]:
    """Run the example at ``path`` afresh as the module ``name``: its own app, executor
    and stored futures. Its executor is shut down at the end, waiting for its jobs."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as an import puts it: Flask finds the app's folder,
    # and so its static files, from the module.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
        with module.app.app_context():
            module.executor.shutdown(wait=True)
    finally:
        del sys.modules[name]
