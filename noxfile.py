"""Developer tasks: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s docs`.

`nox -s integration` drives third-party clients against the served emulator (not a default
session: its installs are heavy and aiobotocore pins botocore).
"""

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


#: The third-party clients `nox -s integration` drives against the served emulator, in two
#: environments (their pins do not all fit one): per group, what to install and which tests run.
#: aiobotocore pins botocore to a narrow range (3.10: >=1.43.115,<1.43.118), inside sessionkit's
#: botocore>=1.43.23, so pip resolves an older botocore here than in the tests session.
#: dbt-core 2 downloads a parser binary from GitHub while installing; dbt-core<1.11 does not.
INTEGRATION = {
    "clients": (
        [
            "aiobotocore>=2.13",
            "awswrangler>=3.9",
            "awscli>=1.36",
            "aws-glue-sessions>=1.0",
            "dbt-glue>=1.8",
            "dbt-core>=1.8,<1.11",
        ],
        [
            "tests/integration/test_aiobotocore.py",
            "tests/integration/test_awswrangler.py",
            "tests/integration/test_awscli.py",
            "tests/integration/test_glue_clients.py",
        ],
    ),
    "airflow": (
        ["apache-airflow-providers-amazon[aiobotocore]>=9.20", "aiobotocore>=3.6"],
        ["tests/integration/test_airflow.py"],
    ),
}


@nox.session
@nox.parametrize("group", list(INTEGRATION))
def integration(session: nox.Session, group: str) -> None:
    """Third-party clients (see INTEGRATION) against the served emulator."""
    requirements, tests = INTEGRATION[group]
    session.install("-e", ".[test]", *requirements)
    session.run("pytest", *tests, *session.posargs, env={"SESSIONKIT_INTEGRATION": "1"})
