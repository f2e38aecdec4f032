"""The emulator's clock: virtual time that tests drive, optionally paced against real time."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

__all__ = ["VirtualClock"]


class VirtualClock:
    """A clock that only moves when told to (``advance``) or when someone ``sleep``s on it.

    Sessions in the emulator change state as this clock passes their milestones, so a test can
    run a 10-minute start-up in microseconds. ``pace`` makes each virtual second also take that
    many real seconds, for demos that should look alive (``pace=0.05``: a 6 s start takes 0.3 s).

    Args:
        start: The wall-clock time at virtual zero (timezone-aware); default: now.
        pace: Real seconds slept per virtual second slept (0: no real sleeping).
    """

    def __init__(self, start: datetime | None = None, *, pace: float = 0.0) -> None:
        self._epoch = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
        self._elapsed = 0.0
        self._pace = pace
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        with self._lock:
            return self._elapsed

    def now(self) -> datetime:
        """The virtual wall-clock time (UTC)."""
        with self._lock:
            return self._epoch + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward without sleeping.

        Args:
            seconds: How far; must not be negative.
        """
        if seconds < 0:
            raise ValueError(f"time cannot go backwards ({seconds} s)")
        with self._lock:
            self._elapsed += seconds

    def sleep(self, seconds: float) -> None:
        """Sleep on virtual time: advance it, and pace against real time if asked."""
        seconds = max(0.0, float(seconds))
        self.advance(seconds)
        if self._pace > 0 and seconds > 0:
            time.sleep(seconds * self._pace)

    def __repr__(self) -> str:
        return f"<VirtualClock t={self.monotonic():.3f}s now={self.now().isoformat()}>"
