"""A Starlette app serving a generated file through ZeroCopyMiddleware.

    python examples/starlette_app.py          # serve on http://127.0.0.1:8000/
    python examples/starlette_app.py --demo   # download it three ways, check, exit

Then ``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``.
"""

from __future__ import annotations

import sys

from _asgi_demo import demo, generated_file, serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware

PATH = generated_file()


async def download(request: Request) -> FileResponse:
    # An ordinary FileResponse: the middleware does ranges and zero-copy.
    return FileResponse(PATH, filename="download.bin")


app = Starlette(routes=[Route("/download", download)])
app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")

if __name__ == "__main__":
    if "--demo" in sys.argv:
        demo(app, PATH)
    else:
        serve(app)
