"""The plain Starlette app wrapped in ``ZeroCopyMiddleware``."""

from __future__ import annotations

from benchmarks.apps.starlette_plain import app as plain_app
from zcmiddleware import ZeroCopyMiddleware

app = ZeroCopyMiddleware(plain_app)
