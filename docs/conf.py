"""Sphinx configuration for the flask-executor docs.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import importlib.metadata

project = "flask-executor"
copyright = "flask-executor developers"
author = "flask-executor developers"
release = importlib.metadata.version("flask-executor")
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]

# No intersphinx: the build must pass with -W on machines that cannot fetch the Python
# and Flask inventories, and a missing inventory is a warning. References to
# 'concurrent.futures' and 'flask' names render as code without a link.

autodoc_member_order = "bysource"
# The typed overloads of 'submit', 'map' and 'job' (ParamSpec, coroutine variants) make
# unreadable signatures; the docstrings say what each argument takes instead.
autodoc_typehints = "none"
autodoc_preserve_defaults = True

exclude_patterns = ["_build"]
default_role = "code"
pygments_style = "sphinx"

html_theme = "alabaster"
html_theme_options = {
    "description": "Background jobs for Flask, with contexts and awaitable futures.",
    "fixed_sidebar": True,
}
html_title = f"flask-executor {version}"
html_static_path: list[str] = []
