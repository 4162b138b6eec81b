"""The options of both middlewares: one validation, the same names, defaults and
messages; a single string where a sequence is expected is one item, never its
characters."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from _fakes import AsgiServer, WsgiServer

from zcmiddleware import ZeroCopyMiddleware, ZeroCopyWSGIMiddleware
from zcmiddleware._options import Options

MIDDLEWARES = [ZeroCopyMiddleware, ZeroCopyWSGIMiddleware]
DATA = b"0123456789" * 100


def _app(*args: Any) -> Any:
    raise AssertionError("not called")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "inside.bin").write_bytes(DATA)
    (tmp_path / "secret.bin").write_bytes(b"secret")
    return tmp_path


def test_both_middlewares_take_the_same_options_with_the_same_defaults() -> None:
    asgi = inspect.signature(ZeroCopyMiddleware).parameters
    wsgi = inspect.signature(ZeroCopyWSGIMiddleware).parameters
    assert list(asgi) == list(wsgi)
    assert [p.default for p in asgi.values()] == [p.default for p in wsgi.values()]
    assert ZeroCopyMiddleware(_app).options == ZeroCopyWSGIMiddleware(_app).options == Options()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sendfile_roots": 42}, TypeError, "sendfile_roots must be a path or a sequence"),
        ({"sendfile_roots": [42]}, TypeError, "sendfile_roots must hold paths"),
        ({"exclude_paths": 3}, TypeError, "exclude_paths must be a path prefix"),
        ({"exclude_paths": [b"/api"]}, TypeError, "exclude_paths must hold path prefixes"),
        ({"exclude_paths": "api"}, ValueError, "a path prefix starts with '/'"),
        ({"exclude_paths": [""]}, ValueError, "a path prefix starts with '/'"),
        ({"handle_ranges": "yes"}, TypeError, "handle_ranges must be True or False"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be positive"),
        ({"chunk_size": 1.5}, TypeError, "chunk_size must be an int"),
        ({"chunk_size": True}, TypeError, "chunk_size must be an int"),
        ({"debug_header": "X Bad"}, ValueError, "debug_header must be a valid header name"),
        ({"debug_header": b"X-Path"}, TypeError, "debug_header must be a header name"),
        ({"sendfile_header": "X-Sendfile"}, ValueError, "sendfile_header needs at least one"),
        ({"sendfile_header": "X:Sendfile"}, ValueError, "must be a valid header name"),
        ({"precompressed": ["deflate"]}, ValueError, "'deflate' is not one of"),
        ({"precompressed": 1}, TypeError, "precompressed must be a content coding"),
    ],
)
@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_bad_options_fail_at_construction_with_the_same_message(
    middleware: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        middleware(_app, **kwargs)


@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_roots_must_be_existing_directories(middleware: Any, tree: Path) -> None:
    for root in (tree / "missing", tree / "secret.bin"):
        with pytest.raises(ValueError, match="is not an existing directory"):
            middleware(_app, sendfile_header="X-Sendfile", sendfile_roots=root)
    with pytest.raises(ValueError, match="only used with sendfile_header"):
        middleware(_app, sendfile_roots=tree)


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize("kind", [str, Path, os.fsencode])
def test_a_single_root_is_one_path_not_its_characters(
    middleware: Any, tree: Path, kind: Any
) -> None:
    mw = middleware(_app, sendfile_header="X-Sendfile", sendfile_roots=kind(str(tree / "public")))
    assert mw.options.sendfile_roots == (str((tree / "public").resolve()),)
    trailing = middleware(_app, sendfile_header="X-Sendfile", sendfile_roots=f"{tree}/public/")
    assert trailing.options.sendfile_roots == mw.options.sendfile_roots


@pytest.mark.parametrize("middleware", MIDDLEWARES)
def test_a_single_prefix_is_one_prefix(middleware: Any) -> None:
    assert middleware(_app, exclude_paths="/api").options.exclude_paths == ("/api",)
    assert middleware(_app, precompressed="br").options.precompressed == ("br",)


# Through the middlewares: the string root refuses a file outside it; the string prefix
# leaves Range handling on everywhere else.


def _asgi_xsendfile(path: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-sendfile", path.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


def _wsgi_xsendfile(path: str) -> Any:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("X-Sendfile", path)])
        return [b""]

    return app


def _asgi_get(app: Any, path: str = "/", headers: Any = ()) -> AsgiServer:
    server = AsgiServer({})

    async def run() -> None:
        await app(server.scope("GET", path, headers), server.receive, server.send)

    anyio.run(run)
    return server


@pytest.mark.parametrize("target", ["secret.bin", "/etc/passwd"])
def test_string_root_refuses_files_outside_it(tree: Path, target: str) -> None:
    path = target if target.startswith("/") else str(tree / target)
    roots = str(tree / "public")  # a string, as an easy slip would give it
    asgi = ZeroCopyMiddleware(
        _asgi_xsendfile(path), sendfile_header="X-Sendfile", sendfile_roots=roots
    )
    server = _asgi_get(asgi)
    assert (server.status, bytes(server.body)) == (500, b"Internal Server Error")
    wsgi = ZeroCopyWSGIMiddleware(
        _wsgi_xsendfile(path), sendfile_header="X-Sendfile", sendfile_roots=roots
    )
    status, _, body = WsgiServer().run(wsgi)
    assert (status, body) == ("500 Internal Server Error", b"Internal Server Error")
    inside = str(tree / "public" / "inside.bin")
    asgi_in = ZeroCopyMiddleware(
        _asgi_xsendfile(inside), sendfile_header="X-Sendfile", sendfile_roots=roots
    )
    assert bytes(_asgi_get(asgi_in).body) == DATA


def test_string_prefix_excludes_only_that_prefix(tree: Path) -> None:
    path = str(tree / "public" / "inside.bin")

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": path})

    def wsgi_app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(path, "rb"))  # noqa: SIM115

    asgi = ZeroCopyMiddleware(asgi_app, exclude_paths="/api")
    wsgi = ZeroCopyWSGIMiddleware(wsgi_app, exclude_paths="/api")
    for url, expected in (("/files/a", 206), ("/api/a", 200)):
        server = _asgi_get(asgi, url, [("Range", "bytes=0-9")])
        assert server.status == expected, url
        status, _, _ = WsgiServer(PATH_INFO=url, HTTP_RANGE="bytes=0-9").run(wsgi)
        assert int(status[:3]) == expected, url
