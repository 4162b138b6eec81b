"""A single-file Django project whose FileResponse gains Range support and sendfile.

    python examples/django_app.py             # wsgiref, http://127.0.0.1:8000/
    gunicorn --chdir examples -k gthread -b 127.0.0.1:8000 django_app:application

Then open http://127.0.0.1:8000/ and seek in the video, or
``curl -r 0-99 http://127.0.0.1:8000/download -o part.bin``: Django's
``FileResponse`` answers Range with 200 and the whole file; behind the middleware it
is a 206 of 100 bytes -- and on gunicorn both go out by sendfile(2).
"""

from __future__ import annotations

import django
from _content import large_file, options, page, video_file
from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import path

from zcmiddleware.django import get_wsgi_application

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
)
django.setup()

PATH = large_file()
VIDEO = video_file()


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(page(VIDEO))


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(open(PATH, "rb"), filename="download.bin")  # noqa: SIM115


def video(request: HttpRequest) -> FileResponse:
    if VIDEO is None:
        raise Http404("no video: ffmpeg is not installed")
    return FileResponse(open(VIDEO, "rb"), content_type="video/webm")  # noqa: SIM115


urlpatterns = [path("", index), path("download", download), path("video.webm", video)]

# The one line: zcmiddleware's get_wsgi_application instead of Django's.
application = get_wsgi_application(debug_header="X-ZeroCopy-Path")

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    args = options(__doc__.splitlines()[0])
    with make_server("127.0.0.1", args.port, application) as server:
        print(f"http://127.0.0.1:{args.port}/")
        server.serve_forever()
