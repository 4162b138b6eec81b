"""Faults through real servers: the client leaves, the file changes under the send,
the named file is not one we can send, the server is told to stop.

Each test runs on every kind in ``tests/_hardening.py`` (uvicorn with and without
``zcmiddleware.uvicorn``, granian, gunicorn sync and gthread) unless it says why not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hardening import KINDS, WSGI_KINDS, RawClient, each_kind, get, make_directory, serve, stats
from _servers import Server

pytestmark = pytest.mark.integration

BIG = 2**30  # sparse
SIZE = 2 * 2**20 + 4097
DATA = os.urandom(SIZE)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_directory(tmp_path_factory.mktemp("faults"), {"data.bin": DATA}, {"big.bin": BIG})


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, directory: Path) -> Iterator[tuple[str, Server]]:
    yield from each_kind(request, directory)


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


@pytest.mark.parametrize("name", ["/dev/zero", "directory", "missing", "fifo"])
def test_app_names_what_is_not_a_regular_file(
    server: tuple[str, Server], directory: Path, name: str
) -> None:
    """The app's usual handling answers (Starlette raises: 500; Flask sends ``/dev/zero``
    as the empty file its stat says it is, and 500 for the rest), never an endless body,
    and the server goes on serving: more requests than gthread has threads."""
    kind, srv = server
    if name == "fifo" and kind in WSGI_KINDS:
        pytest.skip("Flask's send_file opens a FIFO itself, blocking, before the middleware")
    if name in ("fifo", "/dev/zero") and kind == "django-asgi":
        # zcmiddleware.django sends what is not a regular file exactly as Django does,
        # and Django on ASGI reads such a FileResponse whole into memory before its
        # first byte (or blocks in the view's open of a FIFO): endless, with or without
        # the middleware (docs/django.md).
        pytest.skip("Django reads a device or FIFO FileResponse without end, as without us")
    fifo = directory / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    path = {
        "/dev/zero": "/dev/zero",
        "directory": str(directory),
        "missing": "/nonexistent/file",
        "fifo": str(fifo),
    }[name]
    for _ in range(10):
        reply = get(srv.port, "/path?p=" + path)
        if reply.status == 200:
            assert (name, kind in WSGI_KINDS, reply.body) == ("/dev/zero", True, b"")
        else:
            assert reply.status == 500, reply.head
    assert_still_serving(srv)


@pytest.fixture(scope="module")
def unreadable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory anyone may enter, holding ``data.bin`` and two ``locked.bin`` (mode
    000: EACCES for any process without CAP_DAC_OVERRIDE, which root's servers drop)."""
    d = Path(tempfile.mkdtemp(prefix="zc-eacces-"))
    try:
        make_directory(d, {"data.bin": DATA}, {})
        for path in (d / "locked.bin", d / "public" / "locked.bin"):
            path.write_bytes(b"secret")
            path.chmod(0)
        for path in (d, d / "public", d / "data.bin"):
            path.chmod(0o755)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_the_server_may_not_read(unreadable: Path, kind: str) -> None:
    """EACCES, named by the app or by X-Sendfile: an error that names no path. A 500,
    except where granian opens an app's whole file itself (pathsend, planned from the
    app's headers): it answers its own 404, as it does without the middleware."""
    # As root, the servers run without the capabilities that pass over file modes
    # (still root, so the venv and the checkout stay readable wherever CI put them).
    blind = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    with serve(kind, unreadable, prefix=blind if os.geteuid() == 0 else ()) as srv:
        status = Path(f"/proc/{stats(srv)['pid']}/status").read_text()
        effective = int(status.split("\nCapEff:\t")[1].split()[0], 16)
        assert not effective & 0b110  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: EACCES is real
        for target in ("/file/locked.bin", f"/xsendfile?p={unreadable}/public/locked.bin"):
            reply = get(srv.port, target)
            by_granian = kind == "granian" and target.startswith("/file/")
            assert reply.status == (404 if by_granian else 500), reply.head
            assert b"locked" not in reply.head + reply.body
            assert b"secret" not in reply.body
            assert "x-sendfile" not in reply.headers
        assert_still_serving(srv)


# ------------------------------------------------------------ the client leaves


def fds_back_to(srv: Server, baseline: int, timeout: float = 30.0) -> int:
    """The worker's descriptor count once it is back at ``baseline`` (or the last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        now = stats(srv)["fds"]
        if now <= baseline or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def abort(client: RawClient) -> None:
    """Close with a reset (SO_LINGER 0), as a client that vanishes does."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    client.close()


ABORTS = [
    # (request head, bytes of the response read before the client leaves)
    (b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n", 0),  # during the request headers
    (b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\n", 0),  # before any of the answer
    (b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\n", 100),  # inside the headers
    (b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n\r\n", 3 * 2**20),  # mid-body
    (b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=5-300000000\r\n\r\n", 2**20),
    # between multipart parts: the first part is 2 MiB, the second starts past 512 MiB
    (
        b"GET /file/big.bin HTTP/1.1\r\nHost: t\r\n"
        b"Range: bytes=0-2097151,536870912-805306367\r\n\r\n",
        2**21 + 200,
    ),
    (b"GET /file/data.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,20-29,40-\r\n\r\n", 150),
]


def test_client_leaving_at_any_point_leaks_nothing(server: tuple[str, Server]) -> None:
    kind, srv = server
    baseline = stats(srv)["fds"]
    for _ in range(3):
        for head, read in ABORTS:
            client = RawClient(srv.port)
            client.sock.sendall(head)
            received = 0
            while received < read:
                chunk = client.sock.recv(min(1 << 16, read - received))
                if not chunk:
                    break
                received += len(chunk)
            abort(client)
    assert fds_back_to(srv, baseline) <= baseline, f"{kind}: descriptors leaked"
    assert_still_serving(srv)


# ------------------------------------------------------------ the file changes


CHANGING = 64 * 2**20


def changing_file(directory: Path, name: str, seed: int) -> tuple[Path, str]:
    """A sparse 64 MiB file with 4 KiB of data at every MiB, and its sha256."""
    path = directory / name
    with open(path, "wb") as f:
        f.truncate(CHANGING)
        for mib in range(0, CHANGING, 2**20):
            os.pwrite(f.fileno(), hashlib.sha256(b"%d-%d" % (seed, mib)).digest() * 128, mib)
    return path, file_sha256(path)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def start_download(srv: Server, name: str) -> tuple[RawClient, int, bytes]:
    """Request ``name``, read the head and the first MiB: the send is under way."""
    client = RawClient(srv.port)
    client.sock.sendall(b"GET /file/" + name.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    while b"\r\n\r\n" not in client.buffer or len(client.buffer) < 2**20:
        client._fill()
    head, _, rest = client.buffer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(next(v for k, v in _fields(head) if k == b"content-length"))
    client.buffer = b""
    return client, length, rest


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (k.strip().lower(), v.strip())
        for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    ]


def read_rest(client: RawClient, first: bytes, length: int) -> bytes:
    body = bytearray(first)
    while len(body) < length:
        chunk = client.sock.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    return bytes(body)


@pytest.mark.parametrize("change", ["rename", "unlink", "grow"])
def test_file_replaced_deleted_or_grown_mid_send(
    server: tuple[str, Server], directory: Path, change: str
) -> None:
    """The response keeps the bytes it announced: the held descriptor's, exactly."""
    kind, srv = server
    name = f"{change}-{kind}.bin"
    path, digest = changing_file(directory, name, seed=1)
    client, length, first = start_download(srv, name)
    with client:
        if change == "rename":
            other, _ = changing_file(directory, "other-" + name, seed=2)
            os.rename(other, path)
        elif change == "unlink":
            path.unlink()
        else:
            with open(path, "ab") as f:
                f.write(b"appended after the response started" * 1000)
        body = read_rest(client, first, length)
    assert length == CHANGING
    assert len(body) == length
    assert hashlib.sha256(body).hexdigest() == digest
    path.unlink(missing_ok=True)


def test_file_truncated_mid_send_aborts_the_response(
    server: tuple[str, Server], directory: Path
) -> None:
    """Never a completed response shorter than its Content-Length: the connection ends
    before ``length`` bytes, and the bytes that did arrive are the file's."""
    kind, srv = server
    name = f"shrink-{kind}.bin"
    path, _ = changing_file(directory, name, seed=3)
    expected_head = path.read_bytes()[: 4 * 2**20]
    client, length, first = start_download(srv, name)
    with client:
        os.truncate(path, 4 * 2**20)
        try:
            body = read_rest(client, first, length)
        except ConnectionResetError:
            body = b""
        else:
            assert len(body) < length, f"{kind}: a shrunken file completed its response"
            # Before the shrink, the bytes are the file's.
            assert body[: len(first)] == expected_head[: len(first)]
    path.unlink()
    assert_still_serving(srv)


# ------------------------------------------------------------ the server stops


def exits(pid: int, timeout: float) -> bool:
    """Whether ``pid`` is gone (or a zombie: it has exited) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_during_downloads(directory: Path, kind: str) -> None:
    """SIGTERM while four downloads are under way: each ends (whole, or cut off),
    none hangs, and the server and its workers exit."""
    mid = directory / "mid.bin"
    if not mid.exists():
        with open(mid, "wb") as f:
            f.truncate(64 * 2**20)
    # A sync worker serves one connection at a time: one worker per download.
    workers = 4 if kind == "gunicorn-sync" else 1
    with serve(kind, directory, workers=workers) as srv, contextlib.ExitStack() as stack:
        clients = []
        for extra in [b"", b"Range: bytes=1-40000000\r\n"] * 2:
            client = stack.enter_context(RawClient(srv.port))
            client.sock.sendall(b"GET /file/mid.bin HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")
            while len(client.buffer) < 2**20:
                client._fill()
            clients.append(client)
        children = srv.children()
        os.kill(srv.pid, signal.SIGTERM)
        for client in clients:
            # Read to the end: whole, or cut off, but never a hang (the socket timeout).
            with contextlib.suppress(ConnectionResetError):
                while client.sock.recv(1 << 20):
                    pass
        srv.process.wait(60)
        for pid in children:
            assert exits(pid, 30), f"{kind}: worker {pid} outlived SIGTERM"
        assert "Traceback" not in srv.log(), srv.log()
