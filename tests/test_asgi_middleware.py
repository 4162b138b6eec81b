"""ZeroCopyMiddleware against a recorded server: every capability set, asyncio and trio.

The fake server records each message the middleware sends and turns it into body
bytes the way a real server would (``zerocopysend`` and ``pathsend`` are read at the
moment they are sent), so each test checks both the exact bytes and the path taken.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from _fakes import CAPABILITIES, PATHSEND, ZEROCOPYSEND, Message
from _fakes import AsgiServer as Server
from _multipart import parse_byteranges
from apps.asgi_app import DEBUG_HEADER, create_app, wrap
from conftest import open_fds

from zcmiddleware import ABORTS_SHORT_FILES, OPENS_BEFORE_START, PATHSEND_RANGE, ZeroCopyMiddleware
from zcmiddleware._errors import FileShrankError, NotARegularFileError
from zcmiddleware._files import open_fd

SIZE = 300_000  # more than one default chunk, so the fallback sends several bodies
DATA = os.urandom(SIZE)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(CAPABILITIES))
def capability(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "data.bin").write_bytes(DATA)
    public = tmp_path / "public"
    public.mkdir()
    (public / "inside.bin").write_bytes(DATA[:1000])
    (tmp_path / "secret.bin").write_bytes(b"secret")
    (public / "escape.bin").symlink_to(tmp_path / "secret.bin")
    return tmp_path


async def request(
    app: Any,
    server: Server,
    method: str = "GET",
    path: str = "/download",
    headers: Sequence[tuple[str, str]] = (),
) -> Server:
    with anyio.fail_after(10):
        await app(server.scope(method, path, headers), server.receive, server.send)
    return server


def expected_full_path(capability: str) -> str:
    # zc-uvicorn opens a pathsend's file before the start: whole files go by path.
    by_path = {"none": "fallback", "pathsend": "pathsend", "zc-uvicorn": "pathsend"}
    return by_path.get(capability, "zerocopysend")


def expected_range_path(capability: str, single: bool = False) -> str:
    if single and capability == "zc-uvicorn":
        return "pathsend"  # PATHSEND_RANGE: the server opens the file and sends the range
    return "fallback" if capability in ("none", "pathsend") else "zerocopysend"


def body_types(server: Server) -> list[str]:
    return server.types[1:]


# ------------------------------------------------------------------ 200, 206, multipart

pytestmark = pytest.mark.anyio


async def test_full_get(directory: Path, capability: str) -> None:
    server = await request(wrap(str(directory)), Server(CAPABILITIES[capability]))
    assert server.status == 200
    assert bytes(server.body) == DATA
    headers = server.headers
    assert headers["content-length"] == str(SIZE)
    assert headers["content-type"] == "application/x-test"
    assert headers["content-disposition"] == 'attachment; filename="data.bin"'
    assert headers["accept-ranges"] == "bytes"
    assert "etag" in headers and "last-modified" in headers
    path = expected_full_path(capability)
    assert headers[DEBUG_HEADER.lower()] == path
    # Only a server that opens a pathsend's file before the start has its start marked.
    marked = server.messages[0].get(OPENS_BEFORE_START)
    assert marked is (True if capability == "zc-uvicorn" else None)
    if path == "pathsend":
        assert body_types(server) == [PATHSEND]
    elif path == "zerocopysend":
        assert body_types(server) == [ZEROCOPYSEND, "http.response.body"]
        zc = server.messages[1]
        assert (zc["offset"], zc["count"]) == (0, SIZE)
    else:  # two chunks of 256 KiB at most, the last one ends the body
        assert body_types(server) == ["http.response.body"] * 2
        assert [m.get("more_body", False) for m in server.messages[1:]] == [True, False]


async def test_head_start_is_never_held(directory: Path) -> None:
    # A HEAD sends no pathsend, so nothing may wait for one.
    server = await request(wrap(str(directory)), Server(CAPABILITIES["zc-uvicorn"]), "HEAD")
    assert (server.status, server.types[1:], bytes(server.body)) == (
        200,
        ["http.response.body"],
        b"",
    )
    assert OPENS_BEFORE_START not in server.messages[0]
    assert server.headers["content-length"] == str(SIZE)


async def test_single_range(directory: Path, capability: str) -> None:
    server = await request(
        wrap(str(directory)), Server(CAPABILITIES[capability]), headers=[("Range", "bytes=100-299")]
    )
    assert server.status == 206
    assert bytes(server.body) == DATA[100:300]
    assert server.headers["content-range"] == f"bytes 100-299/{SIZE}"
    assert server.headers["content-length"] == "200"
    path = expected_range_path(capability, single=True)
    assert server.headers[DEBUG_HEADER.lower()] == path
    if path == "zerocopysend":
        assert body_types(server) == [ZEROCOPYSEND, "http.response.body"]
        assert (server.messages[1]["offset"], server.messages[1]["count"]) == (100, 200)
    elif path == "pathsend":
        assert body_types(server) == [PATHSEND]
        assert server.messages[1][PATHSEND_RANGE] == (100, 200, SIZE)
        assert server.messages[0][OPENS_BEFORE_START] is True
    else:
        assert body_types(server) == ["http.response.body"]


async def test_multipart_ranges(directory: Path, capability: str) -> None:
    server = await request(
        wrap(str(directory)),
        Server(CAPABILITIES[capability]),
        headers=[("Range", "bytes=0-9, 1000-1999, -5")],
    )
    assert server.status == 206
    body = bytes(server.body)
    assert server.headers["content-length"] == str(len(body))
    parts = parse_byteranges(server.headers["content-type"], body)
    assert parts == [
        (f"bytes 0-9/{SIZE}", DATA[0:10]),
        (f"bytes 1000-1999/{SIZE}", DATA[1000:2000]),
        (f"bytes {SIZE - 5}-{SIZE - 1}/{SIZE}", DATA[-5:]),
    ]
    path = expected_range_path(capability)
    assert server.headers[DEBUG_HEADER.lower()] == path
    if path == "zerocopysend":
        # Framing as body messages, each part as one zerocopysend with offset and count.
        body_msg = "http.response.body"
        assert body_types(server) == [body_msg, ZEROCOPYSEND] * 3 + [body_msg]
        slices = [(m["offset"], m["count"]) for m in server.messages if m["type"] == ZEROCOPYSEND]
        assert slices == [(0, 10), (1000, 1000), (SIZE - 5, 5)]
    else:
        assert set(body_types(server)) == {"http.response.body"}
    assert server.messages[-1].get("more_body", False) is False
    assert all(m.get("more_body") for m in server.messages[1:-1])


async def test_fallback_reads_in_chunks_of_the_configured_size(directory: Path) -> None:
    server = await request(wrap(str(directory), chunk_size=65536), Server({}))
    sizes = [len(m["body"]) for m in server.messages[1:]]
    assert sizes == [65536] * 4 + [SIZE - 4 * 65536]
    assert bytes(server.body) == DATA


# ------------------------------------------------------------- HEAD and bodiless answers


async def test_head_has_the_headers_of_get_and_no_body(directory: Path, capability: str) -> None:
    app = wrap(str(directory))
    get = await request(app, Server(CAPABILITIES[capability]), headers=[("Range", "bytes=5-9")])
    head = await request(
        app, Server(CAPABILITIES[capability]), "HEAD", headers=[("Range", "bytes=5-9")]
    )
    assert head.status == get.status == 206
    assert head.types == ["http.response.start", "http.response.body"]
    assert head.body == b""
    get_headers = get.headers
    head_headers = head.headers
    assert head_headers.pop(DEBUG_HEADER.lower()) == "none"
    get_headers.pop(DEBUG_HEADER.lower())
    assert head_headers == get_headers


async def test_if_none_match_gives_304(directory: Path, capability: str) -> None:
    app = wrap(str(directory))
    etag = (await request(app, Server(CAPABILITIES[capability]), "HEAD")).headers["etag"]
    server = await request(app, Server(CAPABILITIES[capability]), headers=[("If-None-Match", etag)])
    assert server.status == 304
    assert server.types == ["http.response.start", "http.response.body"]
    assert server.body == b""
    headers = server.headers
    assert headers["etag"] == etag
    assert "last-modified" in headers  # §15.4.5; StaticFiles' own 304 would lack it
    assert "content-length" not in headers
    assert "content-type" not in headers


async def test_static_files_answers_its_own_304_as_without_the_middleware(
    directory: Path,
) -> None:
    # StaticFiles answers If-None-Match itself (before If-Match, RFC 9110 §13.2.2 would
    # say 412): that answer is the app's, not a file response, and the middleware
    # leaves it exactly as the app gives it (issue: drop-in safety).
    from starlette.staticfiles import StaticFiles

    bare = StaticFiles(directory=str(directory))
    app = wrap(str(directory))
    first = await request(app, Server({}), path="/static/data.bin")
    assert bytes(first.body) == DATA
    etag = first.headers["etag"]
    for headers in ([("If-None-Match", etag), ("If-Match", '"other"')], [("If-None-Match", etag)]):
        with_mw = await request(app, Server({}), path="/static/data.bin", headers=headers)
        without = Server({})
        scope = without.scope("GET", "/data.bin", headers)
        await bare(scope, without.receive, without.send)
        assert (with_mw.status, bytes(with_mw.body)) == (without.status, bytes(without.body))
        assert with_mw.status == 304
        assert with_mw.headers == without.headers


async def test_if_match_failure_gives_412(directory: Path, capability: str) -> None:
    server = await request(
        wrap(str(directory)), Server(CAPABILITIES[capability]), headers=[("If-Match", '"nope"')]
    )
    assert server.status == 412
    assert server.body == b""
    assert server.headers["content-length"] == "0"
    assert "content-type" not in server.headers
    assert "content-disposition" not in server.headers


async def test_preconditions_apply_to_other_methods(directory: Path) -> None:
    server = await request(
        wrap(str(directory)), Server({}), "POST", headers=[("If-Match", '"nope"')]
    )
    assert server.status == 412


async def test_unsatisfiable_range_gives_416(directory: Path, capability: str) -> None:
    server = await request(
        wrap(str(directory)),
        Server(CAPABILITIES[capability]),
        headers=[("Range", f"bytes={SIZE}-")],
    )
    assert server.status == 416
    assert server.body == b""
    assert server.headers["content-range"] == f"bytes */{SIZE}"
    assert server.headers["content-length"] == "0"


# ------------------------------------------------------------------------- the app's view


async def test_app_is_offered_pathsend_never_zerocopysend_and_server_scope_is_untouched(
    capability: str,
) -> None:
    seen: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = Server(CAPABILITIES[capability])
    scope = server.scope("HEAD", "/x", [("Range", "bytes=0-1"), ("If-None-Match", '"a"')])
    original = {**scope, "headers": list(scope["headers"])}
    original_extensions = dict(scope.get("extensions", {}))
    await ZeroCopyMiddleware(app)(scope, server.receive, server.send)
    (app_scope,) = seen
    assert set(app_scope["extensions"]) == set(original_extensions) - {ZEROCOPYSEND} | {PATHSEND}
    assert app_scope["method"] == "GET"
    # Range is hidden (the framework must hand over the whole file); the conditional
    # fields are not, so a response that is not a file keeps the app's own 304.
    assert app_scope["headers"] == [(b"if-none-match", b'"a"')]
    assert scope == original
    assert scope.get("extensions", {}) == original_extensions
    assert server.types == ["http.response.start", "http.response.body"]


async def test_range_handling_off_leaves_range_to_the_app(directory: Path) -> None:
    server = await request(
        wrap(str(directory), handle_ranges=False),
        Server(CAPABILITIES["zerocopysend"]),
        headers=[("Range", "bytes=0-9")],
    )
    # Starlette answers the range itself, by body messages: passed through as they are.
    assert server.status == 206
    assert bytes(server.body) == DATA[:10]
    assert DEBUG_HEADER.lower() not in server.headers


async def test_excluded_paths_see_the_request_as_sent(directory: Path) -> None:
    app = wrap(str(directory), exclude_paths=["/echo"])
    headers = [("Range", "bytes=0-9"), ("If-None-Match", '"x"')]
    server = await request(app, Server({}), "GET", "/echo-headers", headers)
    assert ["range", "bytes=0-9"] in json.loads(server.body)
    server = await request(app, Server({}), "GET", "/download", headers)
    assert server.status == 206  # not excluded: the middleware answered


# ------------------------------------------------------------------------- passthrough


async def test_non_file_responses_pass_through(directory: Path, capability: str) -> None:
    server = await request(wrap(str(directory)), Server(CAPABILITIES[capability]), path="/text")
    assert server.types == ["http.response.start", "http.response.body"]
    assert server.body == b"hello, not a file"
    assert DEBUG_HEADER.lower() not in server.headers

    server = await request(wrap(str(directory)), Server(CAPABILITIES[capability]), path="/stream")
    assert bytes(server.body) == b"chunk 0\nchunk 1\nchunk 2\n"
    assert server.types.count("http.response.body") >= 3  # streamed, not buffered


async def test_head_of_a_non_file_response_has_no_body(directory: Path) -> None:
    server = await request(wrap(str(directory)), Server({}), "HEAD", "/text")
    assert server.status == 200
    assert server.headers["content-length"] == str(len(b"hello, not a file"))
    assert server.body == b""


async def test_other_message_types_pass_through_in_order() -> None:
    sent = [
        {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]},
        {"type": "http.response.start", "status": 200, "headers": [], "trailers": True},
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"b", "more_body": False},
        {"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")]},
    ]

    async def app(scope: Message, receive: Any, send: Any) -> None:
        for message in sent:
            await send(message)

    server = Server({"http.response.trailers": {}, "http.response.early_hint": {}})
    await ZeroCopyMiddleware(app)(server.scope("GET", "/"), server.receive, server.send)
    assert server.messages == sent
    assert all(a is b for a, b in zip(server.messages, sent, strict=True))  # untouched, not copied


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_other_scopes_pass_through_untouched(scope_type: str) -> None:
    calls: list[tuple[Any, Any, Any]] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        calls.append((scope, receive, send))

    scope: Message = {"type": scope_type}

    async def receive() -> Message:
        raise AssertionError

    async def send(message: Message) -> None:
        raise AssertionError

    await ZeroCopyMiddleware(app)(scope, receive, send)
    assert calls == [(scope, receive, send)]
    assert calls[0][0] is scope


async def test_start_without_a_following_message_is_still_sent() -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})

    server = Server({})
    await ZeroCopyMiddleware(app)(server.scope("GET", "/"), server.receive, server.send)
    assert server.types == ["http.response.start"]


# --------------------------------------------------------------------------- X-Sendfile


async def test_sendfile_header_inside_roots(directory: Path, capability: str) -> None:
    path = str(directory / "public" / "inside.bin")
    server = Server(CAPABILITIES[capability])
    scope = server.scope("GET", "/xsendfile", [("Range", "bytes=0-99")])
    scope["query_string"] = f"path={path}".encode()
    await wrap(str(directory))(scope, server.receive, server.send)
    assert server.status == 206
    assert bytes(server.body) == DATA[:100]
    assert "x-sendfile" not in server.headers
    assert b"ignored body" not in server.body


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("secret.bin", 500),  # outside the roots
        ("public/escape.bin", 500),  # a symlink inside the root that leads outside
        ("public/../secret.bin", 500),  # dot-dot out of the root
        ("public/missing.bin", 404),
        ("public", 500),  # a directory is refused, not served
    ],
)
async def test_sendfile_header_refusals_reveal_no_path(
    directory: Path, name: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server({})
    scope = server.scope("GET", "/xsendfile")
    scope["query_string"] = f"path={directory / name}".encode()
    with caplog.at_level(logging.ERROR, logger="zcmiddleware.asgi"):
        await wrap(str(directory))(scope, server.receive, server.send)
    assert server.status == status
    assert str(directory).encode() not in bytes(server.body)
    assert not any(str(directory) in v for v in server.headers.values())
    assert "x-sendfile" not in server.headers
    assert b"secret" not in server.body
    assert any("x-sendfile" in r.getMessage().lower() for r in caplog.records)


def test_sendfile_header_requires_roots() -> None:
    with pytest.raises(ValueError, match="sendfile_roots"):
        ZeroCopyMiddleware(create_app("."), sendfile_header="X-Sendfile")


# ----------------------------------------------------------- errors, disconnects, leaks


async def test_pathsend_of_a_directory_is_the_apps_error(tmp_path: Path) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": PATHSEND, "path": str(tmp_path)})

    server = Server({})
    with pytest.raises(NotARegularFileError):
        await ZeroCopyMiddleware(app)(server.scope("GET", "/"), server.receive, server.send)
    assert server.messages == []


@pytest.mark.parametrize("fail_send_after", [0, 1, 2])
async def test_send_failing_ends_quietly_and_closes_the_file(
    directory: Path, capability: str, fail_send_after: int
) -> None:
    before = open_fds()
    server = Server(CAPABILITIES[capability], spec_version="2.4", fail_send_after=fail_send_after)
    await request(wrap(str(directory), chunk_size=4096), server)
    assert len(server.messages) == fail_send_after
    assert all(f.closed for f in server.files)
    assert open_fds() == before


async def test_cancelled_while_opening_leaks_no_descriptor(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request cancelled (client gone, server shutting down) while the worker thread
    # is still opening the file: what the thread opened is closed, not abandoned.
    import zcmiddleware._asgi as asgi_module

    opened = threading.Event()

    def slow_open(path: str) -> Any:
        result = open_fd(path)
        opened.set()
        time.sleep(0.2)
        return result

    monkeypatch.setattr(asgi_module, "open_fd", slow_open)
    before = open_fds()
    server = Server(CAPABILITIES["zerocopysend"])
    app = wrap(str(directory))
    async with anyio.create_task_group() as tg:

        async def cancel_once_opened() -> None:
            # Not a timer: on a loaded machine the open may start after any fixed delay.
            assert await anyio.to_thread.run_sync(opened.wait, 30)
            tg.cancel_scope.cancel()

        tg.start_soon(cancel_once_opened)
        await app(server.scope("GET", "/download"), server.receive, server.send)
    assert opened.is_set()
    for _ in range(250):  # the thread sleeps 0.2 s after opening; bounded wait
        if open_fds() == before:
            break
        await anyio.sleep(0.02)
    assert open_fds() == before


async def test_disconnect_heard_on_receive_stops_the_fallback(directory: Path) -> None:
    # An ASGI 2.3 server may accept and drop the body after a disconnect: the
    # middleware must not read the rest of the file for nobody.
    before = open_fds()
    server = Server({}, disconnect_after=3)
    app = wrap(str(directory), chunk_size=4096)
    with anyio.fail_after(10):
        await app(server.scope("GET", "/download"), server.receive, slow_send(server))
    assert 3 <= len(server.messages) < SIZE // 4096
    assert open_fds() == before


def slow_send(server: Server) -> Any:
    async def send(message: Message) -> None:
        await server.send(message)
        await anyio.sleep(0.001)  # a socket draining: lets the disconnect be heard

    return send


async def test_file_shrinking_during_fallback_aborts(directory: Path) -> None:
    before = open_fds()
    server = Server({})

    async def shrinking_send(message: Message) -> None:
        await server.send(message)
        if message["type"] == "http.response.body":
            os.truncate(directory / "data.bin", 5000)

    with pytest.raises(FileShrankError):
        await wrap(str(directory), chunk_size=4096)(
            server.scope("GET", "/download"), server.receive, shrinking_send
        )
    assert server.messages[-1].get("more_body") is True  # never completed short
    assert open_fds() == before


async def test_file_shrinking_during_zerocopysend_aborts(directory: Path) -> None:
    before = open_fds()
    server = Server(CAPABILITIES["zerocopysend"])

    async def shrinking_send(message: Message) -> None:
        if message["type"] == ZEROCOPYSEND:
            os.truncate(directory / "data.bin", 5000)
        await server.send(message)

    with pytest.raises(FileShrankError):
        await wrap(str(directory))(server.scope("GET", "/download"), server.receive, shrinking_send)
    assert server.types == ["http.response.start", ZEROCOPYSEND]  # the final body never went
    assert len(server.body) == 5000
    assert open_fds() == before


async def test_server_that_aborts_short_files_is_trusted_with_the_check(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zcmiddleware.uvicorn aborts a connection whose file ends early and says so in
    # its extension dict: the middleware then spends no fstat (a thread hop) per slice.
    fstats: list[int] = []
    real_fstat = os.fstat

    def counting_fstat(fd: int) -> os.stat_result:
        fstats.append(fd)
        return real_fstat(fd)

    for declared, expected_checks in ((False, 1), (True, 0)):
        extensions = {ZEROCOPYSEND: {ABORTS_SHORT_FILES: True} if declared else {}}
        server = Server(extensions)
        app = wrap(str(directory))
        scope = server.scope("GET", "/download", [("range", "bytes=10-19")])
        monkeypatch.setattr(os, "fstat", counting_fstat)
        fstats.clear()
        await app(scope, server.receive, server.send)
        monkeypatch.undo()
        assert server.types[-1] == "http.response.body" and len(server.body) == 10
        # One fstat opens the file (facts); any more is the after-send check.
        assert len(fstats) == 1 + expected_checks, declared


async def test_debug_log_names_the_path(
    directory: Path, capability: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="zcmiddleware.asgi"):
        await request(wrap(str(directory), debug_header=None), Server(CAPABILITIES[capability]))
    (record,) = [r for r in caplog.records if r.name == "zcmiddleware.asgi"]
    assert record.getMessage().endswith(f"via {expected_full_path(capability)}")


async def test_sendfile_header_without_a_body_message_still_sends_the_file(
    directory: Path,
) -> None:
    path = str(directory / "public" / "inside.bin")

    async def app(scope: Message, receive: Any, send: Any) -> None:
        headers = [(b"x-sendfile", path.encode()), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    server = Server({})
    middleware = ZeroCopyMiddleware(
        app, sendfile_header="X-Sendfile", sendfile_roots=[str(directory / "public")]
    )
    await middleware(server.scope("GET", "/"), server.receive, server.send)
    assert server.status == 200
    assert bytes(server.body) == DATA[:1000]
    assert "x-sendfile" not in server.headers


async def test_sendfile_header_never_leaks_when_trailers_follow(directory: Path) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        headers = [(b"X-Sendfile", b"/etc/passwd")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.trailers", "headers": []})

    server = Server({})
    middleware = ZeroCopyMiddleware(
        app, sendfile_header="X-Sendfile", sendfile_roots=[str(directory / "public")]
    )
    await middleware(server.scope("GET", "/"), server.receive, server.send)
    assert server.types[0] == "http.response.start"
    assert "x-sendfile" not in server.headers
    assert all(b"passwd" not in v for _, v in server.start["headers"])


async def test_sendfile_header_file_never_goes_by_pathsend(directory: Path) -> None:
    # The server would open the path again, after our check of what we opened: the
    # checked descriptor is what goes out (by the fallback on a pathsend-only server).
    inside = directory / "public" / "inside.bin"
    server = Server(CAPABILITIES["pathsend"])
    scope = server.scope("GET", "/xsendfile")
    scope["query_string"] = f"path={inside}".encode()
    await wrap(str(directory))(scope, server.receive, server.send)
    assert bytes(server.body) == DATA[:1000]
    assert PATHSEND not in server.types
    assert server.headers[DEBUG_HEADER.lower()] == "fallback"


# ------------------------------------------------------- a lone range, from the app's headers


def _stale_app(path: Path, announced: int) -> Any:
    """A framework's file response whose Content-Length says ``announced`` bytes: the
    size the file had when the framework stat-ed it."""

    async def app(scope: Message, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(announced).encode()),
            (b"etag", b'"v1"'),
            (b"last-modified", b"Tue, 14 Nov 2023 22:13:20 GMT"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": PATHSEND, "path": str(path)})

    return app


@pytest.mark.parametrize("capability", ["pathsend", "none"])
async def test_a_lone_range_is_read_in_one_hop_without_zerocopysend(
    tmp_path: Path, capability: str
) -> None:
    # No zerocopysend: the range is planned from the app's headers and read in the hop
    # that opens the file -- one body message, the app's validators.
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    mw = ZeroCopyMiddleware(_stale_app(path, SIZE), debug_header=DEBUG_HEADER)
    server = await request(mw, Server(CAPABILITIES[capability]), headers=[("Range", "bytes=-5")])
    assert server.status == 206
    assert bytes(server.body) == DATA[-5:]
    assert server.headers["content-range"] == f"bytes {SIZE - 5}-{SIZE - 1}/{SIZE}"
    assert server.headers["etag"] == '"v1"'
    assert server.types == ["http.response.start", "http.response.body"]
    assert server.headers[DEBUG_HEADER.lower()] == "fallback"


@pytest.mark.parametrize("capability", ["pathsend", "none", "zerocopysend"])
async def test_a_lone_range_of_a_file_that_changed_size_is_planned_from_the_file(
    tmp_path: Path, capability: str
) -> None:
    # The framework's Content-Length is stale (the file grew since it looked): the
    # range is answered from the file as it is, never from the stale size.
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    mw = ZeroCopyMiddleware(_stale_app(path, SIZE - 1000), debug_header=DEBUG_HEADER)
    server = await request(mw, Server(CAPABILITIES[capability]), headers=[("Range", "bytes=-5")])
    assert server.status == 206
    assert bytes(server.body) == DATA[-5:]
    assert server.headers["content-range"] == f"bytes {SIZE - 5}-{SIZE - 1}/{SIZE}"


async def test_a_lone_range_goes_by_path_with_the_size_it_was_planned_for(tmp_path: Path) -> None:
    # On zcmiddleware.uvicorn the size the range was planned for travels with it: the
    # server compares it with the file it opens (a stale one is its clean 500).
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    mw = ZeroCopyMiddleware(_stale_app(path, SIZE), debug_header=DEBUG_HEADER)
    server = await request(mw, Server(CAPABILITIES["zc-uvicorn"]), headers=[("Range", "bytes=7-")])
    assert server.status == 206 and bytes(server.body) == DATA[7:]
    assert server.messages[1][PATHSEND_RANGE] == (7, SIZE - 7, SIZE)
    assert server.messages[0][OPENS_BEFORE_START] is True
    stale = ZeroCopyMiddleware(_stale_app(path, SIZE - 1), debug_header=DEBUG_HEADER)
    with pytest.raises(AssertionError, match="the server would answer 500"):
        await request(stale, Server(CAPABILITIES["zc-uvicorn"]), headers=[("Range", "bytes=7-")])
