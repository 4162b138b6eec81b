"""A single-file Django project whose FileResponse gains Range support and sendfile.

    python examples/django_app.py             # wsgiref, http://127.0.0.1:8000/
    gunicorn --chdir examples -k gthread -b 127.0.0.1:8000 django_app:application

Then ``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``: Django's
``FileResponse`` answers Range with 200 and the whole file; behind the middleware it
is a 206 of 100 bytes -- and on gunicorn both go out by sendfile(2).
"""

from __future__ import annotations

import os
import sys
import tempfile

import django
from django.conf import settings
from django.http import FileResponse, HttpRequest
from django.urls import path

from zcmiddleware.django import get_wsgi_application

PATH = os.path.join(tempfile.gettempdir(), "zcmiddleware-django-example.bin")

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
)
django.setup()

if not os.path.exists(PATH):
    with open(PATH, "wb") as f:
        f.write(os.urandom(8 * 1024 * 1024))


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(open(PATH, "rb"), filename="download.bin")  # noqa: SIM115


urlpatterns = [path("download", download)]

# The one line: zcmiddleware's get_wsgi_application instead of Django's.
application = get_wsgi_application(debug_header="X-ZeroCopy-Path")

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    with make_server("127.0.0.1", port, application) as server:
        print(f"http://127.0.0.1:{port}/download")
        server.serve_forever()
