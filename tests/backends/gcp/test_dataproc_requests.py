"""Exact requests of the dataproc backend: every field, every rejection (on the emulator)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

import sessionkit
from sessionkit.backends.base import created_by
from sessionkit.errors import InvalidConfigError
from sessionkit.models import SessionConfig
from sessionkit.testing import Emulator


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def keywords(emulator: Emulator) -> dict[str, Any]:
    return {
        **emulator.keywords("dataproc", location="requests"),
        "poll_policy": emulator.poll_policy(),
    }


def _create(emulator: Emulator, keywords: dict[str, Any], **config: Any) -> dict[str, Any]:
    """Open without waiting; return the CreateSession call's query and body as sent."""
    sessionkit.open_session("dataproc", wait=False, **keywords, **config)
    calls = [c for c in emulator.calls if c.operation == "CreateSession"]
    assert len(calls) == 1
    return dict(calls[0].params)


def _rejected(emulator: Emulator, keywords: dict[str, Any], field: str, **config: Any) -> str:
    before = emulator.call_count()
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("dataproc", **keywords, **config)
    assert caught.value.field == field
    assert emulator.call_count() == before, "a rejected configuration must make no call"
    return str(caught.value)


# ----------------------------------------------------------------------------- what is sent


def test_defaults(emulator: Emulator, keywords: dict[str, Any]) -> None:
    """A bare open sends a generated id, a request id, sessionkit's idle TTL and its labels."""
    sent = _create(emulator, keywords)
    query, body = sent["query"], sent["body"]
    assert sent["project"] == keywords["project"]
    assert sent["region"] == "europe-west1"
    assert re.fullmatch(r"sessionkit-[0-9a-f]{32}", query["sessionId"])
    assert re.fullmatch(r"[0-9a-f-]{36}", query["requestId"])
    execution = body["environmentConfig"]["executionConfig"]
    assert execution == {"idleTtl": "3600s"}  # 60 minutes, not the service's own default
    assert "runtimeConfig" not in body
    assert "sparkConnectSession" not in body
    labels = body["labels"]
    assert set(labels) == {
        "sessionkit-created-by",
        "sessionkit-expires-at",
        "sessionkit-start-token",
    }
    assert re.fullmatch(r"[a-z0-9_-]{1,63}", labels["sessionkit-created-by"])
    # The same stable id as on every backend: no user or host name in the clear.
    assert labels["sessionkit-created-by"] == created_by()
    assert re.fullmatch(r"[0-9a-f]{32}", labels["sessionkit-start-token"])
    # Expires at now + idle timeout x 3, in epoch seconds.
    now = emulator.clock.now().timestamp()
    assert abs(int(labels["sessionkit-expires-at"]) - (now + 3 * 3600)) <= 5


def test_every_field(emulator: Emulator, keywords: dict[str, Any]) -> None:
    """Each portable field lands where DESIGN section 3 says."""
    sent = _create(
        emulator,
        keywords,
        name="my-session-1",
        client_token="token_ABC-123",
        idle_timeout=timedelta(minutes=30),
        max_duration=timedelta(hours=2),
        spark_conf={"spark.sql.shuffle.partitions": "64"},
        runtime_version="2.3",
        spark_connect=True,
        tags={"team": "data", "cost-center": "c42"},
    )
    query, body = sent["query"], sent["body"]
    assert query["sessionId"] == "my-session-1"
    assert query["requestId"] == "token_ABC-123"
    assert body["environmentConfig"]["executionConfig"] == {"idleTtl": "1800s", "ttl": "7200s"}
    assert body["runtimeConfig"] == {
        "version": "2.3",
        "properties": {"spark.sql.shuffle.partitions": "64"},
    }
    assert body["sparkConnectSession"] == {}
    assert body["labels"]["team"] == "data"
    assert body["labels"]["cost-center"] == "c42"
    # With a max duration, the expiry label follows it.
    now = emulator.clock.now().timestamp()
    assert abs(int(body["labels"]["sessionkit-expires-at"]) - (now + 7200)) <= 5


def test_durations_round_up_to_whole_seconds(emulator: Emulator, keywords: dict[str, Any]) -> None:
    sent = _create(emulator, keywords, idle_timeout=timedelta(minutes=10, microseconds=1))
    assert sent["body"]["environmentConfig"]["executionConfig"]["idleTtl"] == "601s"


def test_options_merge_into_the_session_message(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    """options are Session fields (proto names), merged next to the portable fields."""
    sent = _create(
        emulator,
        keywords,
        spark_conf={"spark.executor.cores": "4"},
        options={
            "environment_config": {
                "execution_config": {"subnetwork_uri": "projects/p/regions/r/subnetworks/s"}
            },
            "runtime_config": {"container_image": "gcr.io/p/image:1"},
        },
    )
    body = sent["body"]
    assert body["environmentConfig"]["executionConfig"] == {
        "idleTtl": "3600s",
        "subnetworkUri": "projects/p/regions/r/subnetworks/s",
    }
    assert body["runtimeConfig"] == {
        "containerImage": "gcr.io/p/image:1",
        "properties": {"spark.executor.cores": "4"},
    }


def test_role_is_the_service_account(emulator: Emulator, keywords: dict[str, Any]) -> None:
    sent = _create(emulator, keywords, role="runner@my-project.iam.gserviceaccount.com")
    execution = sent["body"]["environmentConfig"]["executionConfig"]
    assert execution["serviceAccount"] == "runner@my-project.iam.gserviceaccount.com"


def test_sessionkit_labels_can_be_turned_off_where_the_core_allows(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    """Only the ownership nonce stays when the caller turns sessionkit's tags off."""
    if "sessionkit_tags" not in attrs.fields_dict(SessionConfig):
        # The switch is a core field; until it exists the labels are always sent.
        sent = _create(emulator, keywords)
        assert "sessionkit-created-by" in sent["body"]["labels"]
        return
    sent = _create(emulator, keywords, sessionkit_tags=False)
    assert set(sent["body"]["labels"]) == {"sessionkit-start-token"}


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "name",
    ["abc", "x" * 64, "Upper-Case", "under_score", "dots.in.it", "spaces here"],
)
def test_bad_session_ids_are_rejected(
    emulator: Emulator, keywords: dict[str, Any], name: str
) -> None:
    message = _rejected(emulator, keywords, "name", name=name)
    assert "4-63" in message


def test_bad_client_token_is_rejected(emulator: Emulator, keywords: dict[str, Any]) -> None:
    _rejected(emulator, keywords, "client_token", client_token="has spaces")
    _rejected(emulator, keywords, "client_token", client_token="x" * 41)


@pytest.mark.parametrize("field", ["idle_timeout", "max_duration"])
@pytest.mark.parametrize(
    "value",
    [
        timedelta(minutes=9),
        timedelta(seconds=599),
        timedelta(days=14, seconds=1),
        timedelta(days=15),
    ],
)
def test_ttls_outside_10_minutes_to_14_days_are_rejected(
    emulator: Emulator, keywords: dict[str, Any], field: str, value: timedelta
) -> None:
    message = _rejected(emulator, keywords, field, **{field: value})
    assert "10 minutes and 14 days" in message


@pytest.mark.parametrize("value", [timedelta(minutes=10), timedelta(days=14)])
def test_ttl_bounds_are_inclusive(
    emulator: Emulator, keywords: dict[str, Any], value: timedelta
) -> None:
    sent = _create(emulator, keywords, max_duration=value)
    assert sent["body"]["environmentConfig"]["executionConfig"]["ttl"]


@pytest.mark.parametrize(
    "tags",
    [
        {"Team": "data"},
        {"1team": "data"},
        {"team": "Data"},
        {"team": "x" * 64},
        {"k" * 64: "v"},
        {"te:am": "data"},
    ],
)
def test_bad_labels_are_rejected(
    emulator: Emulator, keywords: dict[str, Any], tags: dict[str, str]
) -> None:
    _rejected(emulator, keywords, "tags", tags=tags)


def test_too_many_labels_counting_sessionkits_own(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    # 29 of the caller's plus sessionkit's three is the limit of 32.
    _create(emulator, keywords, tags={f"k{i}": "v" for i in range(29)})
    message = _rejected(emulator, keywords, "tags", tags={f"k{i}": "v" for i in range(30)})
    assert "32" in message


def test_empty_label_value_is_allowed(emulator: Emulator, keywords: dict[str, Any]) -> None:
    sent = _create(emulator, keywords, tags={"flag": ""})
    assert sent["body"]["labels"]["flag"] == ""


@pytest.mark.parametrize(
    "role",
    ["arn:aws:iam::123456789012:role/Glue", "not-an-email", "someone@example.com"],
)
def test_role_must_be_a_service_account(
    emulator: Emulator, keywords: dict[str, Any], role: str
) -> None:
    _rejected(emulator, keywords, "role", role=role)


@pytest.mark.parametrize(
    "options",
    [
        {"no_such_field": 1},
        {"environment_config": {"execution_config": {"bogus": True}}},
        {"runtime_config": {"version": 3.1}},
    ],
)
def test_options_outside_the_session_message_are_rejected(
    emulator: Emulator, keywords: dict[str, Any], options: dict[str, Any]
) -> None:
    _rejected(emulator, keywords, "options", options=options)


def test_options_conflicting_with_a_field_are_rejected(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    message = _rejected(
        emulator,
        keywords,
        "options",
        runtime_version="2.3",
        options={"runtime_config": {"version": "2.2"}},
    )
    assert "runtime_version" in message


def test_options_labels_follow_the_label_rules(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    _rejected(emulator, keywords, "options", options={"labels": {"Bad": "x"}})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "a description"),
        ("workers", sessionkit.Workers(count=2, type="standard")),
        ("max_dpus", 4.0),
    ],
)
def test_unsupported_fields_are_rejected(
    emulator: Emulator, keywords: dict[str, Any], field: str, value: Any
) -> None:
    message = _rejected(emulator, keywords, field, **{field: value})
    assert "dataproc" in message


@pytest.mark.parametrize("missing", ["project", "region"])
def test_open_needs_project_and_region(
    emulator: Emulator, keywords: dict[str, Any], missing: str
) -> None:
    del keywords[missing]
    _rejected(emulator, keywords, missing)


@pytest.mark.parametrize(
    ("field", "value"),
    [("project", "My Project"), ("project", "ab"), ("region", "Europe West 1"), ("region", "x")],
)
def test_malformed_location_is_rejected(
    emulator: Emulator, keywords: dict[str, Any], field: str, value: str
) -> None:
    keywords[field] = value
    _rejected(emulator, keywords, field)


def test_client_of_the_wrong_kind_is_rejected(emulator: Emulator, keywords: dict[str, Any]) -> None:
    keywords["client"] = object()
    _rejected(emulator, keywords, "client")


def test_expiry_uses_the_policy_clock(emulator: Emulator, keywords: dict[str, Any]) -> None:
    """The expires-at label is computed on the caller's clock (here the virtual one)."""
    emulator.clock.advance(86400)
    sent = _create(emulator, keywords)
    expected = emulator.clock.now().timestamp() + 3 * 3600
    assert abs(int(sent["body"]["labels"]["sessionkit-expires-at"]) - expected) <= 5
    assert datetime.fromtimestamp(expected, timezone.utc) > datetime.now(timezone.utc)


def test_rejected_options_never_echo_a_value(emulator: Emulator, keywords: dict[str, Any]) -> None:
    message = _rejected(
        emulator,
        keywords,
        "options",
        options={"runtime_config": {"properties": {"spark.hadoop.fs.s3a.secret.key": 987654321}}},
    )
    assert "987654321" not in message
