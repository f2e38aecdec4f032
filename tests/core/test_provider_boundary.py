"""The core names no provider: no SDK, no provider keyword, no service name.

The core is everything in ``sessionkit/`` outside ``backends/<provider>/`` and
``testing/<provider>/``. A hit fails the test unless its line matches one of the documented
patterns below, each allowed everywhere: a line holding a lazy ``"module:name"`` string of a
provider package (the registry idiom: one table row per backend or service) and the rows of the
backend registry. No file has an allowance of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sessionkit"
PROVIDERS = ("aws", "gcp", "livy", "azure")

#: SDKs, provider keywords and service names.
FORBIDDEN = re.compile(
    r"\b(boto3|botocore|google|httpx|azure|aws|arn:aws|iam|region|boto3_session|s3_client"
    r"|glue|athena|emr|emr-serverless|emr_serverless|dataproc|livy|synapse|fabric)\b",
    re.IGNORECASE,
)

#: Lines allowed to name a provider anywhere in the core, and why.
ALLOWED_LINES = [
    # The registry's table of built-in backends: lazy "module:Class" strings, imported on use.
    re.compile(r'"sessionkit\.(backends|testing)\.(aws|gcp|livy)\.[\w.]+:\w+"'),
    re.compile(r'^\s*"(glue|emr-serverless|athena|emr|dataproc|livy)": \($'),
    re.compile(r'^\s*"(glue|emr-serverless|athena|emr|dataproc|livy)": \("sessionkit\.'),
    # ... and the pip extra that brings each one's SDK.
    re.compile(r'^\s*install_hint\("\w+"\),?$'),
]


def core_files() -> list[Path]:
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in ("backends", "testing") and len(parts) > 2 and parts[1] in PROVIDERS:
            continue
        files.append(path)
    return files


def hits(path: Path) -> list[str]:
    """``name:line: text`` of every line of ``path`` that names a provider."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FORBIDDEN.search(line) and not any(p.search(line) for p in ALLOWED_LINES):
            found.append(f"{path.name}:{number}: {line.strip()}")
    return found


def test_the_boundary_check_finds_a_provider_name(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('import boto3\nx = "fine"\nclient(region="eu-west-1")\n', encoding="utf-8")
    assert [hit.split(":")[1] for hit in hits(sample)] == ["1", "3"]


@pytest.mark.parametrize(
    "path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE)).replace("/", ":")
)
def test_the_core_names_no_provider(path: Path) -> None:
    found = hits(path)
    assert not found, (
        f"{path.relative_to(PACKAGE).as_posix()} names a provider ({len(found)} hits):\n"
        + "\n".join(found)
    )
