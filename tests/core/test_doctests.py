"""The examples in the package's docstrings run (``>>>`` blocks), module by module."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import sessionkit


def modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(sessionkit.__path__, "sessionkit."):
        spec = importlib.util.find_spec(info.name)
        origin = spec.origin if spec is not None else None
        if origin and origin.endswith(".py"):
            with open(origin, encoding="utf-8") as source:
                if ">>> " in source.read():
                    names.append(info.name)
    return sorted(names)


MODULES = modules_with_examples()


def test_the_package_has_examples() -> None:
    assert {"sessionkit.testing", "sessionkit.testing.memory", "sessionkit._version"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name)
    assert tests, f"{name} has '>>> ' in its source but no doctest was found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
