"""A Starlette app behind ZeroCopyMiddleware for the hardening tests.

Served by real servers (``apps.hardening_asgi_app:app``); the environment says
where the files are (``ZC_DIR``) and which roots X-Sendfile may use
(``ZC_ROOTS``: a JSON list, or a JSON string to pass the option as one string).

Routes, all answered by the app as a user would write it:

* ``/file/{name}``: ``FileResponse`` of ``ZC_DIR/name``; ``?filename=`` sets the
  download name, ``?ctype=`` the media type, ``?hval=`` the value of an
  ``X-App`` header (the last three for the header injection tests);
* ``/path?p=``: ``FileResponse`` of any path (``/dev/zero``, a FIFO, a directory);
* ``/xsendfile?p=``: an X-Sendfile response naming ``p``; ``/xsendfile-raw?hex=``
  the same with a header value given as hex, so CR, LF and NUL reach the middleware;
* ``/__hz__``: the worker's ``rchar``, open descriptors and RSS, as JSON.

A recording layer (``apps.asgi_app.Recorder``) sits between server and middleware.
"""

from __future__ import annotations

import json
import os
from typing import Any

from apps.asgi_app import Recorder
from apps.hardening_support import process_stats
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware

DIRECTORY = os.environ.get("ZC_DIR", ".")


async def file(request: Request) -> FileResponse:
    q = request.query_params
    headers = {"X-App": q["hval"]} if "hval" in q else None
    return FileResponse(
        os.path.join(DIRECTORY, request.path_params["name"]),
        media_type=q.get("ctype", "application/octet-stream"),
        filename=q.get("filename"),
        headers=headers,
    )


async def any_path(request: Request) -> FileResponse:
    return FileResponse(request.query_params["p"])


async def xsendfile(request: Request) -> Response:
    return Response(b"the app's own body", headers={"X-Sendfile": request.query_params["p"]})


async def xsendfile_raw(request: Request) -> Response:
    response = Response(b"the app's own body")
    response.raw_headers.append((b"x-sendfile", bytes.fromhex(request.query_params["hex"])))
    return response


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(process_stats())


def roots() -> Any:
    raw = os.environ.get("ZC_ROOTS")
    return json.loads(raw) if raw else [os.path.join(DIRECTORY, "public")]


inner = Starlette(
    routes=[
        Route("/file/{name:path}", file),
        Route("/path", any_path),
        Route("/xsendfile", xsendfile),
        Route("/xsendfile-raw", xsendfile_raw),
        Route("/__hz__", stats),
    ]
)

app = Recorder(
    ZeroCopyMiddleware(
        inner,
        sendfile_header="X-Sendfile",
        sendfile_roots=roots(),
        debug_header="X-ZeroCopy-Path",
    )
)
