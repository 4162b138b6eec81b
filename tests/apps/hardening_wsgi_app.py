"""A Flask app behind ZeroCopyWSGIMiddleware for the hardening tests.

Served by gunicorn (``apps.hardening_wsgi_app:application``, with
``apps/wsgi_gunicorn_conf.py`` counting sendfile); the environment says where the
files are (``ZC_DIR``) and which roots X-Sendfile may use (``ZC_ROOTS``, JSON).
The routes mirror ``apps/hardening_asgi_app.py``:

* ``/file/<name>``: ``send_file`` of ``ZC_DIR/name``, with ``?filename=``,
  ``?ctype=`` and ``?hval=`` (an ``X-App`` header) for the injection tests;
* ``/path?p=``: ``send_file`` of any path (``/dev/zero``, a FIFO, a directory);
* ``/xsendfile?p=`` and ``/xsendfile-raw?hex=``: an X-Sendfile response naming
  ``p`` (or the hex-decoded bytes, so CR, LF and NUL reach the middleware);
* ``/file-raw?name=&hex=&ctypehex=``: a file through ``wsgi.file_wrapper`` with raw
  (hex-decoded) ``X-App`` and ``Content-Type`` values, which Flask would refuse;
* ``/__hz__``: the worker's ``rchar``, open descriptors and RSS, as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import flask
from apps.hardening_support import process_stats

from zcmiddleware import ZeroCopyWSGIMiddleware

DIRECTORY = os.environ.get("ZC_DIR", ".")

app = flask.Flask(__name__)


@app.get("/file/<path:name>")
def file(name: str) -> flask.Response:
    q = flask.request.args
    response = flask.send_file(
        os.path.join(DIRECTORY, name),
        mimetype=q.get("ctype", "application/octet-stream"),
        download_name=q.get("filename"),
        as_attachment="filename" in q,
    )
    return response


@app.get("/path")
def any_path() -> flask.Response:
    return flask.send_file(flask.request.args["p"], mimetype="application/octet-stream")


@app.get("/xsendfile")
def xsendfile() -> flask.Response:
    return flask.Response(b"the app's own body", headers={"X-Sendfile": flask.request.args["p"]})


@app.get("/__hz__")
def stats() -> flask.Response:
    return flask.jsonify(process_stats())


def _raw(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """What Flask would refuse to build: raw header values (CR, LF, NUL) from the query."""
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    value = bytes.fromhex(query["hex"]).decode("latin-1")
    if environ["PATH_INFO"] == "/xsendfile-raw":
        start_response("200 OK", [("X-Sendfile", value), ("Content-Length", "0")])
        return [b""]
    # /file-raw: a file response through wsgi.file_wrapper with the raw X-App value.
    f = open(os.path.join(DIRECTORY, query["name"]), "rb")  # noqa: SIM115 (closed by the server)
    ctype = bytes.fromhex(query.get("ctypehex", b"text/plain".hex())).decode("latin-1")
    start_response("200 OK", [("Content-Type", ctype), ("X-App", value)])
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](f, 65536)
    return wrapper


def _dispatch(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO") in ("/xsendfile-raw", "/file-raw"):
        return _raw(environ, start_response)
    return app.wsgi_app(environ, start_response)  # type: ignore[no-any-return]


def roots() -> Any:
    raw = os.environ.get("ZC_ROOTS")
    return json.loads(raw) if raw else [os.path.join(DIRECTORY, "public")]


application = ZeroCopyWSGIMiddleware(
    _dispatch,  # type: ignore[arg-type]
    sendfile_header="X-Sendfile",
    sendfile_roots=roots(),
    debug_header="X-ZC-Path",
)
