"""Drop-in safety on real servers: adding ZeroCopyMiddleware to an app changes
nothing but its file responses. Each test compares the app with the line against the
same app without it (``ZC_ORDER=plain``), on uvicorn with zcmiddleware's protocol
classes and on stock uvicorn. The app is tests/apps/dropin_app.py.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _multipart import parse_spans
from _servers import HOST, Server, fetch, free_port, python, run_server

pytestmark = pytest.mark.integration

SIZE = 1_000_000
JS = (b"function f(x) { return x * 2; } // some very compressible text\n" * 16000)[:SIZE]
BINARY = os.urandom(SIZE)
PAGE = b"<!doctype html><title>static</title>" * 20

KINDS = {"zc": ["--http", "zcmiddleware.uvicorn:AutoHTTPProtocol"], "stock": []}
WARNING = "ZeroCopyMiddleware is wrapped by"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dropin")
    (directory / "app.js").write_bytes(JS)
    (directory / "data.bin").write_bytes(BINARY)
    (directory / "video.mp4").write_bytes(BINARY)
    (directory / "page.html").write_bytes(PAGE)
    return directory


_running: dict[tuple[str, str], Server] = {}


@pytest.fixture(scope="module")
def servers(files: Path) -> Iterator[dict[tuple[str, str], Server]]:
    """Started on first use, one per (server kind, middleware order), stopped at the end."""
    stack: list[Iterator[Server]] = []

    def get(kind: str, order: str) -> Server:
        if (kind, order) not in _running:
            port = free_port()
            argv = python(
                "-m", "uvicorn", "apps.dropin_app:app", "--port", str(port), "--host", HOST,
                "--log-level", "warning", *KINDS[kind],
            )  # fmt: skip
            context = run_server(argv, port=port, env={"ZC_DIR": str(files), "ZC_ORDER": order})
            _running[(kind, order)] = context.__enter__()
            stack.append(context)
        return _running[(kind, order)]

    class Lazy(dict[tuple[str, str], Server]):
        def __missing__(self, key: tuple[str, str]) -> Server:
            return get(*key)

    try:
        yield Lazy()
    finally:
        for context in reversed(stack):
            context.__exit__(None, None, None)
        _running.clear()


def stats(server: Server) -> dict[str, int]:
    import json

    return json.loads(fetch(server, "/stats")[2])  # type: ignore[no-any-return]


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------ the app's own conditional answers


def test_api_endpoint_keeps_its_own_304(servers: dict, kind: str) -> None:
    for order in ("plain", "outermost"):
        status, headers, body = fetch(
            servers[kind, order], "/api/item", {"If-None-Match": '"item-v1"'}
        )
        assert (status, headers["etag"], body) == (304, '"item-v1"', b""), order
        status, _, body = fetch(servers[kind, order], "/api/item")
        assert (status, body) == (200, b'{"item":1}'), order


def test_static_files_keep_their_own_304(servers: dict, kind: str) -> None:
    answers = {}
    for order in ("plain", "outermost"):
        server = servers[kind, order]
        _, headers, body = fetch(server, "/static/page.html", {"Accept-Encoding": "identity"})
        assert body == PAGE
        status, again, body = fetch(server, "/static/page.html", {"If-None-Match": headers["etag"]})
        answers[order] = (status, body, again.get("etag"))
    assert answers["outermost"] == answers["plain"]
    assert answers["plain"][0] == 304


# --------------------------------------------------------------------- compression


def test_compressible_file_is_still_compressed(servers: dict, kind: str) -> None:
    # Without zcmiddleware means stock uvicorn: zcmiddleware.uvicorn alone offers the
    # app pathsend, which GZipMiddleware never compresses (docs/asgi.md).
    for order in ("outermost", "plain") if kind == "stock" else ("outermost",):
        status, headers, body = fetch(
            servers[kind, order], "/files/app.js", {"Accept-Encoding": "gzip"}
        )
        assert status == 200, order
        assert headers.get("content-encoding") == "gzip", (order, headers)
        assert "accept-encoding" in headers.get("vary", "").lower(), order
        assert gzip.decompress(body) == JS, order
        assert len(body) < SIZE // 10, order


def test_incompressible_file_still_goes_zero_copy(servers: dict) -> None:
    server = servers["zc", "outermost"]
    before = stats(server)["sendfile_bytes"]
    status, headers, body = fetch(server, "/files/video.mp4", {"Accept-Encoding": "gzip"})
    assert (status, body) == (200, BINARY)
    assert "content-encoding" not in headers
    assert headers["x-zerocopy-path"] == "zerocopysend"
    assert stats(server)["sendfile_bytes"] - before == SIZE
    # And a client that does not ask for gzip gets the JavaScript zero-copy too.
    before = stats(server)["sendfile_bytes"]
    status, headers, body = fetch(server, "/files/app.js", {"Accept-Encoding": "identity"})
    assert (status, body, headers["x-zerocopy-path"]) == (200, JS, "zerocopysend")
    assert stats(server)["sendfile_bytes"] - before == SIZE


# ---------------------------------------------------------------------------- HEAD


def test_head_makes_the_app_do_no_more_work(servers: dict, kind: str) -> None:
    produced = {}
    for order in ("plain", "outermost"):
        server = servers[kind, order]
        before = stats(server)["chunks"]
        status, headers, body = fetch(server, "/stream", method="HEAD")
        assert (status, body) == (200, b"")
        produced[order] = stats(server)["chunks"] - before
    # Bounded by what the app makes before its first body message.
    assert produced["outermost"] <= max(produced["plain"], 1), produced
    assert produced["outermost"] <= 2, produced


# --------------------------------------------------------- misordered middleware


@pytest.mark.parametrize("order", ["inside-base", "inside-gzip"])
def test_misordered_middleware_stays_byte_exact(servers: dict, kind: str, order: str) -> None:
    server = servers[kind, order]
    plain = {"Accept-Encoding": "identity"}
    status, headers, body = fetch(server, "/files/data.bin", plain)
    assert (status, body) == (200, BINARY)
    assert headers["content-length"] == str(SIZE)
    status, headers, body = fetch(server, "/files/data.bin", {**plain, "Range": "bytes=100-199"})
    assert (status, body, headers["content-length"]) == (206, BINARY[100:200], "100")
    ranges = {**plain, "Range": "bytes=0-9,5000-5999,-7"}
    status, headers, body = fetch(server, "/files/data.bin", ranges)
    assert status == 206
    spans = parse_spans(headers["content-type"], body)
    assert [(a, b) for a, b, _ in spans] == [(0, 10), (5000, 6000), (SIZE - 7, SIZE)]
    assert all(data == BINARY[a:b] for a, b, data in spans)
    if kind == "zc":
        # zerocopysend is lost to the outer middleware, and said so once; whole files
        # still go by pathsend, which both pass on.
        before = stats(server)["sendfile_bytes"]
        _, headers, body = fetch(server, "/files/data.bin", plain)
        assert body == BINARY and headers["x-zerocopy-path"] == "pathsend"
        assert stats(server)["sendfile_bytes"] - before == SIZE
        assert server.log().count(WARNING) == 1, server.log()
