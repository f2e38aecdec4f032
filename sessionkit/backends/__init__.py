"""Backends: one module per service, each implementing :class:`~sessionkit.backends.base.Backend`.

Each provider's backends are imported lazily through the registry; importing this package
imports no provider SDK.
"""
