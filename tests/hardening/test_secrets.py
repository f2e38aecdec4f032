"""Secrets never show: DEBUG on every logger, planted secrets, everything captured searched."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import sessionkit
from sessionkit import Endpoint, InvalidConfigError, SessionConfig
from sessionkit.redaction import looks_secret, redact, redact_text
from tests.hardening.helpers import BACKENDS, SECRET_CONF, SECRET_VALUE, setup

PLANTED = [SECRET_VALUE, "s3cr3t value with spaces", "with spaces", SECRET_VALUE + "-2"]
TOKEN = "PLANTED-token-0123456789abcdef"


@pytest.fixture
def debug_everywhere() -> Iterator[list[logging.LogRecord]]:
    """DEBUG on the root, botocore, urllib3 and sessionkit loggers; every record kept."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    names = ["", "botocore", "urllib3", "sessionkit", "boto3"]
    previous = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield records
    logging.getLogger().removeHandler(handler)
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def _search(text: str) -> list[str]:
    return [secret for secret in PLANTED if secret in text]


@pytest.mark.parametrize(
    "key",
    [
        "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net",
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.access.key",
        "spark.hadoop.fs.s3a.session.token",
        "spark.hadoop.fs.azure.sas.container.acct.blob.core.windows.net",
        "spark.ssl.keyPassword",
        "AuthToken",
        "x-aws-proxy-auth",
        "javax.jdo.option.ConnectionPassword",
        "spark.hadoop.google.cloud.auth.service.account.json.keyfile.credential",
    ],
)
def test_secret_keys_are_recognised(key: str) -> None:
    assert looks_secret(key)


@pytest.mark.parametrize("key", ["spark.sql.shuffle.partitions", "Key", "Value", "team"])
def test_ordinary_keys_are_not(key: str) -> None:
    assert not looks_secret(key)


def test_the_whole_value_is_replaced_in_text_json_and_nested_options() -> None:
    conf = "spark.a=1 --conf spark.hadoop.fs.s3a.secret.key=PLANTED-s3cr3t value with spaces"
    assert _search(redact_text(conf)) == []
    assert _search(redact_text(f'{{"--conf": "{conf}"}}')) == []
    assert _search(redact_text(f"{{'spark.x.password': '{SECRET_VALUE}'}}")) == []
    nested = {"DefaultArguments": {"--conf": conf}, "Auth": {"Password": SECRET_VALUE}}
    assert _search(repr(redact(nested))) == []


def test_reprs_and_errors_never_show_a_secret() -> None:
    config = SessionConfig(
        spark_conf=SECRET_CONF,
        options={"DefaultArguments": {"--conf": f"spark.x.password={SECRET_VALUE}"}},
        client_token=TOKEN,
    )
    assert _search(repr(config)) == [] and TOKEN not in repr(config)
    endpoint = Endpoint(url="sc://host", token=TOKEN)
    assert TOKEN not in repr(endpoint) and TOKEN not in str(endpoint)
    with pytest.raises(InvalidConfigError) as caught:
        SessionConfig(spark_conf={**SECRET_CONF, "spark.bad": 5})  # type: ignore[dict-item]
    assert _search(str(caught.value)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_whole_lifecycle_at_debug_shows_no_secret(
    backend: str, debug_everywhere: list[logging.LogRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, keywords = setup(backend)
    seen: list[str] = []
    with sessionkit.open_session(backend, spark_conf=SECRET_CONF, **keywords) as session:
        seen += [repr(session), repr(session.info), repr(dict(session.info.raw))]
        seen.append(repr(dict(session.refresh().raw)))
        seen += [
            repr(info) + repr(dict(info.raw))
            for info in sessionkit.list_sessions(
                backend, **{k: v for k, v in keywords.items() if k != "role"}
            )
        ]
    # A malformed conf error with the secrets in it.
    try:
        sessionkit.open_session(backend, spark_conf={**SECRET_CONF, "bad key\n": "x"}, **keywords)
    except InvalidConfigError as exc:
        seen.append(str(exc))
    # The requests did carry the secrets (the test plants them for real).
    assert any(SECRET_VALUE in repr(call.params) for call in emulator.calls)
    logged = [record.getMessage() for record in debug_everywhere]
    # The bodies were logged (keys visible), only the values are gone.
    assert any("fs.s3a.secret.key" in message for message in logged), "no body was logged"
    captured = capsys.readouterr()
    everything = "\n".join([*seen, *logged, captured.out, captured.err])
    assert _search(everything) == []
