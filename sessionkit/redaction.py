"""One redaction rule for every repr, log record, error message and CLI line.

A key *looks secret* when it names a password, token, credential, secret, signature, SAS or an
access, account, private, session or API key (``spark.hadoop.fs.s3a.secret.key``,
``spark.hadoop.fs.<scheme>.account.key.<account>``, ``AuthToken``...). The
whole value under such a key is replaced by ``***``, never a prefix: a value with a space in it
must not leak its tail.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "install_log_redaction",
    "looks_secret",
    "redact",
    "redact_text",
]

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd)?|pwd|secret|token|credential|signature|auth"
    r"|(access|account|private|session|api|master|encryption|client|sas)[._-]?key"
    r"|(^|[._:-])sas([._:-]|$)|sas[._-]?token|connection[._-]?string|\bcookie)",
    re.ASCII,
)


#: sessionkit's own ownership nonce tag (a random id that proves which start made a session,
#: public on the session like any tag): named "token", but no secret, and the proof must stay
#: readable on ``SessionInfo.tags``.
_NOT_SECRET = frozenset({"sessionkit:start-token", "sessionkit-start-token"})


def looks_secret(key: object) -> bool:
    """Tell whether a configuration key names a secret (password, token, access key, ...).

    Args:
        key: A Spark conf key, option name or record member name.

    Returns:
        True if values under this key must never be shown.
    """
    return isinstance(key, str) and key not in _NOT_SECRET and bool(_SECRET_KEY.search(key))


# A key=value pair of a Spark property in free text: the value runs to the end of the text, a
# quote, or the next " --" option, so a value containing spaces is replaced whole.
_CONF_PAIR = re.compile(
    r"(?P<key>[A-Za-z0-9_.:\-]{1,300})=(?P<value>(?:(?!\s+--)[^'\"\n,}&;])+)", re.ASCII
)
# "key": "value" (JSON) and 'key': 'value' (Python repr) pairs.
_QUOTED_PAIR = re.compile(
    r"(?P<q>[\"'])(?P<key>[^\"'\\]{1,300})(?P=q)(?P<sep>\s*:\s*)"
    r"(?P<vq>[\"'])(?P<value>(?:[^\\]|\\.)*?)(?P=vq)"
)
# "key": value without quotes (numbers, JSON literals).
_BARE_PAIR = re.compile(
    r"(?P<q>[\"'])(?P<key>[^\"'\\]{1,300})(?P=q)(?P<sep>\s*:\s*)(?P<value>[^\s,}\]\"'{\[]+)"
)


def _quoted(match: re.Match[str]) -> str:
    if not looks_secret(match["key"]):
        return match[0]
    q, vq = match["q"], match["vq"]
    return f"{q}{match['key']}{q}{match['sep']}{vq}{REDACTED}{vq}"


def _bare(match: re.Match[str]) -> str:
    if not looks_secret(match["key"]):
        return match[0]
    q = match["q"]
    return f"{q}{match['key']}{q}{match['sep']}{REDACTED}"


def _conf(match: re.Match[str]) -> str:
    return f"{match['key']}={REDACTED}" if looks_secret(match["key"]) else match[0]


def redact_text(text: str) -> str:
    """Replace secret values in free text (``"key": "value"`` pairs and ``key=value`` pairs).

    Args:
        text: Any text: a log message, an HTTP body, an error message.

    Returns:
        The text with every value under a secret-looking key replaced by ``***``.
    """
    if not isinstance(text, str):
        return text
    text = _QUOTED_PAIR.sub(_quoted, text)
    text = _BARE_PAIR.sub(_bare, text)
    return _CONF_PAIR.sub(_conf, text)


def redact(value: Any) -> Any:
    """Return a deep copy of ``value`` with every secret replaced by ``***``.

    Mappings have the values of secret-looking keys replaced (at any depth, in lists too);
    strings (a ``--conf`` argument string, say) have their ``key=value`` pairs redacted.

    Args:
        value: A mapping, list, string or scalar.

    Returns:
        The redacted copy (mappings become dicts, tuples stay tuples).
    """
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if looks_secret(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites log records so that no secret value reaches a handler; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its redacted text (arguments included)."""
        try:
            message = record.getMessage()
        except Exception:  # a broken record is its logger's to report, not ours
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_FILTER = RedactingFilter()

#: Loggers whose records can carry request or response bodies: sessionkit's own, the generic
#: HTTP stack's, and whatever each provider package adds through :func:`install_log_redaction`.
_ROOTS: set[str] = {"sessionkit", "urllib3"}
_ROOTS_LOCK = threading.Lock()


def install_log_redaction(roots: Iterable[str] = ()) -> None:
    """Attach the redacting filter to sessionkit's and the SDKs' loggers (idempotent).

    A logger filter applies only to records logged on that very logger, so the filter goes on
    each root and on every existing logger below them; calling this again after an SDK created
    more loggers covers those too.

    Args:
        roots: Top-level logger names of a provider's SDK, added (for good) to the roots
            covered; each provider package passes its own when it builds a backend, so the core
            never needs to know them.
    """
    with _ROOTS_LOCK:
        _ROOTS.update(roots)
        covered = frozenset(_ROOTS)
    names = set(covered)
    names.update(
        name for name in list(logging.root.manager.loggerDict) if name.split(".", 1)[0] in covered
    )
    for name in names:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
