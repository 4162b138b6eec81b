"""What both nginx offload test apps share: their directories, the mapping, and the
headers they set on every file response (to see which of them reach the client)."""

from __future__ import annotations

import os

MEDIA = os.environ.get("ZC_MEDIA_DIR", "")
OTHER = os.environ.get("ZC_OTHER_DIR", "")
ACCEL_REDIRECT = {MEDIA: "/_zc/media/"}
DEBUG_HEADER = "X-ZeroCopy-Path"
APP_HEADERS = {
    "Cache-Control": "public, max-age=60",
    "Content-Disposition": "inline",
    "Vary": "Accept-Encoding",
    "Set-Cookie": "seen=1; Path=/",
    "Expires": "Thu, 01 Dec 2050 16:00:00 GMT",
    "X-App": "custom",
}
