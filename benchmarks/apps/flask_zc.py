"""The plain Flask app wrapped in ``ZeroCopyWSGIMiddleware``."""

from __future__ import annotations

from benchmarks.apps.flask_plain import app
from zcmiddleware import ZeroCopyWSGIMiddleware

app.wsgi_app = ZeroCopyWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
