"""``--emulator URL``: a served emulator (``sessionkit emulator serve``) behind any command.

Unlike ``--local``, the emulator lives in its own process, so ``open``, ``status`` and ``stop``
run as separate commands see the same sessions. The keywords that reach a backend on it come
from :func:`sessionkit.testing.server.connect`, and the wall clock the commands read (the age
``sweep`` compares, token expiry) is the served emulator's own, which its control endpoint can
move forward.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sessionkit.cli.backends import UsageError

if TYPE_CHECKING:
    from sessionkit.waiting import PollPolicy

__all__ = ["ENV_VAR", "Remote", "url_from"]

#: The environment variable that points every command at a served emulator.
ENV_VAR = "SESSIONKIT_EMULATOR_URL"

#: How long a look at the served emulator's clock may take, in seconds.
_CLOCK_TIMEOUT = 10.0


def url_from(value: str | None) -> str | None:
    """The served emulator's URL: the ``--emulator`` value, else the environment variable."""
    url = value if value is not None else os.environ.get(ENV_VAR)
    if url is None or not url.strip():
        return None
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"--emulator: expected the URL 'sessionkit emulator serve' printed "
            f"(http://127.0.0.1:PORT), got {url!r}"
        )
    return url


class Remote:
    """A served emulator reached at ``url``.

    Args:
        url: Its base URL, e.g. ``http://127.0.0.1:49152``.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"<Remote emulator {self.url}>"

    def connect(self, backend: str) -> tuple[dict[str, Any], str]:
        """The keywords that reach ``backend`` on the served emulator, and a role it accepts.

        Raises:
            UsageError: When nothing answers at the URL or it does not emulate ``backend``.
        """
        from sessionkit.testing.server import connect

        try:
            return connect(self.url, backend)
        except LookupError as exc:
            raise UsageError(f"--emulator {self.url}: {exc}") from exc
        except OSError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UsageError(
                f"--emulator {self.url}: no emulator answers there ({reason}); start one with "
                "'sessionkit emulator serve'"
            ) from exc

    def now(self) -> datetime:
        """The served emulator's wall clock (UTC), read from its control endpoint."""
        import urllib.request

        with urllib.request.urlopen(
            f"{self.url}/_sessionkit/health", timeout=_CLOCK_TIMEOUT
        ) as response:
            answer = json.loads(response.read())
        value = datetime.fromisoformat(str(answer["now"]))
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)

    def poll_policy(self, base: PollPolicy) -> PollPolicy:
        """``base`` reading the served emulator's wall clock (real time still paces the polls)."""
        return base.on(base.clock, base.sleep, self.now)
