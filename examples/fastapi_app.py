"""A FastAPI app serving a large file and a video through ZeroCopyMiddleware.

    python examples/fastapi_app.py          # serve on http://127.0.0.1:8000/
    python examples/fastapi_app.py --demo   # download it three ways, check, exit

Open http://127.0.0.1:8000/ and seek in the video, or
``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``.
"""

from __future__ import annotations

from _asgi_demo import demo, serve
from _content import large_file, options, page, video_file
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from zcmiddleware import ZeroCopyMiddleware

PATH = large_file()
VIDEO = video_file()

app = FastAPI()
app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    return page(VIDEO)


@app.get("/download")
async def download() -> FileResponse:
    # An ordinary FileResponse: the middleware does ranges and zero-copy.
    return FileResponse(PATH, filename="download.bin")


@app.get("/video.webm")
async def video() -> FileResponse:
    if VIDEO is None:
        raise HTTPException(404, "no video: ffmpeg is not installed")
    return FileResponse(VIDEO, media_type="video/webm")


if __name__ == "__main__":
    args = options(__doc__.splitlines()[0])
    if args.demo:
        demo(app, PATH)
    else:
        serve(app, args.port)
