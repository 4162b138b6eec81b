"""A Flask app serving a large file and a video through ZeroCopyWSGIMiddleware.

    python examples/flask_app.py              # Werkzeug's dev server, http://127.0.0.1:8000/
    python examples/flask_app.py --demo       # download it three ways, check, exit

On gunicorn -- where full files *and* ranges then go out by sendfile(2) -- with the
middleware's DEBUG log on:

    gunicorn --chdir examples -k gthread --threads 8 -b 127.0.0.1:8000 \\
        --log-config-json logging.json flask_app:app

Open http://127.0.0.1:8000/ and seek in the video, or
``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``; the
``X-ZeroCopy-Path`` response header says which path carried the bytes
(``file_wrapper`` on gunicorn, ``fallback`` on servers without sendfile).
"""

from __future__ import annotations

import flask
from _content import large_file, options, page, video_file

from zcmiddleware import ZeroCopyWSGIMiddleware

PATH = large_file()
VIDEO = video_file()
app = flask.Flask(__name__)


@app.get("/")
def index() -> str:
    return page(VIDEO)


@app.get("/download")
def download() -> flask.Response:
    # An ordinary send_file: the middleware does ranges, conditionals and zero-copy.
    return flask.send_file(PATH, download_name="download.bin")


@app.get("/video.webm")
def video() -> flask.Response:
    if VIDEO is None:
        flask.abort(404, "no video: ffmpeg is not installed")
    return flask.send_file(VIDEO, mimetype="video/webm")


app.wsgi_app = ZeroCopyWSGIMiddleware(  # type: ignore[method-assign]
    app.wsgi_app, debug_header="X-ZeroCopy-Path"
)


def demo() -> None:
    """Serve on a free port, download whole / one range / two ranges, check."""
    import http.client
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(PATH, "rb") as f:
        data = f.read()
    try:
        for ranges in (None, "bytes=1000-1999", "bytes=0-9,-10"):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
            conn.request("GET", "/download", headers={"Range": ranges} if ranges else {})
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if ranges is None:
                assert body == data
            elif "," not in ranges:
                assert body == data[1000:2000]
            else:
                assert data[:10] in body and data[-10:] in body
            print(
                f"{ranges or 'whole file':16} -> {response.status}, {len(body)} bytes, "
                f"via {response.getheader('X-ZeroCopy-Path')}"
            )
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    args = options(__doc__.splitlines()[0])
    if args.demo:
        demo()
    else:
        app.run("127.0.0.1", args.port)
