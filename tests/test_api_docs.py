"""docs/api.rst documents every public name of the package, and every public member.

The list comes from the code: each name in ``flask_executor.__all__``, and for each
class every public method, property and attribute that flask-executor itself defines
(those inherited from ``concurrent.futures.Future`` or ``object`` are Python's). The
page is read as autodoc would read it: ``:members:`` with no list takes the members a
class defines itself, ``:inherited-members:`` adds those of its bases, a member without
a docstring shows only with ``:undoc-members:``, and ``:exclude-members:`` hides names.
So a new method, a new class in ``__all__``, or a public method on a private base class
fails here until the page shows it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import flask_executor
import pytest

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


@dataclasses.dataclass
class Directive:
    kind: str  # "class", "function", "data", "exception"...
    name: str
    options: dict[str, str]
    nested: set[str]  # members named by automethod, autoproperty... inside it


_AUTO = re.compile(r"^(\s*)\.\. (?:py:)?(?:auto)?(\w+):: ([\w.]+)")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")


def read_api_page(text: str) -> dict[str, Directive]:
    """The top-level autodoc directives of the page, by the name they document."""
    directives: dict[str, Directive] = {}
    current: Directive | None = None
    in_options = False
    for line in text.splitlines():
        auto = _AUTO.match(line)
        if auto and not auto[1] and auto[2] in ("class", "exception", "function", "data"):
            current = directives[auto[3]] = Directive(auto[2], auto[3], {}, set())
            in_options = True
        elif auto and current is not None:
            current.nested.add(auto[3].rsplit(".", 1)[-1])
            in_options = False
        elif in_options and current is not None and (option := _OPTION.match(line)):
            current.options[option[1]] = option[2].strip()
        elif line.strip():
            in_options = False
    return directives


def _names(value: str) -> set[str]:
    return {name.strip() for name in value.split(",") if name.strip()}


def _defined_by_package(cls: type, name: str) -> type | None:
    """The class of flask-executor that defines ``name`` for ``cls``, if any."""
    for base in cls.__mro__:
        if name in vars(base):
            return base if base.__module__.startswith("flask_executor") else None
    return None


def public_members(cls: type) -> set[str]:
    """Public members of ``cls`` that flask-executor defines, itself or in a base."""
    return {
        name
        for name in dir(cls)
        if not name.startswith("_") and _defined_by_package(cls, name) is not None
    }


def _has_doc(cls: type, name: str) -> bool:
    member = inspect.getattr_static(cls, name)
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if callable(member) or isinstance(member, property):
        return bool(inspect.getdoc(member))
    # A plain attribute: autodoc shows it only with a '#:' comment, which this test does
    # not read; list it in the page instead, with '.. attribute::'.
    return False


def documented_members(cls: type, directive: Directive) -> set[str]:
    """The members of ``cls`` that autodoc shows for ``directive``."""
    options = directive.options
    shown = set(directive.nested)
    if "members" in options:
        if options["members"]:
            shown |= _names(options["members"])
        else:
            candidates = {n for n in public_members(cls) if n in vars(cls)}
            if "inherited-members" in options:
                candidates = public_members(cls)
            if "undoc-members" not in options:
                candidates = {n for n in candidates if _has_doc(cls, n)}
            shown |= candidates
    return shown - _names(options.get("exclude-members", ""))


DIRECTIVES = read_api_page(API_PAGE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", flask_executor.__all__)
def test_public_name_is_on_the_api_page(name: str) -> None:
    obj = getattr(flask_executor, name)
    directive = DIRECTIVES.get(name) or DIRECTIVES.get(f"flask_executor.{name}")
    assert directive is not None, f"docs/api.rst has no autodoc directive for {name!r}."
    if inspect.isclass(obj):
        assert directive.kind in ("class", "exception"), directive
        missing = public_members(obj) - documented_members(obj, directive)
        assert not missing, (
            f"docs/api.rst does not show {sorted(missing)} of {name}: list them, or give"
            " them docstrings (':members:' skips undocumented ones), or add"
            " ':inherited-members:' for members of a private base class."
        )


def test_the_page_is_read_as_autodoc_reads_it() -> None:
    # The reading above, on a page that shows too little in each way it can.
    class Base:
        def inherited(self) -> None:
            """Documented."""

    class Cls(Base):
        def own(self) -> None:
            """Documented."""

        def undocumented(self) -> None:
            pass

        def hidden(self) -> None:
            """Documented."""

    Cls.__module__ = Base.__module__ = "flask_executor.example"
    page = read_api_page(
        ".. autoclass:: Cls\n    :members:\n    :exclude-members: hidden\n\n"
        ".. autoclass:: Other\n    :members: own\n\n    .. automethod:: inherited\n"
    )
    assert public_members(Cls) == {"inherited", "own", "undocumented", "hidden"}
    assert documented_members(Cls, page["Cls"]) == {"own"}
    assert documented_members(Cls, page["Other"]) == {"own", "inherited"}
    page["Cls"].options.update({"inherited-members": "", "undoc-members": ""})
    assert documented_members(Cls, page["Cls"]) == {"own", "inherited", "undocumented"}
