"""A Flask app serving a generated file through ZeroCopyWSGIMiddleware.

    python examples/flask_app.py              # Werkzeug's dev server, http://127.0.0.1:8000/
    python examples/flask_app.py --demo       # download it three ways, check, exit

On gunicorn -- where full files *and* ranges then go out by sendfile(2):

    gunicorn --chdir examples -k gthread --threads 8 -b 127.0.0.1:8000 flask_app:app

Then ``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``; the
``X-ZeroCopy-Path`` response header says which path carried the bytes
(``file_wrapper`` on gunicorn, ``fallback`` on servers without sendfile).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import flask

from zcmiddleware import ZeroCopyWSGIMiddleware

PATH = os.path.join(tempfile.gettempdir(), "zcmiddleware-flask-example.bin")
SIZE = 16 * 1024 * 1024


def generated_file() -> str:
    """A 16 MiB file of deterministic bytes, written once."""
    if not os.path.exists(PATH) or os.path.getsize(PATH) != SIZE:
        block = hashlib.sha256(b"zcmiddleware").digest() * 32768  # 1 MiB
        with open(PATH + ".tmp", "wb") as f:
            for _ in range(SIZE // len(block)):
                f.write(block)
        os.replace(PATH + ".tmp", PATH)
    return PATH


generated_file()
app = flask.Flask(__name__)


@app.get("/download")
def download() -> flask.Response:
    # An ordinary send_file: the middleware does ranges, conditionals and zero-copy.
    return flask.send_file(PATH, download_name="download.bin")


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
    if "--demo" in sys.argv:
        demo()
    else:
        app.run("127.0.0.1", 8000)
