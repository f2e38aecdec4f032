from __future__ import annotations

import botocore.exceptions
import pytest

import sessionkit
import sessionkit.errors as errors
from sessionkit.backends.aws.common import translate_error


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": "msg"},
            "ResponseMetadata": {"RequestId": "req-1", "HTTPStatusCode": status},
        },
        "GetSession",
    )


def test_tree_and_builtins() -> None:
    assert issubclass(errors.BackendNotFoundError, LookupError)
    assert issubclass(errors.InvalidConfigError, ValueError)
    assert issubclass(errors.WaitTimeoutError, TimeoutError)
    assert issubclass(errors.ThrottledError, errors.ServiceError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SessionKitError)
        assert getattr(sessionkit, name) is cls


@pytest.mark.parametrize(
    ("code", "status", "kind", "retryable"),
    [
        ("ThrottlingException", 400, errors.ThrottledError, True),
        ("TooManyRequestsException", 400, errors.ThrottledError, True),
        ("Whatever", 429, errors.ThrottledError, True),
        ("InternalServiceException", 500, errors.ServiceError, True),
        ("ServiceUnavailable", 503, errors.ServiceError, True),
        ("EntityNotFoundException", 400, errors.ServiceError, False),
        ("AccessDeniedException", 400, errors.ServiceError, False),
    ],
)
def test_client_errors(code: str, status: int, kind: type, retryable: bool) -> None:
    error = translate_error(_client_error(code, status), operation="GetSession")
    assert type(error) is kind
    assert isinstance(error, errors.ServiceError)
    assert error.code == code
    assert error.request_id == "req-1"
    assert error.retryable is retryable
    assert "req-1" in str(error) and "GetSession" in str(error)


def test_connection_errors_are_retryable() -> None:
    error = translate_error(
        botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"),
        operation="GetSession",
    )
    assert isinstance(error, errors.ServiceError) and error.retryable
    error = translate_error(
        botocore.exceptions.ReadTimeoutError(endpoint_url="https://x"), operation="GetSession"
    )
    assert isinstance(error, errors.ServiceError) and error.retryable


def test_no_region_is_a_config_error() -> None:
    error = translate_error(botocore.exceptions.NoRegionError(), operation="GetSession")
    assert isinstance(error, errors.InvalidConfigError) and error.field == "region"


def test_service_error_keeps_the_cause(emulator: object) -> None:
    from sessionkit.testing import Emulator

    assert isinstance(emulator, Emulator)
    with pytest.raises(errors.ServiceError) as caught:
        sessionkit.attach_session(
            "glue", "missing", client=emulator.client("glue"), poll_policy=emulator.poll_policy()
        )
    assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    assert caught.value.code == "EntityNotFoundException"
    assert not caught.value.retryable
