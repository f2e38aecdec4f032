"""Developer tasks: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s docs`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite and the doctests (emulator, memory backend, moto; no cloud account).

    The real-Spark tests run when Java 17+ is on the machine (the spark extra brings PySpark).
    """
    session.install("-e", ".[test,spark]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[lint]")
    session.run("mypy", "--strict", "sessionkit")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings are errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Run every benchmark script (figures printed, nothing asserted)."""
    session.install("-e", ".")
    for script in ("readiness", "fleet", "overhead", "statements", "import_time", "faults"):
        session.run("python", f"benchmarks/{script}.py", *session.posargs)
