"""The public face: sorted ``__all__`` lists, names that resolve, errors that are builtins too."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Sequence

import pytest

import sessionkit
from sessionkit import errors

#: Modules whose ``__all__`` users read (the package's public modules).
PUBLIC_MODULES = [
    "sessionkit",
    "sessionkit.errors",
    "sessionkit.models",
    "sessionkit.states",
    "sessionkit.testing",
    "sessionkit.testing.memory",
    "sessionkit.testing.conformance",
    "sessionkit.backends.base",
]


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else."""
    if name.isupper() or (name.upper() == name and not name.startswith("__")):
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def unsorted_names(names: Sequence[str]) -> list[str]:
    """The names that stand before a name that should come first (empty when sorted)."""
    return [a for a, b in itertools.pairwise(names) if isort_key(a) > isort_key(b)]


def test_the_sort_check_finds_an_unsorted_list() -> None:
    assert unsorted_names(["open_session", "Session"]) == ["open_session"]
    assert unsorted_names(["Session", "DEFAULT_POLL"]) == ["Session"]
    assert unsorted_names(["b", "a", "c"]) == ["b"]
    assert unsorted_names(["DEFAULT_POLL", "Session", "__version__", "open_session"]) == []


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_all_is_sorted_and_resolves(module: str) -> None:
    names = list(importlib.import_module(module).__all__)
    assert unsorted_names(names) == [], f"{module}.__all__ is not sorted"
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(importlib.import_module(module), name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        sessionkit.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.BackendNotFoundError, LookupError),
        (errors.InvalidConfigError, ValueError),
        (errors.WaitTimeoutError, TimeoutError),
        (errors.NotSupportedError, NotImplementedError),
    ],
)
def test_errors_are_also_the_matching_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)
    assert issubclass(error, errors.SessionKitError)


def test_an_unknown_backend_names_the_alternatives(service: object) -> None:
    with pytest.raises(errors.BackendNotFoundError) as caught:
        sessionkit.open_session("memroy")
    assert "memory" in str(caught.value)
