"""The shape of ``role`` is the provider's business (DESIGN v2 section 3)."""

from __future__ import annotations

from typing import Any

import pytest

import sessionkit
from sessionkit import InvalidConfigError, SessionConfig
from sessionkit.testing import Emulator


def test_the_core_accepts_any_identity_string() -> None:
    for role in ("sa@my-project.iam.gserviceaccount.com", "alice", "arn:aws:iam::1:role/x"):
        assert SessionConfig(role=role).role == role


@pytest.mark.parametrize("backend", ["glue", "emr-serverless", "athena"])
@pytest.mark.parametrize(
    "role",
    [
        "arn:aws:iam::12:role/x",
        "sa@my-project.iam.gserviceaccount.com",
        "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/x",  # Arabic-Indic digits
        "arn:aws:iam::123456789012:role/has space",
    ],
)
def test_aws_backends_need_an_iam_role_arn(backend: str, role: str) -> None:
    emulator = Emulator()
    keywords: dict[str, Any] = emulator.keywords(backend)
    before = emulator.call_count()
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(backend, role=role, poll_policy=emulator.poll_policy(), **keywords)
    assert caught.value.field == "role"
    assert "IAM role ARN" in str(caught.value)
    assert emulator.call_count() == before
