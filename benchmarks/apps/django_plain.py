"""Plain Django: ``FileResponse`` (Django itself answers no Range)."""

from __future__ import annotations

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.core.handlers.wsgi import WSGIHandler  # type: ignore[import-untyped]
from django.http import FileResponse, Http404, HttpRequest  # type: ignore[import-untyped]
from django.urls import path as route  # type: ignore[import-untyped]

from benchmarks.apps import resolve

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()


def serve_file(request: HttpRequest, name: str) -> FileResponse:
    path = resolve(name)
    if path is None:
        raise Http404(name)
    return FileResponse(path.open("rb"))


urlpatterns = [route("files/<str:name>", serve_file)]

application = WSGIHandler()
