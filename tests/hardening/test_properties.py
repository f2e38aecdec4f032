"""Property tests: any bad value of any field or keyword is an InvalidConfigError, no call made.

Every SessionConfig field and every open_session / attach_session / list_sessions keyword is
given wrong types, unicode, empty, huge, negative, zero, NaN/inf and bool-for-int values.
Whatever is accepted must be accepted cleanly; whatever is refused must be an
InvalidConfigError with ``.field`` set; in both cases no request may reach the service before
the check (the emulator's call log is compared).
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionkit
from sessionkit import InvalidConfigError, SessionConfig, SessionKitError
from sessionkit.testing import Emulator

BAD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(
        ["", " ", "\x00", "\ud800", "\uff13\uff10m", "\u0663m", "1e9d", "-1s", "0s", "inf"]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(object()),
)

FIELDS = [a.name for a in attrs.fields(SessionConfig)]
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=BAD)
def test_every_config_field_accepts_cleanly_or_names_itself(field: str, value: Any) -> None:
    try:
        SessionConfig(**{field: value})
    except InvalidConfigError as exc:
        assert exc.field
    # Anything else (TypeError, OverflowError, ...) fails the test.


_EMULATOR = Emulator()
_KEYWORDS = _EMULATOR.keywords("glue")
_POLICY = _EMULATOR.poll_policy()
_ROLE = _EMULATOR.role("glue")


def _calls() -> int:
    return _EMULATOR.call_count("glue", "CreateSession")


@SETTINGS
@given(
    keyword=st.sampled_from([*FIELDS, "wait", "timeout", "poll_policy", "region", "endpoint_url"]),
    value=BAD,
)
def test_open_session_refuses_bad_keywords_before_any_start(keyword: str, value: Any) -> None:
    before = _calls()
    # No wait for READY: a valid poll_policy=None is the real-time default, whose wait would
    # never see the emulator's virtual clock move.
    keywords: dict[str, Any] = {"role": _ROLE, **_KEYWORDS, "poll_policy": _POLICY, "wait": False}
    keywords[keyword] = value
    try:
        session = sessionkit.open_session("glue", **keywords)
    except InvalidConfigError as exc:
        assert exc.field
        assert _calls() == before
        return
    except SessionKitError:
        return  # a service refusal after the checks (a started session is then stopped)
    session.stop(wait=False)


@SETTINGS
@given(
    keyword=st.sampled_from(["session_id", "stop_on_exit", "poll_policy", "application_id"]),
    value=BAD,
)
def test_attach_session_refuses_bad_keywords_before_any_call(keyword: str, value: Any) -> None:
    emulator = Emulator()
    keywords = emulator.keywords("emr-serverless")
    arguments: dict[str, Any] = {"session_id": "s1", "poll_policy": emulator.poll_policy()}
    arguments.update(keywords)
    arguments[keyword] = value
    session_id = arguments.pop("session_id")
    try:
        sessionkit.attach_session("emr-serverless", session_id, **arguments)
    except InvalidConfigError as exc:
        assert exc.field
        assert emulator.call_count("emr-serverless", "GetSession") == 0
    except SessionKitError:
        pass  # well-formed but unknown: the service said so, typed


@SETTINGS
@given(keyword=st.sampled_from(["states", "poll_policy", "work_group"]), value=BAD)
def test_list_sessions_refuses_bad_keywords_before_any_call(keyword: str, value: Any) -> None:
    emulator = Emulator()
    arguments: dict[str, Any] = {
        **emulator.keywords("athena"),
        "poll_policy": emulator.poll_policy(),
    }
    arguments[keyword] = value
    try:
        list(sessionkit.list_sessions("athena", **arguments))
    except InvalidConfigError as exc:
        assert exc.field
        assert emulator.call_count("athena", "ListSessions") == 0
    except SessionKitError:
        pass
