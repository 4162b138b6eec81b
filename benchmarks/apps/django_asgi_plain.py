"""Plain Django on ASGI: Django's own ``ASGIHandler`` over the plain Django app's URLs."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler  # type: ignore[import-untyped]

import benchmarks.apps.django_plain  # noqa: F401 (settings and URLs)

application = ASGIHandler()
