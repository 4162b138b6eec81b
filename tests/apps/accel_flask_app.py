"""Flask on gunicorn for the nginx offload tests (``tests/test_nginx_accel.py``).

Two mounts of one app, as in ``apps.accel_starlette_app``: ``/direct/...`` behind
``ZeroCopyWSGIMiddleware`` alone, everything else behind the same middleware with
``accel_redirect`` mapping ``$ZC_MEDIA_DIR`` to ``/_zc/media/``. gunicorn is run
with ``apps/wsgi_gunicorn_conf.py``, whose ``/__zc_stats`` counts the bytes the
worker moved (sendfile, pread, sendall).
"""

from __future__ import annotations

import os
from typing import Any

import flask
from apps.accel_common import ACCEL_REDIRECT, APP_HEADERS, DEBUG_HEADER, MEDIA, OTHER

from zcmiddleware import ZeroCopyWSGIMiddleware

app = flask.Flask(__name__)


def _send(directory: str, name: str) -> flask.Response:
    response = flask.send_file(os.path.join(directory, name))
    response.headers.update(APP_HEADERS)
    return response


@app.get("/files/<path:name>")
def media(name: str) -> flask.Response:
    return _send(MEDIA, name)


@app.get("/other/<path:name>")
def other(name: str) -> flask.Response:
    return _send(OTHER, name)


@app.get("/encoded/<path:name>")
def encoded(name: str) -> flask.Response:
    # A precompressed file: the client cannot read it without Content-Encoding.
    response = _send(MEDIA, name)
    response.headers["Content-Encoding"] = "gzip"
    return response


offloading = ZeroCopyWSGIMiddleware(
    app.wsgi_app, debug_header=DEBUG_HEADER, accel_redirect=ACCEL_REDIRECT
)
direct = ZeroCopyWSGIMiddleware(app.wsgi_app, debug_header=DEBUG_HEADER)


def application(environ: dict[str, Any], start_response: Any) -> Any:
    path = environ.get("PATH_INFO", "")
    if path.startswith("/direct/"):
        environ["PATH_INFO"] = path[len("/direct") :]
        return direct(environ, start_response)  # type: ignore[arg-type]
    return offloading(environ, start_response)  # type: ignore[arg-type]
