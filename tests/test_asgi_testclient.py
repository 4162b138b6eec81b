"""The app's own test client keeps working with ZeroCopyMiddleware installed."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from apps.asgi_app import create_app

from zcmiddleware import ZeroCopyMiddleware

with warnings.catch_warnings():
    # Starlette 1.10 deprecates driving its TestClient with httpx (in favour of httpx2).
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

DATA = os.urandom(100_000)


def test_starlette_testclient_keeps_working(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(DATA)
    app = create_app(str(tmp_path))
    app.add_middleware(ZeroCopyMiddleware)
    with TestClient(app) as client:
        full = client.get("/download")
        assert full.status_code == 200
        assert full.content == DATA
        part = client.get("/download", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206
        assert part.content == DATA[10:20]
        assert client.get("/text").text == "hello, not a file"
        assert client.head("/download").content == b""
        etag = full.headers["etag"]
        assert client.get("/download", headers={"If-None-Match": etag}).status_code == 304
        assert client.get("/static/data.bin", headers={"Range": "bytes=-3"}).content == DATA[-3:]
