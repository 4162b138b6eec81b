"""A FastAPI app serving a generated file through ZeroCopyMiddleware.

python examples/fastapi_app.py          # serve on http://127.0.0.1:8000/
python examples/fastapi_app.py --demo   # download it three ways, check, exit
"""

from __future__ import annotations

import sys

from _asgi_demo import demo, generated_file, serve
from fastapi import FastAPI
from fastapi.responses import FileResponse

from zcmiddleware import ZeroCopyMiddleware

PATH = generated_file()

app = FastAPI()
app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")


@app.get("/download")
async def download() -> FileResponse:
    # An ordinary FileResponse: the middleware does ranges and zero-copy.
    return FileResponse(PATH, filename="download.bin")


if __name__ == "__main__":
    if "--demo" in sys.argv:
        demo(app, PATH)
    else:
        serve(app)
