"""An editable install is a plain path, which type checkers follow.

Issue 11, section 3, item 4. mypy and pyright read ``.pth`` files for the paths they
list, but do not run the import hooks that setuptools' editable install of this layout
puts there. Checked on the install the tests run against, when it is an editable
install of this checkout; CI makes one with ``pip install -e ".[test]"``.
"""

from __future__ import annotations

import importlib.metadata
import json
import site
import sys
from pathlib import Path
from urllib.parse import unquote
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).parent.parent


def test_editable_install_is_a_plain_path_in_a_pth_file() -> None:
    # The installed one: a checkout that setuptools once installed may also hold a
    # stale 'flask_executor.egg-info', which has no direct_url.json.
    installed = [
        dist
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] == "flask-executor" and dist.read_text("direct_url.json")
    ]
    if not installed:
        pytest.skip("flask-executor is not installed by pip here.")
    (dist,) = installed
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if not direct_url.get("dir_info", {}).get("editable"):
        pytest.skip("flask-executor is not installed in editable mode here.")
    installed_from = Path(unquote(urlparse(direct_url["url"]).path))
    if installed_from.resolve() != ROOT.resolve():
        pytest.skip(f"The editable install is of another checkout, {installed_from}.")

    site_dirs = {Path(p).resolve() for p in [*site.getsitepackages(), *sys.path] if p}
    pth_lines = [
        line.strip()
        for file in dist.files or []
        if file.suffix == ".pth"
        for line in Path(str(file.locate())).read_text().splitlines()
        if line.strip()
    ]
    assert [Path(line).resolve() for line in pth_lines] == [ROOT.resolve()]
    # A path line, not 'import ...': nothing has to run for the package to be found.
    assert not any(line.startswith("import") for line in pth_lines)
    assert ROOT.resolve() in site_dirs
    # The package carries its type information.
    assert (ROOT / "flask_executor" / "py.typed").is_file()
