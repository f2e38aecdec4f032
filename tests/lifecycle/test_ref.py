"""SessionRef: a session passed between processes as plain JSON, attached again not owned."""

from __future__ import annotations

import json

import pytest

from sessionkit import InvalidConfigError, SessionRef, SessionState, open_session
from sessionkit.testing import Emulator


@pytest.mark.parametrize("backend", ["glue", "emr-serverless", "athena"])
def test_ref_survives_json_and_attaches_not_owned(emulator: Emulator, backend: str) -> None:
    keywords = emulator.keywords(backend)
    policy = emulator.poll_policy()
    with open_session(
        backend, role=emulator.role(backend), poll_policy=policy, **keywords
    ) as session:
        text = json.dumps(session.ref().to_dict())
        assert "client" not in text
        ref = SessionRef.from_dict(json.loads(text))
        assert ref == session.ref()
        connection = {k: v for k, v in keywords.items() if k not in ref.location}
        with ref.attach(poll_policy=policy, **connection) as again:
            assert again.id == session.id
            assert again.state is SessionState.READY
            assert not again.owned
        # Leaving the attached block did not stop it.
        assert session.refresh().state is SessionState.READY
    assert session.wait_until_stopped().state is SessionState.STOPPED


def test_ref_location_holds_plain_values_only() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        SessionRef(backend="glue", session_id="s", location={"client": object()})
    assert caught.value.field == "location"


def test_from_dict_names_the_missing_field() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        SessionRef.from_dict({"backend": "glue"})
    assert caught.value.field == "session_id"
    with pytest.raises(InvalidConfigError):
        SessionRef.from_dict({"backend": "glue", "session_id": "x", "token": "secret"})


def test_attach_refuses_a_location_that_contradicts_the_ref(emulator: Emulator) -> None:
    ref = SessionRef(backend="emr-serverless", session_id="s1", location={"application_id": "a"})
    with pytest.raises(InvalidConfigError) as caught:
        ref.attach(application_id="b", client=emulator.client("emr-serverless"))
    assert caught.value.field == "application_id"
