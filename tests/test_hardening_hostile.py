"""Hostile input through the real stack: X-Sendfile path tricks, header injection,
and fuzzed Range and conditional headers sent as raw bytes to real servers.

Servers: every kind in ``tests/_hardening.py``, one running server per kind for the
module. The X-Sendfile root is given with a trailing slash; string roots and the
swap of a directory for a symlink between check and open are tested in process.
"""

from __future__ import annotations

import os
import re
import stat
import urllib.parse
import wsgiref.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from _hardening import (
    KINDS,
    WSGI_KINDS,
    ConnectionClosed,
    Connections,
    Reply,
    each_kind,
    get,
)
from _multipart import parse_byteranges
from _servers import Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zcmiddleware._asgi as asgi_module
import zcmiddleware._files as files_module
from zcmiddleware import ZeroCopyMiddleware, ZeroCopyWSGIMiddleware
from zcmiddleware._http import FileFacts, FileSlice, plan_response

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
    yield from each_kind(request, directory, roots=[str(directory / "public") + "/"])


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
        (f"{public}/inside.bin\r\nX-Injected: 1".encode(), 404),  # CR LF: a missing name
    ]
    return cases


def assert_refused(reply: Reply, status: int, value: bytes, d: Path) -> None:
    assert reply.status == status, (value, reply.head)
    assert "x-sendfile" not in reply.headers, reply.head
    assert injected_lines(reply.head) == [], reply.head
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


def asgi_sendfile(
    mw: ZeroCopyMiddleware, value: bytes, extensions: dict[str, Any] | None = None
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Run ``mw`` as a server offering ``extensions`` would: a pathsend is read from
    its path at the moment it is sent, as granian opens it."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.pathsend":
            body = await anyio.Path(message["path"]).read_bytes()
            message = {"type": "http.response.body", "body": body}
        messages.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"t")], "client": None, "server": None,
        "extensions": extensions or {},
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


class SwapLayout:
    """``root/sub/f.bin`` ("inside"), ``outside/f.bin`` ("secret"), and ``swap()``,
    which turns ``root/sub`` into a symlink to ``outside``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.root = tmp_path / "root"
        (self.root / "sub").mkdir(parents=True)
        (self.root / "sub" / "f.bin").write_bytes(b"inside")
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "f.bin").write_bytes(b"secret")
        self.value = str(self.root / "sub" / "f.bin").encode()

    def swap(self) -> None:
        os.rename(self.root / "sub", self.tmp_path / "sub-away")
        os.symlink(self.tmp_path / "outside", self.root / "sub")


@pytest.mark.parametrize("side", ["asgi", "wsgi"])
def test_directory_swapped_for_a_symlink_between_check_and_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    """The path is checked, then a directory on it becomes a symlink out of the root,
    then the file is opened: what was opened is checked again and refused."""
    layout = SwapLayout(tmp_path)
    real_open = files_module.open_fd

    def swap_then_open(path: Any) -> Any:
        layout.swap()
        return real_open(path)

    monkeypatch.setattr(files_module, "open_fd", swap_then_open)
    status, leaked, body = serve_in_process(side, [str(layout.root)], layout.value)
    assert (status, leaked) == (500, False)
    assert b"secret" not in body and b"f.bin" not in body


def test_sendfile_header_path_is_not_reopened_by_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server offering only pathsend opens the path again: a directory swapped for a
    symlink after the middleware's checked open would make it send a file outside the
    roots. An X-Sendfile file goes from the descriptor that was checked instead."""
    layout = SwapLayout(tmp_path)
    real_open = asgi_module.open_in_roots

    def open_then_swap(path: str, roots: Any) -> Any:
        opened = real_open(path, roots)
        layout.swap()
        return opened

    monkeypatch.setattr(asgi_module, "open_in_roots", open_then_swap)
    mw = ZeroCopyMiddleware(
        asgi_app(layout.value), sendfile_header="X-Sendfile", sendfile_roots=[layout.root]
    )
    status, _, body = asgi_sendfile(mw, layout.value, {"http.response.pathsend": {}})
    assert (status, body) == (200, b"inside")


# ------------------------------------------------------------ header injection

INJECTIONS = [
    "a\r\nX-Injected: 1",
    "a\nX-Injected: 1",
    "a\rX-Injected: 1",
    "a\r\n\r\nX-Injected: 1",
]


def injection_target(kind: str, where: str, value: str) -> bytes:
    """A file response whose filename, Content-Type or X-App header carries ``value``."""
    if kind in WSGI_KINDS and where != "filename":
        # Flask refuses such values itself; the raw app hands them to the middleware.
        safe = b"text/plain".hex()
        hval = value.encode().hex() if where == "hval" else "6f6b"
        ctype = value.encode().hex() if where == "ctype" else safe
        return f"/file-raw?name=data.bin&hex={hval}&ctypehex={ctype}".encode()
    return f"/file/data.bin?{where}={urllib.parse.quote(value)}".encode()


def injected_lines(data: bytes) -> list[bytes]:
    """Lines (split at CR or LF, as a lenient client would) that start a new header."""
    return [line for line in re.split(rb"\r|\n", data) if line.lower().startswith(b"x-injected")]


@pytest.mark.parametrize("where", ["filename", "ctype", "hval"])
def test_header_values_with_cr_lf_never_make_a_second_line(
    server: tuple[str, Server], where: str
) -> None:
    """Whole file and multipart (whose parts repeat the app's Content-Type): the
    server may refuse the response (500), but no injected line reaches the wire."""
    kind, srv = server
    with Connections(srv.port) as connections:
        for value in INJECTIONS:
            for ranges in (b"", b"Range: bytes=0-9,20-29\r\n"):
                try:
                    reply = connections.request(injection_target(kind, where, value), ranges)
                except ConnectionClosed as closed:
                    # uvicorn refuses the value after it marked the response started:
                    # it closes the connection, with or without the middleware.
                    assert injected_lines(closed.args[0]) == []
                    connections.close()
                    continue
                assert reply.status in (200, 206, 500), reply.head
                assert injected_lines(reply.head) == [], reply.head
                assert injected_lines(reply.body) == [], reply.body[:300]
                if reply.status == 200:
                    assert reply.body == DATA


def test_planner_never_repeats_a_content_type_with_a_line_break() -> None:
    """Two ranges of a response whose Content-Type holds CR or LF: the whole file,
    once, instead of a multipart body that would carry the value in every part."""
    facts = FileFacts(size=100, mtime_ns=0)
    for ctype in ("text/plain\r\nX-Injected: 1", "a\nb", "a\0b"):
        plan = plan_response(
            "GET", {"range": "bytes=0-9,20-29"}, 200, facts, [("content-type", ctype)]
        )
        assert (plan.status, plan.segments) == (200, (FileSlice(0, 100),))
    plan = plan_response("GET", {"range": "bytes=0-9,20-29"}, 200, facts, [("content-type", "a/b")])
    assert plan.kind == "multipart"


# ------------------------------------------------------------ fuzzed Range and conditionals

NUMBER = st.one_of(st.integers(0, 2 * SIZE), st.integers(0, 10**40))
RANGE_SPEC = st.one_of(
    st.tuples(NUMBER, NUMBER).map(lambda t: f"{t[0]}-{t[1]}"),
    NUMBER.map(lambda n: f"{n}-"),
    NUMBER.map(lambda n: f"-{n}"),
    st.sampled_from(["", "-", "a-b", " 1 - 2 ", "-0", "0--1", "1-2-3", "+1-2", "0x10-20"]),
)
# Arbitrary characters, CR, LF, NUL and non-ASCII among them.
NOISE = st.text(st.characters(codec="utf-8"), max_size=30).map(str.encode) | st.binary(max_size=30)
RANGE = st.one_of(
    st.lists(RANGE_SPEC, min_size=1, max_size=12).map(lambda s: ("bytes=" + ",".join(s)).encode()),
    st.tuples(st.sampled_from(["Bytes=", "items=", "bytes =", "=", "bytes=,"]), RANGE_SPEC).map(
        lambda t: (t[0] + t[1]).encode()
    ),
    # up to 1,000 ranges, overlapping or not
    st.tuples(st.integers(1, 1000), st.integers(1, 200)).map(
        lambda t: ("bytes=" + ",".join(f"{i * t[1]}-{i * t[1] + 5}" for i in range(t[0]))).encode()
    ),
    NOISE,
)
DATE = st.one_of(
    st.sampled_from(
        [
            b"{lm}",
            b"Thu, 01 Jan 1970 00:00:00 GMT",
            b"Fri, 31 Dec 9999 23:59:59 GMT",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"0",
            b"-1",
        ]
    ),  # fmt: skip
    NOISE,
)
TAG = st.one_of(
    st.sampled_from([b"{etag}", b"*", b'"x"', b'W/"x"', b"W/{etag}", b'"x", {etag}', b'""']),
    NOISE,
)
CONDITIONALS = {
    "Range": RANGE,
    "If-Range": st.one_of(TAG, DATE),
    "If-Match": TAG,
    "If-None-Match": TAG,
    "If-Modified-Since": DATE,
    "If-Unmodified-Since": DATE,
}
REQUESTS = st.tuples(
    st.sampled_from([b"GET", b"GET", b"GET", b"HEAD"]),
    st.lists(
        st.sampled_from(list(CONDITIONALS)).flatmap(
            lambda name: CONDITIONALS[name].map(lambda value: (name.encode(), value))
        ),
        max_size=4,
    ),
)


STATUSES: dict[str, set[int]] = {kind: set() for kind in KINDS}


def check_file_reply(reply: Reply, method: bytes) -> None:
    """Never a 5xx; a body that is exactly what its headers say, and the file's bytes."""
    assert reply.status < 500, reply.head
    assert len(reply.body) <= 2 * SIZE + 2**16, (len(reply.body), reply.head)
    if method == b"HEAD" or reply.status not in (200, 206):
        return
    if reply.status == 200:
        assert reply.body == DATA
        return
    content_type = reply.headers["content-type"]
    if content_type.startswith("multipart/byteranges"):
        parts = parse_byteranges(content_type, reply.body)
    else:
        parts = [(reply.headers["content-range"], reply.body)]
    for content_range, data in parts:
        first, last, total = map(
            int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range).groups()
        )  # type: ignore[union-attr]
        assert total == SIZE and data == DATA[first : last + 1]


def test_fuzzed_range_and_conditionals_through_the_server(server: tuple[str, Server]) -> None:
    kind, srv = server
    validators = get(srv.port, "/file/data.bin").headers
    etag, lm = validators["etag"].encode(), validators["last-modified"].encode()
    check = b"Range: bytes=10-19\r\n"

    with Connections(srv.port) as connections:

        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
        @given(REQUESTS)
        def fuzz(request: tuple[bytes, list[tuple[bytes, bytes]]]) -> None:
            method, fields = request
            head = b"".join(
                name + b": " + value.replace(b"{etag}", etag).replace(b"{lm}", lm) + b"\r\n"
                for name, value in fields
            )
            reply = connections.request(b"/file/data.bin", head, method)
            check_file_reply(reply, method)
            STATUSES[kind].add(reply.status)
            if b"\r" in head[:-2] or b"\n" in head[:-2].replace(b"\r\n", b""):
                connections.close()  # it may have been read as two requests
            elif connections.client is not None:
                # Kept alive: the same connection answers the next request exactly.
                again = connections.request(b"/file/data.bin", check)
                assert (again.status, again.body) == (206, DATA[10:20]), again.head

        fuzz()
    # The fuzzing reached the planner's answers, not only the server's 400s.
    seen = STATUSES[kind]
    assert {200, 206} <= seen and seen & {304, 412, 416}, seen
