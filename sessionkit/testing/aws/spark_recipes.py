"""The AWS services' Spark Connect recipes (DESIGN section 9), as the emulator's proxy checks them.

Loaded by :class:`sessionkit.testing.spark.SparkConnectProxy`; imports neither gRPC nor boto3.
Every AWS recipe carries the token in ``x-aws-proxy-auth``; EMR Serverless, Athena and EMR on
EC2 also send ``x-aws-proxy-port`` and ``x-aws-force-h2``; EMR on EC2 adds the session id as
``authorization`` and the session's ``x-emr-username`` / ``x-emr-password``. Glue hands out an
``sc://`` URL, the others ``http(s)://``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sessionkit.testing.spark import Grant, SparkConnectRecipe

__all__ = ["RECIPES"]

_TOKEN = "x-aws-proxy-auth"
_PROXIED = {"x-aws-proxy-port": "15002", "x-aws-force-h2": "true"}
_EMR_CREDENTIALS = frozenset({"authorization", "x-emr-username", "x-emr-password"})


def _emr_check(metadata: Mapping[str, str], grant: Grant) -> str | None:
    """EMR on EC2 also wants the session id as ``authorization`` and the session's login."""
    if metadata.get("authorization", "") != grant.session_id:
        return "emr needs the session id as authorization"
    if (
        metadata.get("x-emr-username") != grant.username
        or metadata.get("x-emr-password") != grant.password
    ):
        return "emr needs the session's x-emr-username and x-emr-password"
    return None


#: Backend name -> the recipe its emulated service's endpoints are checked with.
RECIPES: Mapping[str, SparkConnectRecipe] = {
    "glue": SparkConnectRecipe(token_header=_TOKEN, scheme="sc"),
    "emr-serverless": SparkConnectRecipe(token_header=_TOKEN, metadata=_PROXIED),
    "athena": SparkConnectRecipe(token_header=_TOKEN, metadata=_PROXIED),
    "emr": SparkConnectRecipe(
        token_header=_TOKEN, metadata=_PROXIED, consumed=_EMR_CREDENTIALS, check=_emr_check
    ),
}
