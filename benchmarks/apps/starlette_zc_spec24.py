"""Experiment (not in the default run): the middleware app, with the scope
claiming ASGI spec 2.4.

On uvicorn's spec 2.3 scopes the middleware runs a task group with an
``http.disconnect`` watcher around every body it sends; a 2.4 scope (whose
server raises ``OSError`` from ``send`` once the client is gone) skips it. This
app measures what the watcher costs per request. It is not a safe way to run
the middleware on uvicorn: uvicorn's ``send`` does not raise after a disconnect.
"""

from __future__ import annotations

from typing import Any

from benchmarks.apps.starlette_zc import app as zc_app


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        scope = {**scope, "asgi": {**scope.get("asgi", {}), "spec_version": "2.4"}}
    await zc_app(scope, receive, send)
