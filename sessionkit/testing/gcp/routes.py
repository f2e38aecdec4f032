"""Where the served emulator sends Dataproc requests (no Google SDK is imported here)."""

from __future__ import annotations

from collections.abc import Mapping

from sessionkit.testing.base import HttpRoute

__all__ = ["HTTP_ROUTES"]

#: Dataproc's REST paths, answered by :func:`sessionkit.testing.gcp.dataproc.answer` (a path
#: the server cannot answer because the Google SDK is missing answers 404).
HTTP_ROUTES: Mapping[str, HttpRoute] = {
    "/v1/projects/": HttpRoute(
        answer="sessionkit.testing.gcp.dataproc:answer",
        drops=("builtins:ConnectionResetError", "sessionkit.testing.gcp.dataproc:LostAnswer"),
    ),
}
