"""The plain Flask app in ``ZeroCopyWSGIMiddleware`` with ``accel_redirect``: behind
nginx, which sends the files from its internal ``/_zc/files/`` location."""

from __future__ import annotations

from benchmarks.apps import files_dir
from benchmarks.apps.flask_plain import app
from zcmiddleware import ZeroCopyWSGIMiddleware

app.wsgi_app = ZeroCopyWSGIMiddleware(  # type: ignore[method-assign]
    app.wsgi_app, accel_redirect={files_dir(): "/_zc/files/"}
)
