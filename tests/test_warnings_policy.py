"""Which warnings fail the suite: pyproject.toml's ``filterwarnings``.

Every warning is an error, except a deprecation warning that a dependency's own code
raises (Flask 2.2 on Python 3.12, for one): the matrix in .ci/matrix runs old Flask
versions on new Pythons, and their deprecations are theirs to fix.
"""

from __future__ import annotations

import warnings

import pytest


def _warn_from(module: str, category: type[Warning]) -> list[warnings.WarningMessage]:
    # As if code in 'module' had raised it. Within a test, the filters in force are
    # pyproject's; catch_warnings keeps them and only records what they let through.
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit("old", category, f"{module}.py", 1, module=module)
    return caught


@pytest.mark.parametrize(
    "module", ["flask_executor", "flask_executor.context", __name__, "conftest", "servers"]
)
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecation_raised_in_this_package_or_the_tests_is_an_error(
    module: str, category: type[Warning]
) -> None:
    with pytest.raises(category):
        _warn_from(module, category)


@pytest.mark.parametrize("module", ["flask.helpers", "werkzeug.routing.rules", "flask"])
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecation_raised_in_a_dependency_is_shown(
    module: str, category: type[Warning]
) -> None:
    [caught] = _warn_from(module, category)
    assert caught.category is category


@pytest.mark.parametrize("module", ["flask.helpers", "werkzeug.routing.rules"])
@pytest.mark.parametrize("category", [UserWarning, ResourceWarning, RuntimeWarning])
def test_any_other_warning_is_an_error_wherever_it_is_raised(
    module: str, category: type[Warning]
) -> None:
    with pytest.raises(category):
        _warn_from(module, category)
