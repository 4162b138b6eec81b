"""Plain Starlette: ``FileResponse`` and nothing else."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from benchmarks.apps import resolve


async def serve_file(request: Request) -> Response:
    path = resolve(request.path_params["name"])
    if path is None:
        return PlainTextResponse("Not Found", status_code=404)
    return FileResponse(path)


app = Starlette(routes=[Route("/files/{name}", serve_file)])
