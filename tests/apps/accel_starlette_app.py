"""Starlette on uvicorn for the nginx offload tests (``tests/test_nginx_accel.py``).

Run as ``python -m apps.accel_starlette_app PORT``. Two mounts of one app:
``/direct/...`` behind ``ZeroCopyMiddleware`` alone (what a client reaching the
worker directly gets), and everything else behind the same middleware with
``accel_redirect`` mapping ``$ZC_MEDIA_DIR`` to ``/_zc/media/`` (what nginx fronts).

Proof of what the server sent: ``GET /__zc_stats`` returns the bytes of every body
message the middlewares handed the server (``body``: ``http.response.body``
bytes; ``file``: ``zerocopysend`` counts, plus one per ``pathsend``) and the bytes
``os.sendfile`` moved in this process; ``?reset`` zeroes them after reading.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import uvicorn
from apps.accel_common import ACCEL_REDIRECT, APP_HEADERS, DEBUG_HEADER, MEDIA, OTHER
from apps.uvicorn_raw_app import STATS as SENDFILE_STATS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware


async def media(request: Request) -> FileResponse:
    return FileResponse(os.path.join(MEDIA, request.path_params["name"]), headers=APP_HEADERS)


async def other(request: Request) -> FileResponse:
    return FileResponse(os.path.join(OTHER, request.path_params["name"]), headers=APP_HEADERS)


async def encoded(request: Request) -> FileResponse:
    # A precompressed file: the client cannot read it without Content-Encoding.
    headers = {**APP_HEADERS, "Content-Encoding": "gzip"}
    return FileResponse(os.path.join(MEDIA, request.path_params["name"]), headers=headers)


app = Starlette(
    routes=[
        Route("/files/{name:path}", media),
        Route("/other/{name:path}", other),
        Route("/encoded/{name:path}", encoded),
    ]
)

TOTALS = {"body": 0, "file": 0}


def recorded(inner: Any) -> Any:
    """``inner`` with every body byte it sends to the server counted."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.body":
                TOTALS["body"] += len(message.get("body", b""))
            elif message["type"] == "http.response.zerocopysend":
                TOTALS["file"] += message["count"]
            elif message["type"] == "http.response.pathsend":
                TOTALS["file"] += 1  # a whole file, whatever its size: never expected
            await send(message)

        await inner(scope, receive, counting_send)

    return asgi


offloading = recorded(
    ZeroCopyMiddleware(app, debug_header=DEBUG_HEADER, accel_redirect=ACCEL_REDIRECT)
)
direct = recorded(ZeroCopyMiddleware(app, debug_header=DEBUG_HEADER))


async def served(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/__zc_stats":
        body = json.dumps({**TOTALS, "sendfile": SENDFILE_STATS["bytes"]}).encode()
        if b"reset" in scope.get("query_string", b""):
            TOTALS.update(body=0, file=0)
            SENDFILE_STATS["bytes"] = 0
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http" and scope["path"].startswith("/direct/"):
        scope = {**scope, "path": scope["path"][len("/direct") :], "raw_path": None}
        await direct(scope, receive, send)
        return
    await offloading(scope, receive, send)


if __name__ == "__main__":
    uvicorn.run(
        served,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http="zcmiddleware.uvicorn:AutoHTTPProtocol",
        log_level="warning",
    )
