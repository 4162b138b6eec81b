"""The hardening routes as a Django project on ASGI, behind
``zcmiddleware.django.get_asgi_application`` (the same routes as
``apps/hardening_asgi_app.py``; ``ZC_DIR`` and ``ZC_ROOTS`` as there).

Django refuses CR and LF in a header value itself (``BadHeaderError``: a 500);
``/xsendfile-raw`` puts the raw bytes past that check, so that they reach the
middleware as the Starlette app's do.
"""

from __future__ import annotations

import gc
import json
import os
from typing import Any

from apps.hardening_support import process_stats
from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.urls import path, re_path

DIRECTORY = os.environ.get("ZC_DIR", ".")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zcmiddleware-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )


def file(request: HttpRequest, name: str) -> FileResponse:
    q = request.GET
    f = open(os.path.join(DIRECTORY, name), "rb")  # noqa: SIM115 (FileResponse closes it)
    try:
        response = FileResponse(
            f,
            content_type=q.get("ctype", "application/octet-stream"),
            filename=q.get("filename") or "",
            as_attachment="filename" in q,
        )
        if "hval" in q:
            response["X-App"] = q["hval"]  # CR/LF: Django's BadHeaderError, a 500
    except BaseException:
        f.close()  # the response that would have closed it is never returned
        raise
    return response


def any_path(request: HttpRequest) -> FileResponse:
    return FileResponse(open(request.GET["p"], "rb"))  # noqa: SIM115


def xsendfile(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"the app's own body", headers={"X-Sendfile": request.GET["p"]})


def xsendfile_raw(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"the app's own body")
    value = bytes.fromhex(request.GET["hex"]).decode("latin-1")
    response.headers._store["x-sendfile"] = ("X-Sendfile", value)  # past Django's check
    return response


def stats(request: HttpRequest) -> JsonResponse:
    # Django's ASGI handler drops the response of a client that left while the view
    # ran, with or without zcmiddleware (ZC_DJANGO_PLAIN=1 shows it): its file is
    # closed when the collector frees it, which an idle worker may not do for a long
    # while. Collect first, so that the counts are of descriptors still held.
    gc.collect()
    return JsonResponse(process_stats())


def roots() -> Any:
    raw = os.environ.get("ZC_ROOTS")
    return json.loads(raw) if raw else [os.path.join(DIRECTORY, "public")]


urlpatterns = [
    re_path(r"^file/(?P<name>.+)$", file),
    path("path", any_path),
    path("xsendfile", xsendfile),
    path("xsendfile-raw", xsendfile_raw),
    path("__hz__", stats),
]

if os.environ.get("ZC_DJANGO_PLAIN") == "1":  # Django alone, to compare with
    from django.core.asgi import get_asgi_application as plain

    application: Any = plain()
else:
    from zcmiddleware.django import get_asgi_application

    application = get_asgi_application(
        sendfile_header="X-Sendfile", sendfile_roots=roots(), debug_header="X-ZeroCopy-Path"
    )
