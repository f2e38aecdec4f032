"""``--local``: a process-local emulator behind any backend it emulates.

The emulator lives for the duration of one command: ``open --local`` opens a session and
exits, and the session goes with the process, so ``status``/``stop --local`` of an id only find
sessions opened by the same command (``run --local`` opens, runs and stops in one command).
The wiring (client keywords, a fresh location, an identity) is the emulator's own table:
``Emulator.keywords(backend)`` and ``Emulator.role(backend)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator
    from sessionkit.waiting import PollPolicy

__all__ = ["HINT", "Local", "current", "local", "reset"]

HINT = (
    "--local sessions live in an emulator that ends with the command that opened them; "
    "'sessionkit run --local' opens, runs and stops in one command"
)


class Local:
    """The process-local emulator behind ``--local``, and the locations made on it."""

    def __init__(self) -> None:
        from sessionkit.testing.emulator import Emulator

        self.emulator: Emulator = Emulator()
        self._keywords: dict[str, dict[str, Any]] = {}

    def keywords(self, backend: str) -> dict[str, Any]:
        """The backend's connection and location keywords on the emulator (made once)."""
        if backend not in self._keywords:
            self._keywords[backend] = self.emulator.keywords(backend)
        return dict(self._keywords[backend])

    def role(self, backend: str) -> str:
        """An identity the emulated backend accepts."""
        return self.emulator.role(backend)

    def poll_policy(self) -> PollPolicy:
        """The default policy on the emulator's virtual clock."""
        return self.emulator.poll_policy()


_local: Local | None = None


def local() -> Local:
    """The command's emulator, made on first use."""
    global _local
    if _local is None:
        _local = Local()
    return _local


def reset() -> None:
    """Forget the emulator (the next ``--local`` command gets a fresh one)."""
    global _local
    _local = None


def current() -> Local | None:
    """The emulator, if a ``--local`` command made one."""
    return _local
