"""The package's old import path of :mod:`sessionkit.registry`, kept for its own modules.

Everything is defined in :mod:`sessionkit.registry`, the public module; import from there.
"""

from sessionkit.registry import (
    BackendFactory,
    available_backends,
    build_backend,
    get_backend,
    register_backend,
    registry,
)

__all__ = [
    "BackendFactory",
    "available_backends",
    "build_backend",
    "get_backend",
    "register_backend",
    "registry",
]
