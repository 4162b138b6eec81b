"""``accel_redirect``: the option's validation, the redirect URI of an open file, the
decision which answers go to nginx, and both middlewares in process (the messages and
the WSGI response they hand the server). Through a real nginx: test_nginx_accel.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from zcmiddleware import ZeroCopyMiddleware, ZeroCopyWSGIMiddleware
from zcmiddleware._accel import (
    offload_plan,
    redirect_uri,
    validate_accel_redirect,
    wants_offload,
)
from zcmiddleware._http import FileFacts, header_map, plan_response

SIZE = 10_000
DATA = os.urandom(SIZE)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "data.bin").write_bytes(DATA)
    (tmp_path / "outside.bin").write_bytes(b"outside")
    return media


# ------------------------------------------------------------------ the option


def test_validate_normalizes_and_orders_most_specific_first(media: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(media)
    mapping = validate_accel_redirect({str(tmp_path): "/_zc/all/", link: "/_zc/media/"})
    assert mapping == ((str(media), "/_zc/media/"), (str(tmp_path), "/_zc/all/"))
    assert validate_accel_redirect(None) == ()
    assert validate_accel_redirect({}) == ()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("/srv/media", TypeError),  # a string is not a mapping
        ([("/tmp", "/_zc/")], TypeError),
        ({b"/tmp": "/_zc/"}, TypeError),
        ({1: "/_zc/"}, TypeError),
        ({"/tmp": b"/_zc/"}, TypeError),
        ({"/no/such/directory": "/_zc/"}, ValueError),
        ({"{media}/data.bin": "/_zc/"}, ValueError),  # a file, not a directory
        ({"/tmp": "_zc/"}, ValueError),
        ({"/tmp": "/_zc"}, ValueError),
        ({"/tmp": "/_zc/?x/"}, ValueError),
        ({"/tmp": "/_zc/%2e/"}, ValueError),
        ({"/tmp": "/_zc/../x/"}, ValueError),
        ({"/tmp": "/a b/"}, ValueError),
        ({"/tmp": "/_zc/é/"}, ValueError),
        ({"/tmp": "/a/", "/tmp/": "/b/"}, ValueError),  # one directory twice
    ],
)
def test_validate_refuses_with_the_value_in_the_message(
    media: Path, value: Any, error: type[Exception]
) -> None:
    if isinstance(value, dict):
        value = {(k.format(media=media) if isinstance(k, str) else k): v for k, v in value.items()}
    with pytest.raises(error) as info:
        validate_accel_redirect(value)
    message = str(info.value)
    assert "accel_redirect" in message
    if isinstance(value, dict):
        assert any(repr(x) in message for item in value.items() for x in item), message
    else:
        assert repr(value) in message


@pytest.mark.parametrize("middleware", [ZeroCopyMiddleware, ZeroCopyWSGIMiddleware])
def test_both_middlewares_validate_at_construction(middleware: Any, media: Path) -> None:
    with pytest.raises(ValueError, match="no/such"):
        middleware(lambda *a: None, accel_redirect={"/no/such": "/_zc/"})
    mw = middleware(lambda *a: None, accel_redirect={media: "/_zc/media/"})
    assert mw.options.accel_redirect == ((str(media), "/_zc/media/"),)


# ------------------------------------------------------------- the redirect URI


@pytest.fixture
def opened(media: Path) -> Iterator[Any]:
    files: list[Any] = []

    def open_(path: Path) -> int:
        f = open(path, "rb")  # noqa: SIM115 (closed by the fixture)
        files.append(f)
        return f.fileno()

    yield open_
    for f in files:
        f.close()


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("data.bin", "/_zc/media/data.bin"),
        ("sub/a b#c;d&e+f~g.bin", "/_zc/media/sub/a%20b%23c%3Bd%26e%2Bf~g.bin"),
        ("é.bin", "/_zc/media/%C3%A9.bin"),
        ("..dots", "/_zc/media/..dots"),
        ("new\nline", "/_zc/media/new%0Aline"),
        (os.fsdecode(b"\xff\xfe.bin"), "/_zc/media/%FF%FE.bin"),  # not UTF-8
        # nginx decodes once and cuts at a literal '?': both encoded
        ("pct%41.bin", "/_zc/media/pct%2541.bin"),
        ("pct%2e%2e%2fx", "/_zc/media/pct%252e%252e%252fx"),
        ("q?x#y", "/_zc/media/q%3Fx%23y"),
    ],
)
def test_redirect_uri_percent_encodes(media: Path, opened: Any, name: str, uri: str | None) -> None:
    path = media / name
    path.write_bytes(b"x")
    assert redirect_uri(opened(path), ((str(media), "/_zc/media/"),)) == uri


def test_redirect_uri_uses_what_was_opened(media: Path, tmp_path: Path, opened: Any) -> None:
    mapping = ((str(media), "/_zc/media/"),)
    (media / "in.bin").symlink_to(media / "sub" / ".." / "data.bin")
    (media / "out.bin").symlink_to(tmp_path / "outside.bin")
    assert redirect_uri(opened(media / "in.bin"), mapping) == "/_zc/media/data.bin"
    assert redirect_uri(opened(media / "out.bin"), mapping) is None
    assert redirect_uri(opened(tmp_path / "outside.bin"), mapping) is None
    # Deleted, or replaced by another file, since it was opened: not handed over.
    fd = opened(media / "data.bin")
    os.rename(media / "data.bin", media / "old.bin")
    (media / "data.bin").write_bytes(b"new")
    assert redirect_uri(fd, mapping) == "/_zc/media/old.bin"  # nginx opens that name
    os.unlink(media / "old.bin")
    assert redirect_uri(fd, mapping) is None


def test_redirect_uri_prefers_the_longest_directory(media: Path, opened: Any) -> None:
    (media / "sub" / "f.bin").write_bytes(b"f")
    mapping = validate_accel_redirect({media: "/m/", media / "sub": "/s/"})
    assert redirect_uri(opened(media / "sub" / "f.bin"), mapping) == "/s/f.bin"
    assert redirect_uri(opened(media / "data.bin"), mapping) == "/m/data.bin"


# ---------------------------------------------------------------- the decision

FACTS = FileFacts(size=SIZE, mtime_ns=1_700_000_000 * 10**9)
ETAG = '"app"'


@pytest.mark.parametrize(
    ("method", "headers", "offload"),
    [
        ("GET", {}, True),
        ("GET", {"range": "bytes=0-99"}, True),
        ("GET", {"range": "bytes=100-"}, True),
        ("GET", {"range": "bytes=-100"}, True),
        ("GET", {"if-none-match": '"other"'}, True),
        ("GET", {"range": "bytes=0-9", "if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT"}, True),
        ("HEAD", {}, False),
        ("POST", {}, False),
        ("GET", {"if-none-match": ETAG}, False),  # 304
        ("GET", {"if-match": '"x"'}, False),  # 412
        ("GET", {"range": f"bytes={SIZE}-"}, False),  # 416
        ("GET", {"if-match": ETAG}, False),  # nginx would 412 (its own ETag)
        ("GET", {"if-unmodified-since": "not-a-date"}, False),  # nginx would 412
        ("GET", {"range": "bytes=0-9", "if-range": ETAG}, False),
        ("GET", {"range": "bytes=0-9,20-29"}, False),  # multipart
        ("GET", {"range": "bytes=0-9,5-19"}, False),  # merged
        ("GET", {"range": "bytes = 0-9"}, False),
        ("GET", {"range": "Bytes=0-9"}, False),
        ("GET", {"range": "bytes=0-9,"}, False),
        ("GET", {"range": "bytes=abc"}, False),  # ignored: 200 here, 416 from nginx
        ("GET", {"range": "items=0-9"}, False),
        ("GET", {"range": "bytes=0-0000000000000000009"}, False),  # past nginx's digits
    ],
)
def test_wants_offload(method: str, headers: dict[str, str], offload: bool) -> None:
    app = [("etag", ETAG)]
    plan = plan_response(method, headers, 200, FACTS, app)
    assert wants_offload(method, headers, plan, app) is offload


def test_wants_offload_never_for_other_statuses_or_empty_files() -> None:
    plan = plan_response("GET", {}, 404, FACTS, [])
    assert not wants_offload("GET", {}, plan, [])
    empty = plan_response("GET", {}, 200, FileFacts(0, 0), [])
    assert not wants_offload("GET", {}, empty, [])


@pytest.mark.parametrize("name", ["Content-Encoding", "content-language", "Content-Location"])
def test_wants_offload_never_when_nginx_would_drop_representation_metadata(name: str) -> None:
    app = [(name, "x")]
    assert not wants_offload("GET", {}, plan_response("GET", {}, 200, FACTS, app), app)


def test_wants_offload_reads_the_clients_headers_not_the_plans() -> None:
    # handle_ranges off: planned without the Range the client sent, which nginx sees.
    plan = plan_response("GET", {}, 200, FACTS, [])
    assert not wants_offload("GET", {"range": "bytes=0-9"}, plan, [])


def test_offload_plan_leaves_length_range_and_200s_accept_ranges_to_nginx() -> None:
    app = [("content-type", "video/mp4"), ("accept-ranges", "bytes"), ("x-app", "1")]
    full = offload_plan(plan_response("GET", {}, 200, FACTS, app), "/_zc/a")
    headers = header_map(full.apply(app))
    assert (full.status, full.segments, full.content_length) == (200, (), 0)
    assert headers["x-accel-redirect"] == "/_zc/a"
    assert headers["content-length"] == "0"
    assert "accept-ranges" not in headers  # nginx adds its own to a 200
    assert headers["content-type"] == "video/mp4" and "etag" in headers
    part = offload_plan(plan_response("GET", {"range": "bytes=0-9"}, 200, FACTS, app), "/_zc/a")
    headers = header_map(part.apply(app))
    assert part.status == 200 and "content-range" not in headers
    assert headers["accept-ranges"] == "bytes"  # nginx adds none to a 206


# ------------------------------------------------------------ in process: ASGI


def _starlette(media: Path) -> Starlette:
    async def file(request: Request) -> FileResponse:
        return FileResponse(media / request.path_params["name"], headers={"x-app": "1"})

    return Starlette(routes=[Route("/{name:path}", file)])


async def _asgi(app: Any, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "extensions": {"http.response.zerocopysend": {}, "http.response.pathsend": {}},
    }

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return messages


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_asgi_hands_nginx_an_empty_response(media: Path, anyio_backend: str) -> None:
    mw = ZeroCopyMiddleware(
        _starlette(media), accel_redirect={media: "/_zc/"}, debug_header="X-Path"
    )
    messages = await _asgi(mw, "/data.bin", {"range": "bytes=0-9"})
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    start, body = messages
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert start["status"] == 200 and body["body"] == b""
    assert headers["x-accel-redirect"] == "/_zc/data.bin"
    assert (headers["content-length"], headers["x-path"], headers["x-app"]) == (
        "0",
        "x-accel-redirect",
        "1",
    )
    assert "content-range" not in headers
    # Served by the middleware itself (multipart): the file goes out, no redirect.
    messages = await _asgi(mw, "/data.bin", {"range": "bytes=0-9,20-29"})
    assert "http.response.zerocopysend" in [m["type"] for m in messages]
    assert all(k != b"x-accel-redirect" for k, _ in messages[0]["headers"])


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asgi_without_the_option_sends_no_redirect(media: Path, anyio_backend: str) -> None:
    messages = await _asgi(ZeroCopyMiddleware(_starlette(media)), "/data.bin", {})
    assert all(k != b"x-accel-redirect" for k, _ in messages[0]["headers"])
    assert [m["type"] for m in messages][1:] == [
        "http.response.zerocopysend",
        "http.response.body",
    ]


# ------------------------------------------------------------ in process: WSGI


def _wsgi_file_app(path: Path) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "video/mp4")])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 8192)  # noqa: SIM115

    return app


def _wsgi(mw: Any, **environ: Any) -> tuple[str, dict[str, str], bytes]:
    calls: list[Any] = []
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": "", **environ}
    result = mw(env, lambda status, headers, exc_info=None: calls.append((status, headers)))
    try:
        body = b"".join(result)
    finally:
        result.close()
    status, headers = calls[0]
    return status, {k.lower(): v for k, v in headers}, body


def test_wsgi_hands_nginx_an_empty_response(media: Path) -> None:
    app = _wsgi_file_app(media / "data.bin")
    mw = ZeroCopyWSGIMiddleware(app, accel_redirect={media: "/_zc/"}, debug_header="X-Path")
    status, headers, body = _wsgi(mw, HTTP_RANGE="bytes=-10")
    assert (status, body) == ("200 OK", b"")
    assert headers["x-accel-redirect"] == "/_zc/data.bin"
    assert (headers["content-length"], headers["x-path"]) == ("0", "x-accel-redirect")
    # A failed precondition is answered here, with no redirect.
    status, headers, body = _wsgi(mw, HTTP_IF_MATCH='"nope"')
    assert status.startswith("412") and "x-accel-redirect" not in headers
    status, headers, body = _wsgi(mw, HTTP_IF_RANGE='"x"', HTTP_RANGE="bytes=0-9")
    assert (status, body) == ("200 OK", DATA)
    assert "x-accel-redirect" not in headers


def test_wsgi_handle_ranges_off_never_hands_nginx_a_range(media: Path) -> None:
    app = _wsgi_file_app(media / "data.bin")
    mw = ZeroCopyWSGIMiddleware(app, accel_redirect={media: "/_zc/"}, handle_ranges=False)
    status, headers, body = _wsgi(mw, HTTP_RANGE="bytes=0-9")
    assert (status, body) == ("200 OK", DATA)
    assert "x-accel-redirect" not in headers
    status, headers, body = _wsgi(mw)
    assert headers["x-accel-redirect"] == "/_zc/data.bin" and body == b""


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asgi_x_sendfile_path_is_handed_to_nginx_and_never_shown(
    media: Path, anyio_backend: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-sendfile", str(media / "sub" / ".." / "data.bin").encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    mw = ZeroCopyMiddleware(
        app, sendfile_header="X-Sendfile", sendfile_roots=[media], accel_redirect={media: "/m/"}
    )
    messages = await _asgi(mw, "/", {})
    headers = dict(messages[0]["headers"])
    assert headers[b"x-accel-redirect"] == b"/m/data.bin"
    assert b"x-sendfile" not in headers
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asgi_excluded_path_never_hands_nginx_a_range(
    media: Path, anyio_backend: str
) -> None:
    # The app sees the Range there; a whole file it sends must not become nginx's 206.
    mw = ZeroCopyMiddleware(
        _starlette(media), accel_redirect={media: "/_zc/"}, exclude_paths=["/data"]
    )
    messages = await _asgi(mw, "/data.bin", {"range": "bytes=0-9", "x-test": "1"})
    assert all(k != b"x-accel-redirect" for k, _ in messages[0]["headers"])
    assert messages[0]["status"] == 206  # Starlette's own answer, passed through
    messages = await _asgi(mw, "/data.bin", {})
    assert (b"x-accel-redirect", b"/_zc/data.bin") in messages[0]["headers"]
