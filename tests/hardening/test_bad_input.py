"""Bad input is an InvalidConfigError naming the field, raised before any service call."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

import sessionkit
from sessionkit import DEFAULT_IDLE_TIMEOUT, InvalidConfigError, PollPolicy, SessionConfig
from sessionkit.backends.aws.common import translate_pattern
from tests.hardening.helpers import BACKENDS, SECRET_VALUE, service_calls, setup, starts

IDLE_KEY = {
    "glue": "IdleTimeout",
    "emr-serverless": "idleTimeoutMinutes",
    "athena": "SessionIdleTimeoutInMinutes",
}

# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_durations_take_a_timedelta_or_a_string_with_a_unit(text: Any, expected: Any) -> None:
    assert SessionConfig(idle_timeout=text).idle_timeout == expected
    assert SessionConfig(max_duration=text).max_duration == expected


@pytest.mark.parametrize("field", ["idle_timeout", "max_duration"])
@pytest.mark.parametrize("bare", [90, 1.5, True, 0, 10**20])
def test_a_bare_number_is_refused_with_a_hint_to_add_the_unit(field: str, bare: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(**{field: bare})
    assert caught.value.field == field
    assert "unit" in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "30",
        "m",
        "-5m",
        "5 minutes",
        "\u0663m",
        "\uff13\uff10m",
        "1m1h",
        timedelta(0),
        timedelta.max,
    ],
)
def test_malformed_or_out_of_range_durations_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(idle_timeout=bad)
    assert caught.value.field == "idle_timeout"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_sends_the_default_idle_timeout(backend: str) -> None:
    emulator, keywords = setup(backend)
    sessionkit.open_session(backend, wait=False, **keywords).stop(wait=False)
    assert timedelta(minutes=60) == DEFAULT_IDLE_TIMEOUT
    assert starts(emulator, backend)[0][IDLE_KEY[backend]] == 60


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_idle_timeout_past_the_service_limit_is_refused_before_any_call(backend: str) -> None:
    emulator, keywords = setup(backend)
    before = service_calls(emulator, backend)
    with pytest.raises(InvalidConfigError) as caught:
        # Ten years is past every service's limit (EMR-S 1,000,000 min, Athena 480 min) or
        # past what sessionkit accepts at all.
        sessionkit.open_session(backend, idle_timeout="3651d", **keywords)
    assert caught.value.field == "idle_timeout"
    assert service_calls(emulator, backend) == before


def test_athena_checks_its_own_idle_limit_before_any_call() -> None:
    emulator, keywords = setup("athena")
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", idle_timeout=timedelta(days=400), **keywords)
    assert caught.value.field == "idle_timeout"
    assert "480" in str(caught.value)
    assert service_calls(emulator, "athena") == 0


# ----------------------------------------------------------------------------- flags and policies


@pytest.mark.parametrize("value", ["false", 1, 0, None, "yes"])
def test_public_flags_take_bools_only(value: Any) -> None:
    emulator, keywords = setup("glue")
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("glue", wait=value, **keywords)
    assert caught.value.field == "wait"
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(spark_connect=value)
    assert caught.value.field == "spark_connect"
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(sessionkit_tags=value)
    assert caught.value.field == "sessionkit_tags"
    assert service_calls(emulator, "glue") == 0


def test_attach_with_a_truthy_string_for_stop_on_exit_is_refused_and_stops_nothing() -> None:
    emulator, keywords = setup("glue")
    with sessionkit.open_session("glue", **keywords) as session:
        calls = service_calls(emulator, "glue")
        connection = {k: v for k, v in keywords.items() if k != "role"}
        with pytest.raises(InvalidConfigError) as caught:
            sessionkit.attach_session("glue", session.id, stop_on_exit="false", **connection)
        assert caught.value.field == "stop_on_exit"
        assert service_calls(emulator, "glue") == calls
        with pytest.raises(InvalidConfigError):
            session.stop(wait="no")  # type: ignore[arg-type]
        assert session.refresh().state is sessionkit.SessionState.READY


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": float("nan")}, "first"),
        ({"cap": float("inf")}, "cap"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"budget": "lots"}, "budget"),
        ({"retry_first": 10**400}, "retry_first"),
        ({"now": datetime.now}, "now"),
        ({"clock": 5}, "clock"),
        ({"call_deadline": 0}, "call_deadline"),
        ({"call_deadline": "60"}, "call_deadline"),
        ({"timeout": float("nan")}, "timeout"),
    ],
)
def test_poll_policy_is_validated_at_construction(keywords: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        PollPolicy(**keywords)
    assert caught.value.field == field


def test_poll_policy_has_a_call_deadline_of_a_minute_by_default() -> None:
    assert PollPolicy().call_deadline == timedelta(seconds=60)
    assert PollPolicy(call_deadline=2).call_deadline == timedelta(seconds=2)


# ----------------------------------------------------------------------------- injection


@pytest.mark.parametrize(
    "conf",
    [
        {"spark.app.name": "x --conf spark.hadoop.fs.s3a.endpoint=http://evil"},
        {"spark.app.name": "--conf spark.x=y"},
        {"spark.app.name": "a\tb --jars s3://evil/x.jar"},
        {"spark.a=b": "c"},
        {"spark.a b": "c"},
        {"spark.app.name": "line\nbreak"},
        {"spark.app.name": "nul\x00"},
    ],
)
def test_glue_refuses_conf_that_would_change_its_single_conf_argument(conf: dict[str, str]) -> None:
    emulator, keywords = setup("glue")
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("glue", spark_conf=conf, **keywords)
    assert caught.value.field == "spark_conf"
    assert "evil" not in str(caught.value)
    assert service_calls(emulator, "glue") == 0


def test_a_spark_conf_error_never_echoes_the_value() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(spark_conf={"spark.x.password": SECRET_VALUE + "\x01"})
    assert SECRET_VALUE not in str(caught.value)
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(spark_conf={"spark.x.password": 12345678})  # type: ignore[dict-item]
    assert "12345678" not in str(caught.value)


@pytest.mark.parametrize(
    ("backend", "config", "field"),
    [
        ("glue", {"name": "nightly\x00"}, "name"),
        ("glue", {"name": "lone\ud800"}, "name"),
        ("glue", {"runtime_version": "\uff15.0"}, "runtime_version"),
        ("glue", {"workers": (10**30, "G.1X")}, "workers"),
        ("glue", {"max_dpus": 10**400}, "max_dpus"),
        ("glue", {"role": "arn:aws:iam::" + "\u0661" * 12 + ":role/x"}, "role"),
        ("emr-serverless", {"tags": {"team": "data\x07"}}, "tags"),
        ("emr-serverless", {"client_token": "tok with spaces"}, "client_token"),
        ("athena", {"description": "bell\x07"}, "description"),
        ("glue", {"options": {"Command": "glueetl"}}, "options"),
        ("glue", {"options": {"DefaultArguments": 5}}, "options"),
        ("glue", {"options": {"NumberOfWorkers": 10**30}}, "options"),
        ("glue", {"options": {"Unheard": 1}}, "options"),
        ("emr-serverless", {"options": {"configurationOverrides": []}}, "options"),
        ("emr-serverless", {"options": {"clientToken": "bad token!"}}, "options"),
        ("athena", {"options": {"EngineConfiguration": {"MaxConcurrentDpus": "x"}}}, "options"),
        ("athena", {"options": {"SessionIdleTimeoutInMinutes": 10**6}}, "options"),
    ],
)
def test_values_the_service_model_refuses_never_reach_the_service(
    backend: str, config: dict[str, Any], field: str
) -> None:
    emulator, keywords = setup(backend)
    before = service_calls(emulator, backend)
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(backend, **{**keywords, **config})
    assert caught.value.field == field
    assert service_calls(emulator, backend) == before


@pytest.mark.parametrize("backend", ["emr-serverless", "athena"])
def test_a_none_client_token_option_counts_as_not_given(backend: str) -> None:
    emulator, keywords = setup(backend)
    key = {"emr-serverless": "clientToken", "athena": "ClientRequestToken"}[backend]
    sessionkit.open_session(backend, wait=False, options={key: None}, **keywords).stop(wait=False)
    token = starts(emulator, backend)[0][key]
    assert token != "None"
    assert len(token) >= 32


def test_java_patterns_are_translated_and_the_untranslatable_fail_closed() -> None:
    glue_id = translate_pattern(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*")
    assert glue_id is not None
    assert glue_id("nightly-1") and glue_id("emoji \U0001f600")
    assert not glue_id("nul\x00") and not glue_id("lone\ud800")
    digits = translate_pattern(r"\d{12}")
    assert digits is not None and digits("123456789012") and not digits("\u0661" * 12)
    categories = translate_pattern(r"[\p{L}\p{N}\p{P}]*")
    assert categories is not None and categories("abc1.") and not categories("a b")
    assert translate_pattern(r"\p{Alpha}+x") is None  # checked by nothing: values refused
    possessive = translate_pattern(r"a*+b")
    assert possessive is not None and possessive("aab")
