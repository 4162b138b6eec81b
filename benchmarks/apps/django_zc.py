"""The plain Django app wrapped in ``ZeroCopyWSGIMiddleware``."""

from __future__ import annotations

from benchmarks.apps.django_plain import application as plain_application
from zcmiddleware import ZeroCopyWSGIMiddleware

application = ZeroCopyWSGIMiddleware(plain_application)
