"""A Starlette app serving a large file and a video through ZeroCopyMiddleware.

    python examples/starlette_app.py          # serve on http://127.0.0.1:8000/
    python examples/starlette_app.py --demo   # download it three ways, check, exit

The same app under the uvicorn command line, with the middleware's DEBUG log on:

    uvicorn --app-dir examples starlette_app:app \\
        --http zcmiddleware.uvicorn:AutoHTTPProtocol --log-config examples/logging.json

Open http://127.0.0.1:8000/ and seek in the video, or
``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``.
"""

from __future__ import annotations

from _asgi_demo import demo, serve
from _content import large_file, options, page, video_file
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware

PATH = large_file()
VIDEO = video_file()


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(page(VIDEO))


async def download(request: Request) -> FileResponse:
    # An ordinary FileResponse: the middleware does ranges and zero-copy.
    return FileResponse(PATH, filename="download.bin")


async def video(request: Request) -> Response:
    if VIDEO is None:
        return Response("no video: ffmpeg is not installed", status_code=404)
    return FileResponse(VIDEO, media_type="video/webm")


app = Starlette(
    routes=[Route("/", index), Route("/download", download), Route("/video.webm", video)]
)
app.add_middleware(ZeroCopyMiddleware, debug_header="X-ZeroCopy-Path")

if __name__ == "__main__":
    args = options(__doc__.splitlines()[0])
    if args.demo:
        demo(app, PATH)
    else:
        serve(app, args.port)
