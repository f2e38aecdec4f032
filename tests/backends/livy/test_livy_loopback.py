"""The livy backend over real HTTP: its own client against :func:`answer` on a loopback port.

This is how a user meets a plain Livy server: ``open_session("livy", url=...)`` with nothing
else, so the client, the timeouts and the headers are the backend's own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

import sessionkit
from sessionkit.states import SessionState
from sessionkit.testing import Emulator
from sessionkit.testing.livy import answer


@pytest.fixture
def served() -> Iterator[tuple[Emulator, str]]:
    emulator = Emulator()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, content = answer(
                emulator,
                self.command,
                url.path,
                dict(parse_qsl(url.query)),
                dict(self.headers.items()),
                body,
            )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield emulator, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_open_run_stop_with_only_a_url(served: tuple[Emulator, str]) -> None:
    emulator, url = served
    with sessionkit.open_session("livy", url=url, poll_policy=emulator.poll_policy()) as session:
        assert session.state is SessionState.READY
        session.run("x = 1")
        assert session.run("x + 1").output == "2"
    assert session.refresh().state is SessionState.STOPPED
    assert emulator.service("livy").alive() == []
    creates = [c for c in emulator.calls if c.operation == "CreateSession"]
    assert len(creates) == 1
    assert creates[0].params["headers"]["x-requested-by"] == "sessionkit"
    assert creates[0].params["headers"]["content-type"] == "application/json"


def test_list_over_http(served: tuple[Emulator, str]) -> None:
    emulator, url = served
    with sessionkit.open_session("livy", url=url, poll_policy=emulator.poll_policy()) as session:
        listed = [i.id for i in sessionkit.list_sessions("livy", url=url)]
        assert listed == [session.id]
