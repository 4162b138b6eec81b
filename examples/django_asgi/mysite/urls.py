"""One view: an ordinary Django FileResponse."""

from django.conf import settings
from django.http import FileResponse, HttpRequest
from django.urls import path


def download(request: HttpRequest) -> FileResponse:
    # Django closes the file after the response, as always.
    return FileResponse(open(settings.DOWNLOAD_PATH, "rb"), filename="download.bin")  # noqa: SIM115


urlpatterns = [path("download", download)]
