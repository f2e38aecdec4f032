"""The command's one table of backends, read from the registry and the backends themselves.

Nothing here names a backend: each row comes from what the backend class declares
(``cli_fields``, ``capabilities``, ``location_fields``, ...) and from the emulator's table of
the backends it can stand in for.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from sessionkit.backends.base import Capabilities

__all__ = ["BackendRow", "UsageError", "emulated", "flag", "resolve", "row", "rows"]


class UsageError(Exception):
    """A command-line mistake found after parsing (exit code 2)."""


@attrs.frozen(kw_only=True)
class BackendRow:
    """What the command knows about one backend.

    Attributes:
        name: The registry name.
        cli_fields: Backend keywords offered as ``--kebab-case`` options.
        location_fields: The keywords that locate its sessions.
        connection_fields: The keywords that reach the provider.
        supported_fields: The :class:`~sessionkit.SessionConfig` fields the backend translates.
        capabilities: What the backend can do.
        config_error_codes: Service error codes that mean a configuration problem.
        cli_aliases: Python keyword to the CLI option that stands for it.
        installed: Whether the backend (and its SDK) can be imported here.
        problem: Why it cannot, when it cannot.
    """

    name: str
    cli_fields: tuple[str, ...] = ()
    location_fields: tuple[str, ...] = ()
    connection_fields: tuple[str, ...] = ()
    supported_fields: frozenset[str] = frozenset()
    capabilities: Capabilities | None = None
    config_error_codes: frozenset[str] = frozenset()
    cli_aliases: Mapping[str, str] = attrs.field(factory=dict)
    installed: bool = True
    problem: str | None = None

    @property
    def statements(self) -> bool:
        """Whether ``sessionkit run`` can use the backend."""
        return bool(self.capabilities and self.capabilities.statements)


def flag(field: str) -> str:
    """The option spelling of a keyword: ``work_group`` is ``--work-group``."""
    return "--" + field.replace("_", "-")


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


def row(name: str) -> BackendRow:
    """The row of the backend registered as ``name`` (exact name)."""
    from sessionkit.errors import BackendNotFoundError
    from sessionkit.registry import get_backend

    try:
        factory: Any = get_backend(name)
    except BackendNotFoundError as exc:
        return BackendRow(name=name, installed=False, problem=str(exc))
    return BackendRow(
        name=name,
        cli_fields=tuple(getattr(factory, "cli_fields", ())),
        location_fields=tuple(getattr(factory, "location_fields", ())),
        connection_fields=tuple(getattr(factory, "connection_fields", ())),
        supported_fields=frozenset(getattr(factory, "supported_fields", ())),
        capabilities=capabilities_of(factory),
        config_error_codes=frozenset(getattr(factory, "config_error_codes", ())),
        cli_aliases=dict(getattr(factory, "cli_aliases", {})),
    )


def capabilities_of(factory: Any) -> Capabilities | None:
    """The capabilities ``factory`` declares, or, where it declares none, what it implements.

    A backend class that leaves ``capabilities`` at the base class's default (nothing
    optional) but implements the statement primitives, or the endpoint one, can still do
    that; reading the overrides keeps ``run`` and ``demo`` from refusing what works.
    """
    from sessionkit.backends.base import Backend

    declared: Capabilities | None = getattr(factory, "capabilities", None)
    if not (isinstance(factory, type) and issubclass(factory, Backend)):
        return declared
    if declared is not Backend.capabilities:
        return declared

    def overrides(name: str) -> bool:
        return getattr(factory, name, None) is not getattr(Backend, name)

    return attrs.evolve(
        Backend.capabilities,
        statements=overrides("_run") and overrides("_statement"),
        spark_connect=overrides("_endpoint"),
    )


def rows() -> list[BackendRow]:
    """Every available backend's row, sorted by name."""
    from sessionkit import available_backends

    return [row(name) for name in available_backends()]


def emulated() -> list[str]:
    """The backends ``--local`` and ``demo`` can use (the emulator's table)."""
    from sessionkit.testing.emulator import emulated_backends

    return emulated_backends()


def resolve(text: str, choices: list[str] | None = None) -> str:
    """The backend name ``text`` means: case, ``_`` and ``-`` do not matter.

    Args:
        text: What the user typed.
        choices: The names allowed here (default: every available backend).

    Raises:
        UsageError: For an unknown name, suggesting the nearest.
    """
    from sessionkit import available_backends

    names = choices if choices is not None else available_backends()
    wanted = _key(text)
    for name in names:
        if _key(name) == wanted or _key(name).replace("-", "") == wanted.replace("-", ""):
            return name
    near = difflib.get_close_matches(wanted, [_key(n) for n in names], n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise UsageError(f"unknown backend {text!r}{hint} (backends: {', '.join(names)})")
