"""Flask app behind ZeroCopyWSGIMiddleware, for the WSGI integration tests.

Files are served from ``$ZC_DATA_DIR``; ``/xsendfile/<name>`` answers with an
``X-Sendfile`` header (Werkzeug's ``use_x_sendfile``) that the middleware honours
inside that same directory.
"""

from __future__ import annotations

import os

import flask
from werkzeug.utils import send_file as werkzeug_send_file

from zcmiddleware import ZeroCopyWSGIMiddleware

DATA_DIR = os.environ.get("ZC_DATA_DIR", os.getcwd())

app = flask.Flask(__name__)


@app.get("/file/<name>")
def file(name: str) -> flask.Response:
    return flask.send_from_directory(DATA_DIR, name)


@app.route("/file-post/<name>", methods=["POST"])
def file_post(name: str) -> flask.Response:
    return flask.send_from_directory(DATA_DIR, name)


@app.get("/xsendfile/<name>")
def xsendfile(name: str) -> flask.Response:
    path = os.path.join(DATA_DIR, os.path.basename(name))
    return werkzeug_send_file(path, flask.request.environ, use_x_sendfile=True)


@app.get("/hello")
def hello() -> str:
    return "hello"


@app.get("/page")
def page() -> flask.Response:
    # A page that answers its own conditional GET (Werkzeug's make_conditional).
    response = flask.make_response("a page, not a file")
    response.set_etag("page-v1")
    return response.make_conditional(flask.request)


app.wsgi_app = ZeroCopyWSGIMiddleware(  # type: ignore[method-assign]
    app.wsgi_app,
    sendfile_header="X-Sendfile",
    sendfile_roots=[DATA_DIR],
    debug_header="X-ZC-Path",
)


def application(environ: dict[str, object], start_response: object) -> object:
    """What the servers run: the app, plus ``/shrink/<name>``, which serves
    ``/file/<name>`` and truncates that file to half its size *after* the middleware
    has planned the response -- the file shrinks while it is being sent."""
    path = str(environ.get("PATH_INFO", ""))
    if not path.startswith("/shrink/"):
        return app(environ, start_response)  # type: ignore[arg-type]
    name = os.path.basename(path)
    environ["PATH_INFO"] = f"/file/{name}"
    result = app(environ, start_response)  # type: ignore[arg-type]
    full = os.path.join(DATA_DIR, name)
    os.truncate(full, os.path.getsize(full) // 2)
    return result
