"""The plain Django app on ASGI through ``zcmiddleware.django.get_asgi_application``."""

from __future__ import annotations

import benchmarks.apps.django_plain  # noqa: F401 (settings and URLs)
from zcmiddleware.django import get_asgi_application

application = get_asgi_application()
