"""A FastAPI app as users write them, for tests/test_dropin.py: an API endpoint with
its own ETag and 304, StaticFiles, file responses, a streaming response, and the
framework's GZipMiddleware or a BaseHTTPMiddleware -- with ZeroCopyMiddleware added
as ``ZC_ORDER`` says:

* ``plain``: no zcmiddleware at all (what the app does without the line);
* ``outermost``: GZip first, then ZeroCopyMiddleware added last (the documented way);
* ``inside-base`` / ``inside-gzip``: ZeroCopyMiddleware added first, then a
  BaseHTTPMiddleware / GZipMiddleware, which end up outside it (the slip).

Files come from ``ZC_DIR``. ``GET /stats`` reports the bytes ``os.sendfile`` carried
in this process (counted by apps.uvicorn_raw_app) and how many chunks the streaming
endpoint produced.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

from apps.uvicorn_raw_app import STATS
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

from zcmiddleware import ZeroCopyMiddleware

DIRECTORY = os.environ.get("ZC_DIR", ".")
ORDER = os.environ.get("ZC_ORDER", "outermost")
PRODUCED = {"chunks": 0}
ITEM_ETAG = '"item-v1"'

app = FastAPI()


@app.get("/api/item")
async def item(request: Request) -> Response:
    # The endpoint answers its own conditional request, as API code does.
    if request.headers.get("if-none-match") == ITEM_ETAG:
        return Response(status_code=304, headers={"ETag": ITEM_ETAG})
    return JSONResponse({"item": 1}, headers={"ETag": ITEM_ETAG})


@app.get("/files/{name}")
async def file(name: str) -> FileResponse:
    return FileResponse(os.path.join(DIRECTORY, name))


@app.api_route("/stream", methods=["GET", "HEAD"])
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            PRODUCED["chunks"] += 1
            yield b"x" * 65536

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@app.get("/stats")
async def stats() -> JSONResponse:
    return JSONResponse({"sendfile_bytes": STATS["bytes"], "chunks": PRODUCED["chunks"]})


app.mount("/static", StaticFiles(directory=DIRECTORY), name="static")


async def passthrough(request: Request, call_next: Callable[[Request], Awaitable[Response]]):  # type: ignore[no-untyped-def]
    response = await call_next(request)
    response.headers["x-outer"] = "1"
    return response


if ORDER == "outermost":
    app.add_middleware(GZipMiddleware)
    app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")
elif ORDER == "inside-base":
    app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")
    app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
elif ORDER == "inside-gzip":
    app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")
    app.add_middleware(GZipMiddleware)
else:
    assert ORDER == "plain", ORDER
    app.add_middleware(GZipMiddleware)
