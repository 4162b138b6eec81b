"""Hostile input through the real stack: X-Sendfile path tricks, header injection,
and fuzzed Range and conditional headers sent as raw bytes to real servers.

Servers: every kind in ``tests/_hardening.py``, one running server per kind for the
module. The X-Sendfile root is given with a trailing slash; string roots and the
swap of a directory for a symlink between check and open are tested in process.
"""

from __future__ import annotations

import os
import stat
import wsgiref.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _hardening import KINDS, Connections, Reply, get, serve
from _servers import Server

import zcmiddleware._files as files_module
from zcmiddleware import ZeroCopyMiddleware, ZeroCopyWSGIMiddleware

pytestmark = pytest.mark.integration

SIZE = 100_000
DATA = os.urandom(SIZE)
INSIDE = os.urandom(5000)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    (d / "data.bin").write_bytes(DATA)
    public = d / "public"
    public.mkdir()
    (public / "inside.bin").write_bytes(INSIDE)
    (public / "escape.bin").symlink_to(d / "data.bin")
    (public / "escape-dir").symlink_to(d)
    (public / "subdir").mkdir()
    os.mkfifo(public / "fifo")
    try:
        os.mknod(public / "zero", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
    except PermissionError:
        (public / "zero").symlink_to("/dev/zero")  # not root: refused as outside instead
    (d / "public-evil").mkdir()
    (d / "public-evil" / "secret.bin").write_bytes(b"secret")
    return d


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, directory: Path) -> Iterator[tuple[str, Server]]:
    kind = str(request.param)
    with serve(kind, directory, roots=[str(directory / "public") + "/"]) as srv:
        yield kind, srv
        assert "ResourceWarning" not in srv.log()


# ------------------------------------------------------------ X-Sendfile paths


def tricks(d: Path) -> list[tuple[bytes, int]]:
    """(header value, status): each names something outside the root, or not a file."""
    public = f"{d}/public"
    outside = [
        "../data.bin",  # relative to the server's working directory
        f"{public}/../data.bin",
        f"{public}/./subdir/../../data.bin",
        f"{public}//../public-evil/secret.bin",
        f"{public}-evil/secret.bin",  # a sibling that shares the root's prefix
        "/etc/passwd",
        f"{public}/escape.bin",  # a symlink out of the root
        f"{public}/escape-dir/data.bin",  # through a symlinked directory
        "",
        "/",
    ]
    cases = [(p.encode(), 500) for p in outside]
    cases += [
        (f"{public}/%2e%2e/data.bin".encode(), 404),  # never decoded: a missing name
        (f"{public}/%2E%2E%2Fdata.bin".encode(), 404),
        (f"{public}/inside.bin\0/../../data.bin".encode(), 500),  # NUL
        (f"{public}/\0".encode(), 500),
        (f"{public}/missing.bin".encode(), 404),
        (f"{public}/fifo".encode(), 500),
        (f"{public}/subdir".encode(), 500),
        (f"{public}/zero".encode(), 500),
        (f"{public}/in\xc3\xa9.bin".encode(), 404),  # non-ASCII, missing
    ]
    return cases


def assert_refused(reply: Reply, status: int, value: bytes, d: Path) -> None:
    assert reply.status == status, (value, reply.head)
    assert "x-sendfile" not in reply.headers, reply.head
    for secret in (value, str(d).encode(), b"public", b"data.bin", b"passwd", b"secret"):
        if len(secret) > 3:  # "/" is in every Content-Type
            assert secret not in reply.head + reply.body, (secret, reply.head, reply.body)


def test_sendfile_header_tricks_are_refused(server: tuple[str, Server], directory: Path) -> None:
    kind, srv = server
    with Connections(srv.port) as connections:
        for value, status in tricks(directory):
            reply = connections.request(b"/xsendfile-raw?hex=" + value.hex().encode())
            assert_refused(reply, status, value, directory)
    # And what is inside the root is served, exactly, without the header.
    reply = get(srv.port, "/xsendfile?p=" + str(directory / "public" / "inside.bin"))
    assert reply.status == 200
    assert reply.body == INSIDE
    assert "x-sendfile" not in reply.headers
    assert "Traceback" not in srv.log(), srv.log()


# The same in process, for what a real server cannot be made to show: roots given as
# one string, and a directory swapped for a symlink between the check and the open.


def asgi_sendfile(mw: ZeroCopyMiddleware, value: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"t")], "client": None, "server": None,
    }  # fmt: skip
    anyio.run(mw, scope, receive, send)
    start = messages[0]
    body = b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], dict(start["headers"]), body


def asgi_app(value: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-sendfile", value), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


def wsgi_sendfile(roots: Any, value: bytes) -> tuple[int, dict[str, str], bytes]:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Sendfile", value.decode("latin-1"))])
        return [b""]

    mw = ZeroCopyWSGIMiddleware(app, sendfile_header="X-Sendfile", sendfile_roots=roots)
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    started: list[Any] = []
    result = mw(environ, lambda status, headers: started.append((status, headers)))
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    status, headers = started[0]
    return int(status[:3]), {k.lower(): v for k, v in headers}, body


def serve_in_process(side: str, roots: Any, value: bytes) -> tuple[int, bool, bytes]:
    """(status, whether the header reached the client, body) on the ASGI or WSGI side."""
    if side == "asgi":
        mw = ZeroCopyMiddleware(asgi_app(value), sendfile_header="X-Sendfile", sendfile_roots=roots)
        status, headers, body = asgi_sendfile(mw, value)
        return status, b"x-sendfile" in headers, body
    status, wsgi_headers, body = wsgi_sendfile(roots, value)
    return status, "x-sendfile" in wsgi_headers, body


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
def test_sendfile_roots_as_one_string_is_one_root(directory: Path, side: str) -> None:
    """``sendfile_roots="/srv/files"`` means that one directory, not its characters
    (a root of "/" would let every file through)."""
    root = str(directory / "public")
    for value in (str(directory / "data.bin"), "/etc/passwd"):
        status, leaked, body = serve_in_process(side, root, value.encode())
        assert (status, leaked) == (500, False), value
        assert value.encode() not in body
    status, leaked, body = serve_in_process(side, root, f"{root}/inside.bin".encode())
    assert (status, leaked, body) == (200, False, INSIDE)


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
def test_directory_swapped_for_a_symlink_between_check_and_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    """The path is checked, then a directory on it becomes a symlink out of the root,
    then the file is opened: what was opened is checked again and refused."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f.bin").write_bytes(b"inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f.bin").write_bytes(b"outside, secret")
    real_open = files_module.open_fd

    def swap_then_open(path: Any) -> Any:
        os.rename(root / "sub", tmp_path / "sub-away")
        os.symlink(tmp_path / "outside", root / "sub")
        return real_open(path)

    monkeypatch.setattr(files_module, "open_fd", swap_then_open)
    status, leaked, body = serve_in_process(side, [str(root)], str(root / "sub" / "f.bin").encode())
    assert (status, leaked) == (500, False)
    assert b"secret" not in body and b"f.bin" not in body
