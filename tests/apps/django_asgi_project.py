"""A single-file Django project on ASGI, for tests/test_django_asgi.py.

``application`` is ``zcmiddleware.django.get_asgi_application()`` (or Django's own,
with ``ZC_DJANGO_PLAIN=1``) behind a recording layer that keeps the ASGI message types
the server received, per ``x-test-id`` (``GET /__record__?id=...``). ``GET /stats``
says how often Django fired ``request_finished``, how many files the views opened
and closed, and how many bytes ``os.sendfile`` carried in this process. Files are
looked up by name in ``ZC_DIR``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from apps.uvicorn_raw_app import STATS as SENDFILE_STATS  # installs the sendfile counter
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.signals import request_finished
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import path

DATA_DIR = os.environ.get("ZC_DIR", os.getcwd())
PLAIN = os.environ.get("ZC_DJANGO_PLAIN") == "1"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zcmiddleware-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.gzip.GZipMiddleware",
            "django.middleware.http.ConditionalGetMiddleware",
        ],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )

COUNTS = {"finished": 0, "opened": 0, "closed": 0}


def _count_finished(**kwargs: Any) -> None:
    COUNTS["finished"] += 1


request_finished.connect(_count_finished)


class CountingFile(io.BufferedReader):
    """A file that counts how often it is really closed."""

    def close(self) -> None:
        if not self.closed:
            COUNTS["closed"] += 1
        super().close()


def _open(name: str) -> CountingFile:
    full = os.path.join(DATA_DIR, os.path.basename(name))
    if not os.path.isfile(full):
        raise Http404(name)
    COUNTS["opened"] += 1
    return CountingFile(io.FileIO(full))


def file(request: HttpRequest, name: str) -> FileResponse:
    return FileResponse(_open(name))


async def afile(request: HttpRequest, name: str) -> FileResponse:
    return FileResponse(_open(name))


def attachment(request: HttpRequest, name: str) -> FileResponse:
    return FileResponse(_open(name), as_attachment=True, filename="report.pdf")


def storage(request: HttpRequest, name: str) -> FileResponse:
    return FileResponse(FileSystemStorage(location=DATA_DIR).open(os.path.basename(name)))


def seeked(request: HttpRequest, name: str) -> FileResponse:
    f = _open(name)
    f.seek(1000)
    return FileResponse(f)


def tagged(request: HttpRequest, name: str) -> FileResponse:
    response = FileResponse(_open(name))
    response["ETag"] = '"v1"'
    response["Cache-Control"] = "max-age=60"
    return response


def memory(request: HttpRequest) -> FileResponse:
    return FileResponse(io.BytesIO(b"in memory " * 1000), filename="memory.txt")


def hello(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(b"hello " * 100, content_type="text/plain")
    response.set_cookie("flavour", "oatmeal")
    return response


def stats(request: HttpRequest) -> HttpResponse:
    payload = {**COUNTS, "sendfile_bytes": SENDFILE_STATS["bytes"]}
    return HttpResponse(json.dumps(payload), content_type="application/json")


urlpatterns = [
    path("file/<str:name>", file),
    path("afile/<str:name>", afile),
    path("attachment/<str:name>", attachment),
    path("storage/<str:name>", storage),
    path("seeked/<str:name>", seeked),
    path("tagged/<str:name>", tagged),
    path("memory", memory),
    path("hello", hello),
    path("stats", stats),
]

if PLAIN:
    from django.core.asgi import get_asgi_application

    django_app: Any = get_asgi_application()
else:
    from zcmiddleware.django import get_asgi_application as zc_get_asgi_application

    django_app = zc_get_asgi_application(debug_header="X-ZC-Path")


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
RECORDS: dict[str, list[str]] = {}


async def application(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Records the message types sent to the server, per ``x-test-id``."""
    if scope["type"] != "http":
        await django_app(scope, receive, send)
        return
    if scope["path"] == "/__record__":
        test_id = parse_qs(scope["query_string"].decode())["id"][0]
        body = json.dumps(RECORDS.pop(test_id, [])).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    test_id = dict(scope["headers"]).get(b"x-test-id", b"").decode()
    if not test_id:
        await django_app(scope, receive, send)
        return
    record = RECORDS.setdefault(test_id, [])

    async def recording_send(message: Message) -> None:
        record.append(message["type"])
        await send(message)

    await django_app(scope, receive, recording_send)
