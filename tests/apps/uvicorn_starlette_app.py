"""Starlette app for the end-to-end tests of zcmiddleware.uvicorn.

Run as ``python -m apps.uvicorn_starlette_app PORT [plain|middleware]``: it
starts uvicorn with ``uvicorn.run(app, http="zcmiddleware.uvicorn:AutoHTTPProtocol")``.
Importing ``apps.uvicorn_raw_app`` installs the os.sendfile byte counter.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import uvicorn
from apps.uvicorn_raw_app import FILES, STATS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware


async def file(request: Request) -> FileResponse:
    return FileResponse(os.path.join(FILES, request.path_params["name"]))


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(STATS)


app = Starlette(routes=[Route("/files/{name}", file), Route("/stats", stats)])


# The project's middleware outermost; it names the delivery path in a header.
wrapped = ZeroCopyMiddleware(app, debug_header="X-ZeroCopy-Path")

if __name__ == "__main__":
    port = int(sys.argv[1])
    served: Any = wrapped if sys.argv[2:] == ["middleware"] else app
    uvicorn.run(
        served,
        host="127.0.0.1",
        port=port,
        http="zcmiddleware.uvicorn:AutoHTTPProtocol",
        log_level="warning",
    )
