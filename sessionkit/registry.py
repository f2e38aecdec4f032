"""The backend registry: built-in backends, registered ones and entry points.

:func:`available_backends` and :func:`register_backend` are also importable from
``sessionkit``; :func:`get_backend` and :func:`build_backend` are for tools that build a
backend themselves (the conformance suite, the CLI).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union

import attrs

from sessionkit._version import install_hint
from sessionkit.errors import BackendNotFoundError, InvalidConfigError
from sessionkit.models import SessionConfig

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend

__all__ = [
    "BUILT_IN_BACKENDS",
    "ENTRY_POINT_GROUP",
    "BackendFactory",
    "available_backends",
    "build_backend",
    "get_backend",
    "register_backend",
    "registry",
]

logger = logging.getLogger(__name__)

#: Builds a backend from the connection and location keywords.
BackendFactory = Union["type[Backend]", Callable[..., "Backend"]]

ENTRY_POINT_GROUP = "sessionkit.backends"

#: Backends that ship with sessionkit, imported on first use: name to ``"module:Class"`` and
#: the pip requirement that brings the backend's SDK (its extra of the distribution).
BUILT_IN_BACKENDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "glue": ("sessionkit.backends.aws.glue:GlueBackend", install_hint("aws")),
        "emr-serverless": (
            "sessionkit.backends.aws.emr_serverless:EmrServerlessBackend",
            install_hint("aws"),
        ),
        "athena": ("sessionkit.backends.aws.athena:AthenaBackend", install_hint("aws")),
        "emr": ("sessionkit.backends.aws.emr:EmrBackend", install_hint("aws")),
        "livy": ("sessionkit.backends.livy.backend:LivyBackend", install_hint("livy")),
        "dataproc": ("sessionkit.backends.gcp.dataproc:DataprocBackend", install_hint("dataproc")),
    }
)

_registry: dict[str, BackendFactory | str] = {}
_lock = threading.Lock()
_entry_points_read = False

#: A read-only view of the backends registered in this process (name to factory).
registry: Mapping[str, BackendFactory | str] = MappingProxyType(_registry)

_CONFIG_FIELDS = frozenset(a.name for a in attrs.fields(SessionConfig))


def register_backend(name: str, factory: BackendFactory | str, *, clobber: bool = False) -> None:
    """Register a backend under ``name``.

    Args:
        name: The name users pass to :func:`open_session`, e.g. ``"my-backend"``.
        factory: A :class:`~sessionkit.backends.base.Backend` subclass, a callable returning a
            backend, or a lazy ``"module:Class"`` string imported on first use.
        clobber: Replace an existing registration instead of raising.

    Raises:
        ValueError: When ``name`` is taken and ``clobber`` is false.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    with _lock:
        if not clobber and (name in _registry or name in BUILT_IN_BACKENDS):
            raise ValueError(
                f"a backend named {name!r} is already registered; pass clobber=True to replace it"
            )
        _registry[name] = factory


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(entry_point.name, entry_point.value)
    _entry_points_read = True


def available_backends() -> list[str]:
    """Return the names of every backend that can be opened, sorted.

    Includes the built-in backends, registered ones and those installed through the
    ``sessionkit.backends`` entry-point group.
    """
    with _lock:
        _read_entry_points()
        return sorted({*BUILT_IN_BACKENDS, *_registry})


def _import(path: str, name: str, requirement: str | None) -> BackendFactory:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != module_name.split(".")[0]:
            # A dependency of the backend is missing: say what to install.
            needed = requirement or f"pip install {missing}"
            raise BackendNotFoundError(
                f"backend {name!r} needs {missing!r}, which is not installed: {needed}",
                name=name,
            ) from exc
        raise BackendNotFoundError(
            f"backend {name!r} points at {path!r}, which cannot be imported: {exc}", name=name
        ) from exc
    factory: BackendFactory = getattr(module, attribute)
    return factory


def get_backend(name: str) -> BackendFactory:
    """Return the factory registered under ``name``, importing it if needed.

    Raises:
        BackendNotFoundError: When no backend has that name, or its dependency is missing.
    """
    with _lock:
        factory = _registry.get(name)
        if factory is None and name not in BUILT_IN_BACKENDS:
            _read_entry_points()
            factory = _registry.get(name)
    if factory is None and name in BUILT_IN_BACKENDS:
        path, requirement = BUILT_IN_BACKENDS[name]
        return _import(path, name, requirement)
    if factory is None:
        raise BackendNotFoundError(
            f"no backend named {name!r}; available: {', '.join(available_backends())}",
            name=name,
        )
    if isinstance(factory, str):
        return _import(factory, name, None)
    return factory


def build_backend(name: str, keywords: Mapping[str, Any], *, attaching: bool = False) -> Backend:
    """Build the backend from its connection, location and own keywords; no service call.

    Args:
        name: The backend name.
        keywords: Everything the caller passed that is not a SessionConfig field.
        attaching: Only the location needed to find one session is required
            (``Backend.attach_location_fields``).

    Raises:
        InvalidConfigError: For a keyword the backend does not declare, or a missing location.
    """
    factory = get_backend(name)
    location = tuple(getattr(factory, "location_fields", ()))
    required = location
    attach_fields = getattr(factory, "attach_location_fields", None)
    if attaching and attach_fields is not None:
        required = tuple(attach_fields)
    extra = tuple(getattr(factory, "extra_fields", ()))
    connection = tuple(getattr(factory, "connection_fields", ()))
    if hasattr(factory, "location_fields"):
        allowed = {*connection, *location, *extra}
        for key in keywords:
            if key not in allowed:
                raise InvalidConfigError(
                    key,
                    f"is not a keyword of the {name} backend nor a SessionConfig field "
                    f"(backend keywords: {', '.join(sorted(allowed))}; "
                    f"config fields: {', '.join(sorted(_CONFIG_FIELDS))})",
                )
    for field in required:
        if keywords.get(field) in (None, ""):
            raise InvalidConfigError(
                field, f"the {name} backend needs {field}=... to know where sessions live"
            )
    try:
        backend: Backend = factory(**keywords)
    except TypeError as exc:
        raise InvalidConfigError(
            "backend", f"the {name} backend rejected its keywords: {exc}"
        ) from exc
    return backend
