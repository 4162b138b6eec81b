"""The plain Starlette app in ``ZeroCopyMiddleware`` with ``accel_redirect``: behind
nginx, which sends the files from its internal ``/_zc/files/`` location."""

from __future__ import annotations

from benchmarks.apps import files_dir
from benchmarks.apps.starlette_plain import app as plain_app
from zcmiddleware import ZeroCopyMiddleware

app = ZeroCopyMiddleware(plain_app, accel_redirect={files_dir(): "/_zc/files/"})
