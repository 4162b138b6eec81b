"""Faults through real servers: the client leaves, the file changes under the send,
the named file is not one we can send, the server is told to stop.

Each test runs on every kind in ``tests/_hardening.py`` (uvicorn with and without
``zcmiddleware.uvicorn``, granian, gunicorn sync and gthread) unless it says why not.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hardening import KINDS, WSGI_KINDS, RawClient, get, serve, stats
from _servers import Server

pytestmark = pytest.mark.integration

BIG = 2**30  # sparse: no disk used, but every byte read counts in rchar
SIZE = 2 * 2**20 + 4097
DATA = os.urandom(SIZE)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("faults")
    (d / "data.bin").write_bytes(DATA)
    with open(d / "big.bin", "wb") as f:
        f.truncate(BIG)
    (d / "public").mkdir()
    return d


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, directory: Path) -> Iterator[tuple[str, Server]]:
    kind = str(request.param)
    with serve(kind, directory) as srv:
        yield kind, srv
        assert "ResourceWarning" not in srv.log()


def settled_rchar(srv: Server, timeout: float = 60.0) -> int:
    """The worker's rchar once it stops growing (two polls 0.5 s apart agree within
    1 MiB: the stats request itself reads a few KiB)."""
    deadline = time.monotonic() + timeout
    last = stats(srv)["rchar"]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = stats(srv)["rchar"]
        if now - last < 2**20:
            return now
        last = now
    raise AssertionError(f"the server is still reading after {timeout}s")


def test_client_leaving_stops_the_reads(server: tuple[str, Server]) -> None:
    """The client reads 1 MiB of a 1 GiB download and closes: the server reads at
    most a few chunks more, not the rest of the file (on stock uvicorn the fallback
    used to read all of it, every pread shielded, send no longer suspending)."""
    kind, srv = server
    before = settled_rchar(srv)
    with RawClient(srv.port) as client:
        client.sock.sendall(b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        received = 0
        while received < 2**20:
            received += len(client.sock.recv(1 << 16))
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    read = settled_rchar(srv) - before
    # The socket buffers and a few chunks in flight; far from 1 GiB.
    assert read < 96 * 2**20, f"{kind}: {read} bytes read after the client left"


# ------------------------------------------------------------ not a file we can send


def assert_still_serving(srv: Server) -> None:
    reply = get(srv.port, "/file/data.bin")
    assert reply.status == 200
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(DATA).digest()


@pytest.mark.parametrize("name", ["/dev/zero", "directory", "missing"])
def test_app_names_what_is_not_a_regular_file(server: tuple[str, Server], name: str) -> None:
    """The app's usual handling answers (Starlette raises: 500; Flask sends ``/dev/zero``
    as the empty file its stat says it is, and 500 for the rest), never an endless body,
    and the server goes on serving: more requests than gthread has threads."""
    kind, srv = server
    d = Path(srv.log_path).parent  # any directory: it is never served
    path = {"/dev/zero": "/dev/zero", "directory": str(d), "missing": "/nonexistent/file"}[name]
    for _ in range(10):
        reply = get(srv.port, "/path?p=" + path)
        if reply.status == 200:
            assert (name, kind in WSGI_KINDS, reply.body) == ("/dev/zero", True, b"")
        else:
            assert reply.status == 500, reply.head
    assert_still_serving(srv)
