"""The commands against a served emulator (``--emulator``), ``sweep``, ``emulator serve`` and
``--call-timeout``, each command in its own process as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sessionkit import cli
from sessionkit.testing import Emulator, VirtualClock
from sessionkit.testing.server import ScaledClock

#: The longest any one command here may run before the test gives up on it (not an assertion
#: about speed: a hung command fails the test instead of hanging it).
GUARD = 90


def env(url: str | None = None) -> dict[str, str]:
    """The environment of a command: no real AWS credentials, and the emulator's URL if any."""
    values = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "SESSIONKIT_")) and k != "COLUMNS"
    }
    values["AWS_EC2_METADATA_DISABLED"] = "true"
    if url is not None:
        values["SESSIONKIT_EMULATOR_URL"] = url
    return values


def sessionkit(*argv: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sessionkit", *argv],
        capture_output=True,
        text=True,
        env=env(url),
        timeout=GUARD,
        check=False,
    )


def post(url: str) -> Any:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def fast() -> Iterator[tuple[Emulator, str]]:
    """A served emulator whose clock runs 600 times real time (a Glue start takes 10 ms)."""
    emulator = Emulator(clock=ScaledClock(speed=600))
    with emulator.serve() as url:
        yield emulator, url


@pytest.fixture
def still() -> Iterator[tuple[Emulator, str]]:
    """A served emulator on virtual time: only the control endpoint moves its clock."""
    emulator = Emulator(clock=VirtualClock())
    with emulator.serve() as url:
        yield emulator, url


def test_open_status_and_stop_run_as_three_processes_share_the_session(
    fast: tuple[Emulator, str],
) -> None:
    emulator, url = fast
    opened = sessionkit("open", "-b", "glue", "--emulator", url, "--json")
    assert opened.returncode == 0, opened.stderr
    session_id = json.loads(opened.stdout)["id"]
    assert json.loads(opened.stdout)["state"] == "READY"

    status = sessionkit("status", session_id, "-b", "glue", "--json", url=url)  # env var
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "READY"

    stopped = sessionkit("stop", session_id, "-b", "glue", "--emulator", url, "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["state"] == "STOPPED"
    assert emulator.alive_sessions() == {}
    assert "sessionkit-emulator" not in opened.stdout + status.stdout + stopped.stdout


def test_sweep_stops_the_session_a_killed_process_leaked(still: tuple[Emulator, str]) -> None:
    emulator, url = still
    # The clock stands still, so this open waits on PROVISIONING until it is killed: it never
    # gets to stop the session it started.
    opener = subprocess.Popen(
        [sys.executable, "-m", "sessionkit", "open", "-b", "glue", "--idle-timeout", "10h"],
        env=env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + GUARD
        while not emulator.alive_sessions() and time.monotonic() < give_up:
            time.sleep(0.05)
    finally:
        opener.send_signal(signal.SIGKILL)
        opener.wait(timeout=GUARD)
    leaked = emulator.alive_sessions()
    assert list(leaked) == ["glue"] and len(leaked["glue"]) == 1, "no session was started"
    (session_id,) = leaked["glue"]

    young = sessionkit("sweep", "-b", "glue", "--older-than", "2h", "--json", url=url)
    assert young.returncode == 0, young.stderr
    assert json.loads(young.stdout)["sessions"] == [], "a session younger than 2h is kept"

    assert post(f"{url}/_sessionkit/advance?seconds={3 * 3600}")["monotonic"] >= 3 * 3600
    dry = sessionkit("sweep", "-b", "glue", "--older-than", "2h", "--dry-run", url=url)
    assert dry.returncode == 0, dry.stderr
    assert f"would stop {session_id}" in dry.stdout
    assert emulator.alive_sessions(), "--dry-run stops nothing"

    swept = sessionkit("sweep", "-b", "glue", "--emulator", url, "--older-than", "2h")
    assert swept.returncode == 0, swept.stderr
    assert f"stopped {session_id}" in swept.stdout
    emulator.clock.advance(60)  # the stop is requested; a minute later it has ended
    assert emulator.alive_sessions() == {}


def test_emulator_serve_starts_answers_and_stops_on_sigterm() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "sessionkit", "emulator", "serve", "--port", "0", "--speed", "0"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("sessionkit emulator serving on http://127.0.0.1:"), first
        url = first.split()[4]
        assert server.stdout.readline().strip() == f"export SESSIONKIT_EMULATOR_URL={url}"
        with urllib.request.urlopen(f"{url}/_sessionkit/health", timeout=30) as response:
            health = json.loads(response.read())
        assert "glue" in health["backends"]
        assert post(f"{url}/_sessionkit/advance?seconds=5")["monotonic"] == 5
        # Another process reaches it through the environment variable.
        listed = sessionkit("list", "-b", "glue", "--json", url=url)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=GUARD)
    assert code == 0


def test_emulator_serve_hands_its_usage_errors_back(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["emulator", "serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_call_timeout_bounds_a_call_to_a_silent_service(silent_port: int) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessionkit",
            "status",
            "some-session",
            "-b",
            "glue",
            "--region",
            "us-east-1",
            "--endpoint-url",
            f"http://127.0.0.1:{silent_port}",
            "--call-timeout",
            "1s",
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**env(), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-key"},
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == 1
    details = json.loads(result.stdout)["error"]
    assert details["type"] == "CallTimeoutError"
    assert "call deadline of 1 s" in details["message"]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("sessionkit: error: ") and "call deadline" in line
    assert "s3cr3t-key" not in result.stdout + result.stderr


def test_call_timeout_takes_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "x", "-b", "glue", "--local", "--call-timeout", "soon"]) == 2
    assert "--call-timeout" in capsys.readouterr().err


def test_local_and_emulator_together_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], fast: tuple[Emulator, str]
) -> None:
    _, url = fast
    assert cli.main(["list", "-b", "glue", "--local", "--emulator", url]) == 2
    assert "--local and --emulator" in capsys.readouterr().err


def test_an_emulator_url_nothing_answers_at_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("SESSIONKIT_EMULATOR_URL", f"http://127.0.0.1:{port}")
    assert cli.main(["list", "-b", "glue"]) == 2
    line = capsys.readouterr().err.strip()
    assert "no emulator answers there" in line and "sessionkit emulator serve" in line
