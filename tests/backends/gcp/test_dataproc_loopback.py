"""answer() behind a real loopback HTTP server, reached by the backend through endpoint_url."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

import sessionkit
from sessionkit import SessionState
from sessionkit.errors import ServiceError
from sessionkit.testing import Emulator
from sessionkit.testing.gcp.dataproc import LostAnswer, answer


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def base_url(emulator: Emulator) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            try:
                status, headers, payload = answer(
                    emulator, self.command, url.path, url.query, dict(self.headers), body
                )
            except (ConnectionResetError, LostAnswer):
                self.close_connection = True
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_lifecycle_over_http(emulator: Emulator, base_url: str) -> None:
    """A plain http:// endpoint_url: REST transport, anonymous credentials, the same service."""
    keywords = {
        "endpoint_url": base_url,
        "project": "loopback",
        "region": "europe-west1",
        "poll_policy": emulator.poll_policy(),
    }
    with sessionkit.open_session("dataproc", spark_connect=True, **keywords) as session:
        assert session.state is SessionState.READY
        assert session.endpoint().url.startswith("https://")
        assert [i.id for i in sessionkit.list_sessions("dataproc", **keywords)] == [session.id]
    assert emulator.call_count("dataproc", "TerminateSession") == 1
    with pytest.raises(ServiceError) as caught:
        sessionkit.attach_session("dataproc", "missing-one", **keywords)
    assert caught.value.code == "NOT_FOUND"
