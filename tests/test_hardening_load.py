"""Load through real servers: many clients that leave at random points, and many
slow readers of a large file. Marked ``heavy`` (still run by ``bash .ci/run``).

After 500 concurrent downloads with random aborts the worker's descriptor count is
back at its baseline and its log holds no traceback; while 100 slow readers hold
1 GiB downloads open, the worker's peak RSS grows by a few chunks each at most.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hardening import ASGI_KINDS, KINDS, each_kind, make_directory, serve, stats
from _servers import HOST, Server

from zcmiddleware._options import DEFAULT_CHUNK_SIZE

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

SIZE = 48 * 1024 + 7  # a small file, more than one socket buffer's worth of headers
DATA = os.urandom(SIZE)
BIG = 2**30


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_directory(tmp_path_factory.mktemp("load"), {"small.bin": DATA}, {"big.bin": BIG})


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, directory: Path) -> Iterator[tuple[str, Server]]:
    yield from each_kind(request, directory)


# What each client asks for and where it leaves: (request head, bytes to read, or
# None for the whole response).
PLANS = [
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\n\r\n", None),
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-20000\r\n\r\n", None),
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,5000-9999,-10\r\n\r\n", None),
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\n", 0),  # leaves inside the request
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\n\r\n", 0),
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\n\r\n", 50),
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\n\r\n", 20000),
    (b"GET /file/small.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,5000-9999\r\n\r\n", 300),
    (b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\n", 3 * DEFAULT_CHUNK_SIZE),
]


async def one_client(port: int, rng: random.Random) -> tuple[bool, bytes]:
    head, read = rng.choice(PLANS)
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head)
        await writer.drain()
        if read is None:
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head_bytes.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            data = await reader.readexactly(length)
            return True, head_bytes + data
        if read:
            await reader.readexactly(read)
        return False, b""
    finally:
        # A reset, as a client that vanishes sends.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        writer.close()


async def crowd(port: int, count: int, seed: int) -> list[tuple[bool, bytes]]:
    rng = random.Random(seed)
    tasks = [one_client(port, rng) for _ in range(count)]
    return await asyncio.wait_for(asyncio.gather(*tasks), timeout=240)


def test_500_concurrent_downloads_with_random_aborts(server: tuple[str, Server]) -> None:
    kind, srv = server
    for _ in range(3):  # warm up: lazily opened descriptors belong to the baseline
        asyncio.run(crowd(srv.port, 4, seed=0))
    baseline = stats(srv)["fds"]
    results = asyncio.run(crowd(srv.port, 500, seed=14))
    whole = [body for complete, body in results if complete]
    assert len(whole) > 100
    for response in whole:
        head, _, body = response.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            assert body == DATA
        elif b"multipart/byteranges" not in head:
            assert head.startswith(b"HTTP/1.1 206") and body == DATA[100:20001], head
        else:
            assert head.startswith(b"HTTP/1.1 206") and DATA[5000:10000] in body, head
    deadline = time.monotonic() + 30
    while (fds := stats(srv)["fds"]) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fds <= baseline, f"{kind}: {fds} descriptors open, {baseline} before the load"
    assert "Traceback" not in srv.log(), srv.log()[-3000:]


READERS = 100
RATE = 64 * 1024  # bytes per second per reader
SECONDS = 6.0


def slow_readers(port: int) -> int:
    """100 clients each reading a 1 GiB download at 64 KiB/s for a few seconds; the
    bytes they read in all."""
    socks = []
    try:
        for _ in range(READERS):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.connect((HOST, port))
            s.sendall(b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            s.setblocking(False)
            socks.append(s)
        total, start = 0, time.monotonic()
        while (elapsed := time.monotonic() - start) < SECONDS:
            budget = int(RATE * elapsed) * READERS - total
            for s in socks:
                if budget <= 0:
                    break
                try:
                    got = len(s.recv(min(budget, RATE // 10)))
                except BlockingIOError:
                    continue
                total += got
                budget -= got
            time.sleep(0.1)
        return total
    finally:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            s.close()


@pytest.mark.parametrize("kind", [*ASGI_KINDS, "gunicorn-gthread"])
def test_slow_readers_keep_memory_bounded(directory: Path, kind: str) -> None:
    """Peak RSS of the worker grows by a few chunks per reader at most: the fallback
    reads one chunk, then waits for the server's send (backpressure)."""
    with serve(kind, directory) as srv:
        before = stats(srv)
        read = slow_readers(srv.port)
        after = stats(srv)
        assert "Traceback" not in srv.log(), srv.log()[-3000:]
    # They did read, slowly (gthread serves 8 connections at a time, the rest wait).
    assert 8 * RATE < read < READERS * RATE * (SECONDS + 1)
    growth = (after["hwm_kib"] - before["rss_kib"]) * 1024
    # Measured on stock uvicorn: about 1.1 MiB per reader (a chunk being read, one in
    # the transport's buffer, and the allocator's share); unbounded reading would be
    # gigabytes.
    assert growth < READERS * 8 * DEFAULT_CHUNK_SIZE, f"{kind}: peak RSS grew {growth} bytes"
