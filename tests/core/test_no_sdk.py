"""The core and the memory backend work without any provider SDK being imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import sessionkit
    from sessionkit.testing import memory

    memory.register()
    service = memory.MemoryService()
    where = dict(service=service, namespace="default", poll_policy=service.poll_policy())
    with sessionkit.open_session("memory", **where) as session:
        assert session.run("6 * 7").output == "42"
    assert [i.id for i in sessionkit.list_sessions("memory", **where)] == [session.id]
    loaded = sorted(
        name for name in ("boto3", "botocore", "google", "httpx", "azure", "moto", "pyspark")
        if name in sys.modules
    )
    print(",".join(loaded) or "none")
    """
)


def test_a_whole_lifecycle_imports_no_sdk() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
