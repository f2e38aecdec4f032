"""How the emulated Livy server is reached: an ``httpx.Client`` bound to it, its URL, a user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from sessionkit.testing.base import HttpRoute

if TYPE_CHECKING:
    import httpx

    from sessionkit.testing.emulator import Emulator
    from sessionkit.testing.livy.service import LivyService

__all__ = ["HTTP_ROUTES", "URL", "client", "emulator_client", "keywords", "livy", "role"]

#: The base URL of the emulated server (nothing listens there; the transport answers).
URL = "http://livy.emulator.invalid"

#: Where the served emulator sends Livy requests: under ``/livy/``, with that base path removed.
HTTP_ROUTES: Mapping[str, HttpRoute] = {
    "/livy/": HttpRoute(
        answer="sessionkit.testing.livy.service:answer",
        strip="/livy",
        drops=(
            "sessionkit.testing.livy.service:ConnectionRefused",
            "sessionkit.testing.livy.service:AnswerLost",
        ),
    ),
}


def client(emulator: Emulator) -> httpx.Client:
    """An ``httpx.Client`` whose requests the emulated Livy server answers, in process."""
    import httpx

    from sessionkit.testing.livy.service import transport

    return httpx.Client(transport=transport(emulator), base_url=URL)


def emulator_client(emulator: Emulator, service: str) -> httpx.Client:
    """What ``emulator.client("livy")`` returns: :func:`client` (``service`` is ``"livy"``)."""
    return client(emulator)


def livy(emulator: Emulator) -> LivyService:
    """The emulated Livy server, typed: ``emulator.livy``."""
    return cast("LivyService", emulator.service("livy"))


def keywords(emulator: Emulator, location: str) -> dict[str, Any]:
    """The client and the URL (one Livy server holds every session; ``location`` is unused)."""
    return {"client": client(emulator), "url": URL}


def role(emulator: Emulator) -> str:
    """A proxy user the emulated server accepts (it accepts any)."""
    return "sessionkit"
