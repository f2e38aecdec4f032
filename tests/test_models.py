from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest

from sessionkit import (
    Endpoint,
    InvalidConfigError,
    SessionConfig,
    SessionInfo,
    SessionState,
    StatementResult,
    StatementState,
    Usage,
    Workers,
)
from sessionkit.models import looks_secret, to_timedelta


def test_config_is_frozen_and_keyword_only() -> None:
    config = SessionConfig(name="a")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SessionConfig("a")  # type: ignore[misc]
    assert attrs.evolve(config, name="b").name == "b"


def test_durations_take_timedelta_or_seconds() -> None:
    assert SessionConfig(idle_timeout="90s").idle_timeout == timedelta(seconds=90)
    assert SessionConfig(max_duration=timedelta(hours=1)).max_duration == timedelta(hours=1)
    assert to_timedelta(2.5) == timedelta(seconds=2.5)
    # 10**400 is an int no float holds: too large, not an OverflowError.
    for bad in (True, "10", -1, float("inf"), float("nan"), 10**400, 10**20):
        with pytest.raises(InvalidConfigError):
            to_timedelta(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"max_duration": -3}, "max_duration"),
        ({"name": ""}, "name"),
        ({"role": ""}, "role"),
        ({"role": 12}, "role"),
        ({"spark_conf": {"a": 1}}, "spark_conf"),
        ({"spark_conf": ["a=b"]}, "spark_conf"),
        ({"tags": {"": "x"}}, "tags"),
        ({"workers": 3}, "workers"),
        ({"workers": (0, "G.1X")}, "workers"),
        ({"max_dpus": 0}, "max_dpus"),
        ({"max_dpus": True}, "max_dpus"),
        ({"options": {1: "x"}}, "options"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_workers_from_tuple_or_mapping() -> None:
    assert SessionConfig(workers=(2, "G.1X")).workers == Workers(count=2, type="G.1X")
    assert SessionConfig(workers={"count": 3, "type": "G.2X"}).workers == Workers(
        count=3, type="G.2X"
    )


def test_given_lists_only_set_fields() -> None:
    config = SessionConfig(name="n", tags={}, spark_conf={"a": "b"}, options={"X": 1})
    assert config.given() == {"name": "n", "spark_conf": {"a": "b"}}


def test_secret_conf_values_are_redacted_in_repr() -> None:
    config = SessionConfig(
        spark_conf={"spark.hadoop.fs.s3a.secret.key": "hunter2", "spark.app": "x"},
        options={"ApiToken": "tok123"},
        client_token="idem-789",
    )
    text = repr(config) + str(config)
    assert "hunter2" not in text and "tok123" not in text and "idem-789" not in text
    assert "spark.app" in text
    assert config.spark_conf["spark.hadoop.fs.s3a.secret.key"] == "hunter2"
    assert looks_secret("spark.hadoop.fs.s3a.access.key")
    assert looks_secret("password")
    assert not looks_secret("spark.sql.shuffle.partitions")


def test_session_info_is_timezone_aware_and_raw_read_only() -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    info = SessionInfo(
        id="s",
        backend="glue",
        state=SessionState.READY,
        native_state="READY",
        created_at=naive,
        raw={"Session": {"Tags": ["a"]}},
    )
    assert info.created_at == naive.replace(tzinfo=timezone.utc)
    with pytest.raises(TypeError):
        info.raw["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        info.raw["Session"]["Tags"] = []  # type: ignore[index]
    assert "raw" not in repr(info)
    assert hash(info) == hash(attrs.evolve(info))


def test_usage_fields_are_optional() -> None:
    usage = Usage(vcpu_hours=1.5, billed=Usage(vcpu_hours=2.0))
    assert usage.dpu_seconds is None
    assert usage.billed is not None and usage.billed.vcpu_hours == 2.0


def test_endpoint_hides_its_token() -> None:
    expires = datetime(2026, 1, 1, tzinfo=timezone.utc)
    endpoint = Endpoint(
        url="sc://host.example:443/;use_ssl=true", token="SECRET", expires_at=expires
    )
    assert "SECRET" not in repr(endpoint)
    assert "SECRET" not in str(endpoint)
    assert "SECRET" not in f"{endpoint}"
    assert endpoint.spark_connect_url == "sc://host.example:443/;use_ssl=true;token=SECRET"
    assert endpoint.expires_within(timedelta(minutes=1), now=expires - timedelta(seconds=30))
    assert not endpoint.expires_within(timedelta(minutes=1), now=expires - timedelta(minutes=5))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sc://localhost:15002", "sc://localhost:15002/;token=T"),
        ("https://abc.example", "sc://abc.example:443/;use_ssl=true;token=T"),
        ("https://abc.example:8443/path", "sc://abc.example:8443/;use_ssl=true;token=T"),
        ("sc://h:1/;use_ssl=true;token=OLD", "sc://h:1/;use_ssl=true;token=OLD"),
    ],
)
def test_spark_connect_url_forms(url: str, expected: str) -> None:
    assert Endpoint(url=url, token="T").spark_connect_url == expected


def test_statement_result_keeps_a_list_traceback() -> None:
    result = StatementResult(id="1", state=StatementState.FAILED, traceback=("a", "b"))
    assert result.traceback == ["a", "b"]
