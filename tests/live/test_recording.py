"""The live suite's recorder, checked offline on the emulator (no AWS account needed)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import sessionkit
from sessionkit.testing import Emulator
from tests.live.recording import GENERATED, SECRET, Recorder, differences


def _record(seed: int, **config: Any) -> dict[str, Any]:
    emulator = Emulator(seed=seed)
    keywords = {**emulator.keywords("emr"), "poll_policy": emulator.poll_policy()}
    recorder = Recorder("emr")
    recorder.watch(keywords["client"])
    with sessionkit.open_session("emr", **keywords, **config) as session:
        session.endpoint()
    return recorder.as_dict()


def test_requests_and_answers_are_recorded_with_secrets_replaced() -> None:
    recording = _record(1, spark_conf={"spark.hadoop.fs.s3a.secret.key": "hunter2"})
    operations = [call["operation"] for call in recording["calls"]]
    assert operations[:2] == ["DescribeCluster", "StartSession"]
    assert "GetSessionEndpoint" in operations and operations[-1] == "TerminateSession"
    start = next(c for c in recording["calls"] if c["operation"] == "StartSession")
    assert start["params"]["ClientRequestToken"] in (SECRET, GENERATED)
    assert start["params"]["ClusterId"] == GENERATED
    (spark_defaults,) = start["params"]["EngineConfigurations"]
    assert spark_defaults["Properties"] == {"spark.hadoop.fs.s3a.secret.key": SECRET}
    endpoint = next(c for c in recording["calls"] if c["operation"] == "GetSessionEndpoint")
    assert endpoint["answer"]["AuthToken"] == SECRET
    assert endpoint["answer"]["Credentials"]["UsernamePassword"]["Password"] == SECRET
    assert endpoint["status"] == 200
    assert "hunter2" not in json.dumps(recording)


def test_two_runs_of_the_same_code_compare_equal_and_a_change_shows(tmp_path: Path) -> None:
    first, second = _record(1), _record(2)
    assert differences(first, second) == []
    changed = _record(3, idle_timeout=__import__("datetime").timedelta(minutes=5))
    found = differences(first, changed)
    assert any("SessionIdleTimeoutInMinutes=5" in item for item in found)
    recorder = Recorder("emr")
    recorder.calls = first["calls"]
    path = recorder.write(tmp_path)
    assert differences(json.loads(path.read_text()), first) == []


def test_spark_connect_headers_are_recorded_with_their_names_only() -> None:
    pytest.importorskip("grpc")
    from sessionkit import Endpoint, spark_connect

    recorder = Recorder("emr")
    endpoint = Endpoint(
        url="https://h.example",
        token="TOKEN",
        headers={"x-aws-proxy-auth": "TOKEN", "authorization": "s-1", "x-emr-password": "PW"},
        recipe="{address}/;use_ssl=true;x-aws-proxy-port=15002;x-aws-force-h2=true;"
        "x-aws-proxy-auth={token}",
    )
    with recorder.spark_headers():
        spark_connect.channel_url(endpoint)
        interceptor = spark_connect.header_interceptor(lambda: endpoint.headers)
    details = SimpleNamespace(
        method="/m",
        timeout=None,
        metadata=[("x-aws-proxy-port", "15002")],
        credentials=None,
        wait_for_ready=None,
        compression=None,
    )
    interceptor.intercept_unary_unary(lambda d, r: None, details, None)
    (entry,) = recorder.spark
    assert entry["headers"] == {
        "x-aws-proxy-auth": SECRET,
        "authorization": SECRET,
        "x-emr-password": SECRET,
    }
    assert {"name": "x-aws-proxy-port", "value": "15002"} in entry["url_params"]
    assert "TOKEN" not in json.dumps(entry) and "PW" not in json.dumps(entry)
    assert spark_connect.header_interceptor is not interceptor  # restored after the block
