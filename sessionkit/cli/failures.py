"""What the command says when something fails: one line naming options, and the exit code.

Its own module (not the package's ``__init__``) so that every command module can use it
without importing the package that imports them.
"""

from __future__ import annotations

import re

from sessionkit.cli.backends import BackendRow, UsageError, flag

__all__ = ["describe", "exit_code", "is_expected"]

#: The command-line spelling of the SessionConfig fields and arguments errors name.
_FLAGS = {
    "role": "--role",
    "name": "--name",
    "idle_timeout": "--idle-timeout",
    "spark_conf": "--conf",
    "tags": "--tag",
    "timeout": "--timeout",
    "states": "--state",
    "code": "CODE",
    "session_id": "SESSION_ID",
}

_KEYWORD = re.compile(r"\b([a-z][a-z0-9_]*)=(?:\.\.\.)?")


def _option(field: str, row: BackendRow | None) -> str | None:
    if field in _FLAGS:
        return _FLAGS[field]
    if row is None:
        return None
    if field in row.cli_fields:
        return flag(field)
    alias = row.cli_aliases.get(field)
    if alias is not None:
        return flag(alias)
    return None


def describe(exc: BaseException, row: BackendRow | None = None) -> str:
    """One line saying what went wrong, naming command-line options instead of keywords.

    Args:
        exc: The error.
        row: The backend the command used, for its options.

    Returns:
        The message, with ``keyword=...`` rewritten as the option that sets it.
    """
    from sessionkit.errors import InvalidConfigError

    text = str(exc) or type(exc).__name__

    def option(match: re.Match[str]) -> str:
        found = _option(match.group(1), row)
        return found if found is not None else match.group(0)

    text = _KEYWORD.sub(option, text)
    if isinstance(exc, InvalidConfigError):
        found = _option(exc.field, row)
        if found is not None and found not in text:
            text += f" (command line: {found})"
    elif not is_expected(exc):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


def is_expected(exc: BaseException) -> bool:
    """Errors that mean "the request failed", as opposed to a bug in sessionkit."""
    from sessionkit.errors import SessionKitError

    return isinstance(exc, (SessionKitError, UsageError))


def exit_code(exc: BaseException, row: BackendRow | None = None) -> int:
    """2 for a usage or configuration error (missing credentials included), else 1."""
    from sessionkit.errors import BackendNotFoundError, InvalidConfigError, ServiceError

    if isinstance(exc, (InvalidConfigError, BackendNotFoundError, UsageError)):
        return 2
    if isinstance(exc, ServiceError) and row is not None and exc.code in row.config_error_codes:
        return 2
    return 1
