"""A single-file Django project through ``zcmiddleware.django.get_wsgi_application``
(``ZeroCopyWSGIMiddleware`` around Django's), for the WSGI tests.

``FileResponse`` has no Range support of its own; with the middleware it answers
ranges, multipart ranges and conditional requests (docs/http.md).
"""

from __future__ import annotations

import os

import django
from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import path

from zcmiddleware.django import get_wsgi_application

DATA_DIR = os.environ.get("ZC_DATA_DIR", os.getcwd())

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zcmiddleware-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.http.ConditionalGetMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()


def file(request: HttpRequest, name: str) -> FileResponse:
    full = os.path.join(DATA_DIR, os.path.basename(name))
    if not os.path.isfile(full):
        raise Http404(name)
    return FileResponse(open(full, "rb"))  # noqa: SIM115 (FileResponse closes it)


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello", content_type="text/plain")


def page(request: HttpRequest) -> HttpResponse:
    # A page whose conditional GET Django's ConditionalGetMiddleware answers.
    response = HttpResponse(b"a page, not a file", content_type="text/plain")
    response["ETag"] = '"page-v1"'
    return response


urlpatterns = [path("file/<str:name>", file), path("hello", hello), path("page", page)]

application = get_wsgi_application(debug_header="X-ZC-Path")
