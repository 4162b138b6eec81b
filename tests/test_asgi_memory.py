"""Fallback servers keep memory bounded: a large file goes through in chunks.

gunicorn's ASGI worker and daphne offer no file extension, so the middleware reads
the file in a worker thread one chunk at a time and waits for the server's ``send``
before the next. The proof is the peak resident set (``VmHWM``) of the process that
runs the app, before and after downloading a file much larger than that growth.
daphne's own ``send`` returns at once (no backpressure); the middleware paces it
by Twisted's transport (zcmiddleware/_daphne.py), and the bound holds there too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _asgi_argv import asgi_argv
from _servers import Server, free_port, run_server

pytestmark = pytest.mark.integration

SIZE = 256 * 2**20 + 5
MARKS = (0, 2**20 + 3, 100 * 2**20, SIZE - 32)  # real bytes in a sparse file
#: how much the peak may grow while the whole file goes through (chunks are 256 KiB)
BOUND = 48 * 2**20
WORKER_PROCESS = {"gunicorn-asgi"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("asgi-memory")
    (directory / "public").mkdir()
    with open(directory / "data.bin", "wb") as f:
        f.truncate(SIZE)
        for mark in MARKS:
            os.pwrite(f.fileno(), hashlib.sha256(str(mark).encode()).digest(), mark)
    return directory


def _sha256(path: Path, start: int = 0, stop: int = SIZE) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        remaining = stop - start
        while remaining:
            chunk = f.read(min(remaining, 2**20))
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


# A fresh server per test: VmHWM is a high-water mark.
# daphne: its send given to the middleware as it is, and wrapped in a closure (as
# Starlette's ServerErrorMiddleware wraps it; here the recording layer does).
@pytest.fixture(params=["gunicorn-asgi", "daphne", "daphne-wrapped"])
def server(request: pytest.FixtureRequest, files: Path) -> Iterator[tuple[str, Server, int]]:
    port = free_port()
    name = str(request.param).removesuffix("-wrapped")
    env = {"ZC_DIR": str(files), "ZC_RECORD": "1" if request.param.endswith("-wrapped") else "0"}
    with run_server(asgi_argv(name, port), port=port, env=env) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as c:  # load everything lazily loaded
            assert c.get("/download", headers={"range": "bytes=0-9"}).status_code == 206
        yield name, srv, srv.children()[0] if name in WORKER_PROCESS else srv.pid


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [(None, 0, SIZE), (f"bytes=3-{SIZE - 2}", 3, SIZE - 1)],
    ids=["whole file", "one large range"],
)
def test_large_file_exact_bytes_bounded_memory(
    server: tuple[str, Server, int], files: Path, range_header: str | None, start: int, stop: int
) -> None:
    name, srv, pid = server
    before = _peak_rss(pid)
    digest = hashlib.sha256()
    headers = {"range": range_header} if range_header else {}
    with (
        httpx.Client(base_url=srv.url, timeout=60) as c,
        c.stream("GET", "/download", headers=headers) as response,
    ):
        assert response.status_code == (206 if range_header else 200)
        assert response.headers["x-zerocopy-path"] == "fallback"
        received = 0
        for chunk in response.iter_bytes():
            digest.update(chunk)
            received += len(chunk)
    assert received == stop - start
    assert digest.hexdigest() == _sha256(files / "data.bin", start, stop)
    growth = _peak_rss(pid) - before
    assert growth < BOUND, f"peak RSS grew by {growth / 2**20:.1f} MiB for a 256 MiB file"
