"""Fault injection: throttling, server errors, connection errors, timeouts and latency."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Literal

import attrs

__all__ = ["Fault", "FaultKind"]

FaultKind = Literal["throttle", "server_error", "connection_error", "read_timeout", "latency"]

_KINDS = ("throttle", "server_error", "connection_error", "read_timeout", "latency")


def _kind(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _KINDS:
        raise ValueError(f"fault kind must be one of {', '.join(_KINDS)}, got {value!r}")


def _operations(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


@attrs.define(kw_only=True)
class Fault:
    """One injected fault.

    ``throttle`` answers the service's throttling error; ``server_error`` a 5xx;
    ``connection_error`` fails before the request reaches the service; ``read_timeout`` lets
    the service *process* the request and then loses the answer (the case idempotency tokens
    exist for); ``latency`` adds ``latency`` virtual seconds to the call.

    Attributes:
        kind: What happens.
        service: Only calls to this service, by its SDK name (``None``: every service).
        operations: Only these operation names, e.g. ``{"GetSession"}`` (``None``: all).
        rate: The probability that a matching call is hit.
        count: Hit at most this many calls (``None``: no limit).
        latency: Virtual seconds added by a ``latency`` fault.
        hits: How many calls this fault has hit so far.
    """

    kind: FaultKind = attrs.field(validator=_kind)
    service: str | None = None
    operations: frozenset[str] | None = attrs.field(default=None, converter=_operations)
    rate: float = 1.0
    count: int | None = None
    latency: float = 0.0
    hits: int = 0

    def matches(self, service: str, operation: str) -> bool:
        """Whether this fault applies to a call."""
        if self.count is not None and self.hits >= self.count:
            return False
        if self.service is not None and self.service != service:
            return False
        return self.operations is None or operation in self.operations

    def fires(self, rng: random.Random) -> bool:
        """Roll the dice for one matching call; count the hit."""
        if self.rate >= 1.0 or rng.random() < self.rate:
            self.hits += 1
            return True
        return False
