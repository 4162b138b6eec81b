"""``precompressed=("br", "gzip")``: a file's ``.br`` / ``.gz`` variant is served to
clients that accept it, on both middlewares alike -- zero-copy, with
``Content-Encoding``, ``Vary: Accept-Encoding``, an ETag of its own, and Range and
preconditions over the variant's own bytes (RFC 9110 §8.4, §12.5.3)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from _fakes import CAPABILITIES, PATHSEND, ZEROCOPYSEND, AsgiServer, WsgiServer

from zcmiddleware import ZeroCopyMiddleware, ZeroCopyWSGIMiddleware

TEXT = b"console.log('precompressed');\n" * 2000
GZ = gzip.compress(TEXT, mtime=0)
BR = b"pretend-brotli:" + os.urandom(300)  # the middleware never decodes a variant


@pytest.fixture
def js(tmp_path: Path) -> Path:
    path = tmp_path / "app.js"
    path.write_bytes(TEXT)
    (tmp_path / "app.js.gz").write_bytes(GZ)
    (tmp_path / "app.js.br").write_bytes(BR)
    newer = path.stat().st_mtime_ns + 10**9
    for variant in ("app.js.gz", "app.js.br"):
        os.utime(tmp_path / variant, ns=(newer, newer))
    return path


def asgi(path: Path, method: str, headers: dict[str, str], extensions: str) -> dict[str, Any]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        start_headers = [(b"content-type", b"text/javascript")]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        await send({"type": "http.response.pathsend", "path": str(path)})

    middleware = ZeroCopyMiddleware(app, precompressed=("br", "gzip"), debug_header="X-Path")
    server = AsgiServer(CAPABILITIES[extensions])

    async def run() -> None:
        await middleware(
            server.scope(method, "/app.js", list(headers.items())), server.receive, server.send
        )

    anyio.run(run)
    return {
        "status": server.status,
        "headers": server.headers,
        "body": bytes(server.body),
        "messages": server.messages,
    }


def wsgi(path: Path, method: str, headers: dict[str, str], gunicorn: bool) -> dict[str, Any]:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/javascript")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))  # noqa: SIM115

    middleware = ZeroCopyWSGIMiddleware(app, precompressed=("br", "gzip"), debug_header="X-Path")
    environ = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    server = WsgiServer(REQUEST_METHOD=method, **environ)
    status, got, body = (server.run_like_gunicorn if gunicorn else server.run)(middleware)
    by_file_wrapper = getattr(server, "by_file_wrapper", False)
    return {"status": int(status[:3]), "headers": got, "body": body, "sendfile": by_file_wrapper}


SIDES = [
    pytest.param(lambda p, m, h: asgi(p, m, h, "zerocopysend"), id="asgi-zerocopysend"),
    pytest.param(lambda p, m, h: asgi(p, m, h, "pathsend"), id="asgi-pathsend"),
    pytest.param(lambda p, m, h: asgi(p, m, h, "none"), id="asgi-fallback"),
    pytest.param(lambda p, m, h: wsgi(p, m, h, True), id="wsgi-gunicorn"),
    pytest.param(lambda p, m, h: wsgi(p, m, h, False), id="wsgi-plain"),
]


@pytest.mark.parametrize("side", SIDES)
def test_the_preferred_accepted_variant_is_served(js: Path, side: Any) -> None:
    got = side(js, "GET", {"Accept-Encoding": "gzip, deflate, br"})
    assert (got["status"], got["body"]) == (200, BR)
    headers = got["headers"]
    assert headers["content-encoding"] == "br"
    assert headers["content-length"] == str(len(BR))
    assert headers["content-type"] == "text/javascript"
    assert "accept-encoding" in headers["vary"].lower()
    got = side(js, "GET", {"Accept-Encoding": "gzip"})
    assert (got["body"], got["headers"]["content-encoding"]) == (GZ, "gzip")
    assert gzip.decompress(got["body"]) == TEXT
    etags = {
        side(js, "GET", {"Accept-Encoding": c})["headers"]["etag"]
        for c in ("br", "gzip", "identity")
    }
    assert len(etags) == 3  # one representation, one strong validator each (§8.8.3)


@pytest.mark.parametrize("side", SIDES)
def test_identity_when_the_client_does_not_accept_a_variant(js: Path, side: Any) -> None:
    for accept in (None, "identity", "br;q=0, gzip;q=0", "deflate"):
        got = side(js, "GET", {} if accept is None else {"Accept-Encoding": accept})
        assert (got["status"], got["body"]) == (200, TEXT), accept
        assert "content-encoding" not in got["headers"], accept
        assert "accept-encoding" in got["headers"]["vary"].lower(), accept  # it varies


@pytest.mark.parametrize("side", SIDES)
def test_range_and_preconditions_are_over_the_variant(js: Path, side: Any) -> None:
    accept = {"Accept-Encoding": "gzip"}
    first = side(js, "GET", accept)
    got = side(js, "GET", {**accept, "Range": "bytes=10-19"})
    assert (got["status"], got["body"]) == (206, GZ[10:20])
    assert got["headers"]["content-range"] == f"bytes 10-19/{len(GZ)}"
    got = side(js, "GET", {**accept, "If-None-Match": first["headers"]["etag"]})
    assert (got["status"], got["body"]) == (304, b"")
    # The identity representation's tag does not match the gzip variant.
    identity = side(js, "GET", {})
    got = side(js, "GET", {**accept, "If-None-Match": identity["headers"]["etag"]})
    assert got["status"] == 200 and got["body"] == GZ
    assert side(js, "HEAD", accept)["headers"]["content-length"] == str(len(GZ))


@pytest.mark.parametrize("side", SIDES)
def test_stale_or_irregular_variants_are_not_served(js: Path, side: Any) -> None:
    older = js.stat().st_mtime_ns - 10**9
    os.utime(js.parent / "app.js.br", ns=(older, older))  # compressed before the last edit
    (js.parent / "app.js.gz").unlink()
    (js.parent / "app.js.gz").mkdir()  # not a regular file
    got = side(js, "GET", {"Accept-Encoding": "br, gzip"})
    assert (got["status"], got["body"]) == (200, TEXT)
    assert "content-encoding" not in got["headers"]
    assert "vary" not in got["headers"]  # no variant exists: the answer does not vary


def test_the_variant_goes_by_the_zero_copy_path(js: Path) -> None:
    # Counted in the messages the server got (and gunicorn's own FileWrapper), not
    # taken from the debug header alone.
    got = asgi(js, "GET", {"Accept-Encoding": "br"}, "zerocopysend")
    (file_message,) = [m for m in got["messages"] if m["type"] == ZEROCOPYSEND]
    assert (file_message["offset"], file_message["count"]) == (0, len(BR))
    assert got["headers"]["x-path"] == "zerocopysend"
    got = asgi(js, "GET", {"Accept-Encoding": "br"}, "pathsend")
    (path_message,) = [m for m in got["messages"] if m["type"] == PATHSEND]
    assert path_message["path"] == str(js) + ".br"  # the whole variant, by its own path
    assert got["headers"]["x-path"] == "pathsend"
    got = wsgi(js, "GET", {"Accept-Encoding": "br"}, True)
    assert got["sendfile"] and got["body"] == BR  # gunicorn's FileWrapper: sendfile(2)
    assert got["headers"]["x-path"] == "file_wrapper"


def test_no_descriptor_leaks(js: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for side in SIDES:
        for accept in ("br", "gzip", "identity"):
            side.values[0](js, "GET", {"Accept-Encoding": accept})
            side.values[0](js, "HEAD", {"Accept-Encoding": accept, "Range": "bytes=0-1"})
    assert len(os.listdir("/proc/self/fd")) == before
