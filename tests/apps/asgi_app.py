"""A Starlette app behind ZeroCopyMiddleware, with a recording layer in front of it.

Used in-process by the unit tests and served by real servers in the integration
tests (``apps.asgi_app:app``; the environment names the files and the options):

* ``ZC_DIR``: directory holding ``data.bin`` (and ``public/`` for X-Sendfile);
* ``ZC_RECORD=0``: no recording layer; otherwise it sits between the server and
  the middleware and keeps, per
  ``x-test-id`` request header, the ASGI message types that went to the server;
  ``GET /__record__?id=...`` answers them as JSON (recorded at send time, so a
  client that has read the whole response can ask at once).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from zcmiddleware import ZeroCopyMiddleware

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEBUG_HEADER = "X-ZeroCopy-Path"


def create_app(directory: str) -> Starlette:
    """The app as a user would write it: file responses, static files, plain responses."""
    data = os.path.join(directory, "data.bin")

    async def download(request: Request) -> FileResponse:
        return FileResponse(data, media_type="application/x-test", filename="data.bin")

    async def text(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello, not a file", headers={"etag": '"text"'})

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(3):
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def xsendfile(request: Request) -> Response:
        # X-Sendfile style: an empty body, the path in a header.
        return Response(b"ignored body", headers={"X-Sendfile": request.query_params["path"]})

    async def echo_headers(request: Request) -> Response:
        return Response(json.dumps(request.headers.items()), media_type="application/json")

    return Starlette(
        routes=[
            Route("/download", download, methods=["GET", "POST"]),
            Route("/text", text),
            Route("/stream", stream),
            Route("/xsendfile", xsendfile),
            Route("/echo-headers", echo_headers),
            Mount("/static", StaticFiles(directory=directory)),
        ]
    )


def wrap(directory: str, **options: Any) -> ASGIApp:
    options.setdefault("debug_header", DEBUG_HEADER)
    options.setdefault("sendfile_header", "X-Sendfile")
    options.setdefault("sendfile_roots", [os.path.join(directory, "public")])
    return ZeroCopyMiddleware(create_app(directory), **options)


class Recorder:
    """Between the server and the middleware: remembers which message types went out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.records: dict[str, list[str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/__record__":
            test_id = scope["query_string"].decode().partition("id=")[2]
            body = json.dumps(self.records.get(test_id)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        test_id = dict(scope["headers"]).get(b"x-test-id", b"").decode()
        record = self.records.setdefault(test_id, []) if test_id else []

        async def recording_send(message: Message) -> None:
            record.append(message["type"])
            await send(message)

        await self.app(scope, receive, recording_send)


def _from_environment() -> ASGIApp:
    directory = os.environ.get("ZC_DIR")
    if directory is None:
        return create_app(".")  # imported for its factories only
    options: dict[str, Any] = {}
    if "ZC_CHUNK_SIZE" in os.environ:  # for the chunk-size measurement (docs/asgi.md)
        options["chunk_size"] = int(os.environ["ZC_CHUNK_SIZE"])
    if os.environ.get("ZC_RECORD") == "0":
        # The server's own send, unwrapped (daphne's is recognised and paced by it).
        return wrap(directory, **options)
    return Recorder(wrap(directory, **options))


app = _from_environment()
