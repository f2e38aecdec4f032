"""Provider packages hand their SDK's logger roots to the redaction; the core lists none."""

from __future__ import annotations

import logging

import pytest

from sessionkit.redaction import REDACTED, install_log_redaction


def test_a_root_a_provider_adds_is_redacted_below_it_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    existing = logging.getLogger("sessionkit_test_sdk.transport")
    install_log_redaction(("sessionkit_test_sdk",))
    later = logging.getLogger("sessionkit_test_sdk.made_later")
    install_log_redaction()  # again, as a backend does: covers loggers made since
    with caplog.at_level(logging.DEBUG):
        existing.debug("sending %s", "spark.hadoop.fs.s3a.secret.key=hunter2-secret")
        later.debug("sending %s", '{"AuthToken": "hunter2-secret"}')
    assert len(caplog.records) == 2
    assert all("hunter2" not in r.getMessage() for r in caplog.records)
    assert all(REDACTED in r.getMessage() for r in caplog.records)


def test_a_logger_outside_every_root_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("sessionkit_unrelated_library").debug("token=visible")
    assert caplog.records[0].getMessage() == "token=visible"
