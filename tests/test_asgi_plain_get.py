"""The plain GET (``_asgi._PlainGet``): the commonest request answered without the
state machine, on a server that offers pathsend and nothing else (granian).

Every scenario is run twice, through the middleware as it is and with the shortcut
turned off, and the server must see the same answer: status, headers (as a multiset),
message kinds and body bytes. The shortcut is counted, not assumed: with it on, the
state machine's ``_Exchange`` is never built for the scenarios it answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _fakes import CAPABILITIES, PATHSEND, Message
from _fakes import AsgiServer as Server
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware, _asgi
from zcmiddleware._errors import NotARegularFileError

pytestmark = pytest.mark.anyio

DATA = os.urandom(5000)
FILE_HEADERS = [(b"content-type", b"application/x-test"), (b"content-length", b"5000"),
                (b"etag", b'"t"'), (b"last-modified", b"Tue, 01 Dec 2026 10:00 GMT")]  # fmt: skip
RANGES = (b"accept-ranges", b"bytes")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return str(path)


App = Callable[[Message, Any, Any], Any]


def file_app(
    path: str,
    headers: Any = None,
    *,
    then: list[Message] | None = None,
    seen: list[Message] | None = None,
) -> App:
    """An app that sends ``path`` by pathsend, then the messages ``then``; the scopes
    it is given go to ``seen``."""

    async def app(scope: Message, receive: Any, send: Any) -> None:
        if seen is not None:
            seen.append(scope)
        sent = FILE_HEADERS if headers is None else headers
        start_headers = sent() if callable(sent) else list(sent)
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        await send({"type": PATHSEND, "path": path})
        for message in then or ():
            await send(message)

    return app


def messages_app(*messages: Message) -> App:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        for message in messages:
            await send(dict(message))

    return app


def starlette_app(path: str) -> App:
    async def download(request: Any) -> FileResponse:
        return FileResponse(path, media_type="application/x-test")

    return Starlette(routes=[Route("/download", download)])


def start(status: int = 200, headers: Any = ()) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def scenarios(path: str) -> dict[str, tuple[App, list[tuple[str, str]]]]:
    upper = [(n.title(), v) for n, v in FILE_HEADERS]
    return {
        "starlette": (starlette_app(path), []),
        "as sent, with Accept-Ranges": (file_app(path, [*FILE_HEADERS, RANGES]), []),
        "without Accept-Ranges": (file_app(path), []),
        "Accept-Ranges none": (file_app(path, [*FILE_HEADERS, (b"accept-ranges", b"none")]), []),
        "two Accept-Ranges": (file_app(path, [*FILE_HEADERS, *[(b"accept-ranges", b"bytes")] * 2]),
                              []),
        "names in capitals": (file_app(path, upper), []),
        "headers as a tuple": (file_app(path, tuple(FILE_HEADERS)), []),
        "headers as a generator": (file_app(path, lambda: (h for h in FILE_HEADERS)), []),
        "no etag: the file is looked at": (file_app(path, FILE_HEADERS[:2] + FILE_HEADERS[3:]), []),
        "leading zeros in the size": (file_app(path, [(b"content-length", b"05000"),
                                                      *FILE_HEADERS[2:]]), []),
        "transfer-encoding dropped": (file_app(path, [*FILE_HEADERS, (b"transfer-encoding",
                                                                        b"x")]), []),
        "a body after the pathsend": (file_app(path, then=[body(b"dropped")]), []),
        "trailers after the pathsend": (file_app(path, then=[{"type": "http.response.trailers",
                                                              "headers": []}]), []),
        "a path that is not a str": (file_app(Path(path)), []),  # type: ignore[arg-type]
        "not a file": (messages_app(start(200, [(b"content-length", b"2")]), body(b"ok")), []),
        "streamed": (messages_app(start(), body(b"a", True), body(b"b", True), body(b"")), []),
        "the app's 304": (messages_app(start(304, [(b"etag", b'"t"')]), body(b"")), []),
        "a start alone": (messages_app(start(204)), []),
        "two starts": (messages_app(start(200), start(500), body(b"")), []),
        "early hints first": (messages_app({"type": "http.response.early_hint", "links": []},
                                           start(), body(b"x")), []),
        "a body before the start": (messages_app(body(b"x"), start(), body(b"y")), []),
        "If-None-Match: not plain": (starlette_app(path), [("If-None-Match", '"x"')]),
        "Range with If-Range: not plain": (starlette_app(path), [("Range", "bytes=1-10"),
                                                                 ("If-Range", '"x"')]),
        "two Ranges: not plain": (starlette_app(path), [("Range", "bytes=1-10")] * 2),
        **{f"a lone Range {spec}": (starlette_app(path), [("Range", spec)]) for spec in (
            "bytes=1-10", "bytes=-100", "bytes=4990-", "bytes=0-99999", "bytes=4999-4999",
            "bytes=0-1,5-6", "bytes=6000-", "bytes=10-5", "bytes=-0", "bytes=abc", "pages=1-2",
        )},
        "a lone Range, the app's own headers": (file_app(path), [("Range", "bytes=5-9")]),
        "a lone Range of a file that grew": (
            file_app(path, [(b"content-length", b"4000"), *FILE_HEADERS[2:]]),
            [("Range", "bytes=1-10")]),
        "a lone Range, no etag": (file_app(path, FILE_HEADERS[:2] + FILE_HEADERS[3:]),
                                  [("Range", "bytes=1-10")]),
        "a lone Range, not a file": (messages_app(start(200, [(b"content-length", b"2")]),
                                                  body(b"ok")), [("Range", "bytes=0-0")]),
    }  # fmt: skip


def wrapped(app: App, *, shortcut: bool, **options: Any) -> ZeroCopyMiddleware:
    """``app`` in the middleware, with the plain-GET shortcut on or refused."""
    middleware = ZeroCopyMiddleware(app, **options)
    if not shortcut:
        middleware._looked_for_compressor = True  # as after the first request ...
        middleware._plain_gets = False  # ... with the shortcut refused
    return middleware


async def serve(app: App, headers: list[tuple[str, str]], *, shortcut: bool) -> Server:
    middleware = wrapped(app, shortcut=shortcut)
    server = Server(CAPABILITIES["pathsend"])
    with anyio.fail_after(10):
        await middleware(server.scope("GET", "/download", headers), server.receive, server.send)
    return server


def answer(server: Server) -> tuple[Any, ...]:
    starts = [m for m in server.messages if m["type"] == "http.response.start"]
    statuses = [m["status"] for m in starts]
    headers = [sorted((n.lower(), v) for n, v in m["headers"]) for m in starts]
    data = bytes(server.body)
    for fields in headers:  # a multipart boundary is random: the same token for both
        for n, v in fields:
            if n == b"content-type" and b"boundary=" in v:
                data = data.replace(v.partition(b"boundary=")[2], b"BOUNDARY")
    headers = [[(n, v.partition(b"boundary=")[0]) for n, v in fields] for fields in headers]
    return (statuses, headers, server.types, data)


@pytest.mark.parametrize("name", list(scenarios("/")))
async def test_the_plain_get_answers_as_the_state_machine_does(name: str, data_file: str) -> None:
    app, headers = scenarios(data_file)[name]
    quick = await serve(app, headers, shortcut=True)
    full = await serve(app, headers, shortcut=False)
    assert answer(quick) == answer(full)


@pytest.mark.parametrize(
    "name", ["starlette", "as sent, with Accept-Ranges", "without Accept-Ranges", "not a file",
             "streamed", "the app's 304", "a start alone", "early hints first",
             "a lone Range bytes=1-10", "a lone Range bytes=-100", "a lone Range, not a file"]
)  # fmt: skip
async def test_the_plain_get_never_builds_the_state_machine(
    name: str, data_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the state machine was built")

    app, headers = scenarios(data_file)[name]
    monkeypatch.setattr(_asgi, "_Exchange", refuse)
    server = await serve(app, headers, shortcut=True)
    if name in ("starlette", "as sent, with Accept-Ranges", "without Accept-Ranges"):
        assert server.types == ["http.response.start", PATHSEND]
        assert bytes(server.body) == DATA
        assert server.headers["accept-ranges"] == "bytes"
        assert server.headers["content-length"] == str(len(DATA))
    elif name.startswith("a lone Range bytes="):
        assert server.status == 206
        assert server.types == ["http.response.start", "http.response.body"]
        first = 1 if name.endswith("1-10") else len(DATA) - 100
        assert bytes(server.body) == DATA[first : first + (10 if first == 1 else 100)]
        last = first + len(server.body) - 1
        assert server.headers["content-range"] == f"bytes {first}-{last}/5000"


async def test_headers_that_already_are_the_answer_go_out_as_the_app_sent_them(
    data_file: str,
) -> None:
    sent: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        sent.append(start(200, [*FILE_HEADERS, RANGES]))
        await send(sent[0])
        await send({"type": PATHSEND, "path": data_file})

    server = await serve(app, [], shortcut=True)
    assert server.messages[0] is sent[0]  # not even copied
    assert server.messages[0]["headers"] == [*FILE_HEADERS, RANGES]


async def test_the_app_gets_the_servers_own_scope(data_file: str) -> None:
    seen: list[Message] = []
    app = file_app(data_file, seen=seen)
    server = Server(CAPABILITIES["pathsend"])
    scope = server.scope("GET", "/download")
    await ZeroCopyMiddleware(app)(scope, server.receive, server.send)
    assert seen == [scope] and seen[0] is scope  # nothing to hide, nothing to offer


async def test_what_the_app_does_to_its_scope_changes_nothing(
    data_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The file answer needs the file looked at (no validators): the state machine takes
    # over, and plans from the request as the server sent it.
    async def app(scope: Message, receive: Any, send: Any) -> None:
        scope["path"], scope["method"] = "/changed", "POST"
        scope["headers"] = [(b"range", b"bytes=0-0")]
        await file_app(data_file, FILE_HEADERS[:2])(scope, receive, send)

    with caplog.at_level(logging.DEBUG, logger="zcmiddleware.asgi"):
        server = await serve(app, [], shortcut=True)
    assert (server.status, bytes(server.body)) == (200, DATA)
    (record,) = [r for r in caplog.records if r.name == "zcmiddleware.asgi"]
    assert record.getMessage() == "GET /download -> 200 full, 5000 body bytes via pathsend"


async def test_the_plain_gets_log_line_is_the_state_machines(
    data_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    lines = []
    for shortcut in (True, False):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="zcmiddleware.asgi"):
            await serve(file_app(data_file), [], shortcut=shortcut)
        lines.append([r.getMessage() for r in caplog.records if r.name == "zcmiddleware.asgi"])
    assert lines[0] == lines[1] == ["GET /download -> 200 full, 5000 body bytes via pathsend"]


async def test_a_client_gone_at_the_start_ends_the_plain_get_quietly(data_file: str) -> None:
    for shortcut in (True, False):
        server = Server(CAPABILITIES["pathsend"], fail_send_after=0)
        middleware = wrapped(file_app(data_file), shortcut=shortcut)
        await middleware(server.scope("GET", "/download"), server.receive, server.send)
        assert server.messages == []


@pytest.mark.parametrize(
    "options",
    [{"debug_header": "X-Path"}, {"handle_ranges": False}, {"exclude_paths": "/x"},
     {"sendfile_header": "X-Sendfile", "sendfile_roots": "/tmp"}, {"precompressed": "gzip"}],
)  # fmt: skip
async def test_an_option_that_changes_the_answer_turns_the_plain_get_off(
    options: dict[str, Any], data_file: str
) -> None:
    middleware = ZeroCopyMiddleware(file_app(data_file), **options)
    server = Server(CAPABILITIES["pathsend"])
    await middleware(server.scope("GET", "/download"), server.receive, server.send)
    assert middleware._plain_gets is False
    assert bytes(server.body) == DATA


async def test_a_lone_range_is_hidden_from_the_app_and_the_servers_scope_kept(
    data_file: str,
) -> None:
    seen: list[Message] = []
    app = file_app(data_file, seen=seen)
    server = Server(CAPABILITIES["pathsend"])
    scope = server.scope("GET", "/download", [("Accept", "*/*"), ("Range", "bytes=0-9")])
    original = {**scope, "headers": list(scope["headers"])}
    await ZeroCopyMiddleware(app)(scope, server.receive, server.send)
    assert seen[0]["headers"] == [(b"accept", b"*/*")]  # the whole file, by path
    assert scope == original
    assert (server.status, bytes(server.body)) == (206, DATA[:10])


async def test_a_lone_range_longer_than_a_chunk_streams_from_the_descriptor(
    data_file: str,
) -> None:
    answers = []
    for shortcut in (True, False):
        middleware = wrapped(file_app(data_file), shortcut=shortcut, chunk_size=1000)
        server = Server(CAPABILITIES["pathsend"])
        scope = server.scope("GET", "/download", [("Range", "bytes=100-2599")])
        await middleware(scope, server.receive, server.send)
        assert (server.status, bytes(server.body)) == (206, DATA[100:2600])
        assert server.types[1:] == ["http.response.body"] * 3  # 1000 bytes a message
        answers.append(answer(server))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("kind", ["directory", "fifo"])
async def test_a_lone_range_of_what_is_not_a_regular_file_is_the_apps_error(
    kind: str, tmp_path: Path
) -> None:
    # The size comes from the descriptor's end, not fstat: a FIFO has none and a
    # directory not the app's size, so the plan from the file refuses both, as without
    # the shortcut (and nothing blocks on the FIFO).
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    for shortcut in (True, False):
        server = Server(CAPABILITIES["pathsend"])
        middleware = wrapped(file_app(str(path)), shortcut=shortcut)
        scope = server.scope("GET", "/download", [("Range", "bytes=0-9")])
        with pytest.raises(NotARegularFileError), anyio.fail_after(5):
            await middleware(scope, server.receive, server.send)
        assert server.messages == []
