"""ZeroCopyWSGIMiddleware in process: a fake server (environ + start_response) for
every plan kind and every PEP 3333 point, and the Flask and Django test clients."""

from __future__ import annotations

import errno
import gc
import io
import os
import socket
import sys
import weakref
import wsgiref.util
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from _fakes import Environ
from _fakes import WsgiServer as FakeServer
from gunicorn.http.wsgi import FileWrapper as GunicornFileWrapper

from zcmiddleware import ZeroCopyWSGIMiddleware
from zcmiddleware._errors import FileShrankError
from zcmiddleware._http import REQUEST_FIELDS, FileFacts, FileSlice
from zcmiddleware._options import Options
from zcmiddleware._serve import answer_file, whole_file_answer
from zcmiddleware._wsgi_body import _SlicedFile

SIZE = 100_000


@pytest.fixture
def data(tmp_path: Path) -> bytes:
    payload = os.urandom(SIZE)
    (tmp_path / "data.bin").write_bytes(payload)
    return payload


class CountingFile(io.FileIO):
    """A file that counts how often it was closed."""

    closes = 0

    def close(self) -> None:
        type(self).closes += 1
        super().close()


def file_app(
    path: Path, status: str = "200 OK", headers: Iterable[tuple[str, str]] = ()
) -> Callable[[Environ, Any], Iterable[bytes]]:
    """Like Django's handler: start_response first, then the file wrapper."""

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "application/octet-stream"), *headers])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](CountingFile(path), 8192)
        return wrapper

    return app


@pytest.fixture(autouse=True)
def _reset_closes() -> None:
    CountingFile.closes = 0


# ------------------------------------------------------------------ plan kinds


@pytest.mark.parametrize(
    ("request_headers", "method", "status", "expected"),
    [
        ({}, "GET", "200 OK", slice(None)),
        ({"HTTP_RANGE": "bytes=10-19"}, "GET", "206 Partial Content", slice(10, 20)),
        ({"HTTP_RANGE": "bytes=-5"}, "GET", "206 Partial Content", slice(SIZE - 5, None)),
        ({"HTTP_RANGE": "items=0-5"}, "GET", "200 OK", slice(None)),
        ({"HTTP_RANGE": "bytes=0-5", "HTTP_IF_RANGE": '"old"'}, "GET", "200 OK", slice(None)),
        ({"HTTP_IF_MATCH": '"nope"'}, "GET", "412 Precondition Failed", slice(0)),
        ({"HTTP_IF_NONE_MATCH": "*"}, "GET", "304 Not Modified", slice(0)),
        ({"HTTP_RANGE": f"bytes={SIZE}-"}, "GET", f"416 {HTTPStatus(416).phrase}", slice(0)),
        ({}, "HEAD", "200 OK", slice(0)),
        ({"HTTP_RANGE": "bytes=0-5"}, "HEAD", "206 Partial Content", slice(0)),
    ],
)
def test_plan_kinds_on_a_plain_server(
    tmp_path: Path,
    data: bytes,
    request_headers: dict[str, str],
    method: str,
    status: str,
    expected: slice,
) -> None:
    server = FakeServer(REQUEST_METHOD=method, **request_headers)
    got_status, headers, body = server.run(ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin")))
    assert got_status == status
    assert body == data[expected]
    if method == "GET" and status.startswith(("200", "206")):
        assert headers["content-length"] == str(len(body))
    assert CountingFile.closes == 1


def test_multipart_body_and_length(tmp_path: Path, data: bytes) -> None:
    server = FakeServer(HTTP_RANGE="bytes=0-1,10-11")
    status, headers, body = server.run(ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin")))
    assert status == "206 Partial Content"
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(headers["content-length"]) == len(body)
    assert data[0:2] in body and data[10:12] in body
    assert CountingFile.closes == 1


def test_passthrough_status_keeps_the_apps_status_line(tmp_path: Path, data: bytes) -> None:
    app = file_app(tmp_path / "data.bin", status="404 Gone Fishing")
    status, headers, body = FakeServer(HTTP_RANGE="bytes=0-1").run(ZeroCopyWSGIMiddleware(app))
    assert (status, body, headers["content-length"]) == ("404 Gone Fishing", data, str(SIZE))


def test_debug_header_names_the_path(tmp_path: Path) -> None:
    mw = ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin"), debug_header="X-ZC")
    tmp_path.joinpath("data.bin").write_bytes(b"abc")
    assert FakeServer().run(mw)[1]["x-zc"] == "fallback"
    assert FakeServer(REQUEST_METHOD="HEAD").run(mw)[1]["x-zc"] == "none"


# ------------------------------------------------------------ server delivery


def test_gunicorn_gets_its_own_wrapper_positioned_at_the_offset(
    tmp_path: Path, data: bytes
) -> None:
    server = FakeServer(HTTP_RANGE="bytes=1000-1999", **{"wsgi.file_wrapper": GunicornFileWrapper})
    mw = ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin"))
    result = mw(server.environ, server.start_response)
    try:
        # gunicorn's isinstance check, on the environ *it* holds, passes.
        assert isinstance(result, server.environ["wsgi.file_wrapper"])
        fd = result.filelike.fileno()
        assert os.lseek(fd, 0, os.SEEK_CUR) == 1000
        assert dict(server.calls[0][1])["content-length"] == "1000"
        # Without sendfile (TLS, --no-sendfile) gunicorn iterates: bounded reads.
        assert b"".join(result) == data[1000:2000]
    finally:
        result.close()
    assert CountingFile.closes == 1


def test_gunicorn_wrapper_close_reports_a_shrunken_file(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(bytes(SIZE))
    server = FakeServer(**{"wsgi.file_wrapper": GunicornFileWrapper})
    result = ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin"))(
        server.environ, server.start_response
    )
    os.truncate(tmp_path / "data.bin", 10)
    with pytest.raises(FileShrankError):
        result.close()
    assert CountingFile.closes == 1


def test_iterator_aborts_when_the_file_shrinks(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(bytes(SIZE))
    server = FakeServer()
    result = ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin"), chunk_size=4096)(
        server.environ, server.start_response
    )
    os.truncate(tmp_path / "data.bin", 10_000)
    try:
        with pytest.raises(FileShrankError):
            b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    assert CountingFile.closes == 1


def test_multipart_on_gunicorn_is_an_iterator(tmp_path: Path, data: bytes) -> None:
    server = FakeServer(HTTP_RANGE="bytes=0-1,5-6", **{"wsgi.file_wrapper": GunicornFileWrapper})
    status, _, _ = server.run(ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin")))
    assert status == "206 Partial Content"


def test_uwsgi_style_wrapper_is_never_handed_the_file(tmp_path: Path, data: bytes) -> None:
    # uWSGI's wrapper is a builtin function that sends the whole file from byte 0.
    def uwsgi_sendfile(*args: Any) -> Any:
        raise AssertionError("uWSGI's file_wrapper must not be used")

    server = FakeServer(HTTP_RANGE="bytes=3-4", **{"wsgi.file_wrapper": uwsgi_sendfile})
    assert server.run(ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin")))[2] == data[3:5]


def test_uwsgi_sendfile_gets_a_duplicate_within_its_int_limits(
    tmp_path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int, int, int, bytes]] = []

    class FakeUwsgi:
        @staticmethod
        def sendfile(fd: int, chunk: int, pos: int, length: int) -> bool:
            # Like uWSGI: sends now, then closes the descriptor it was given.
            sent.append((fd, pos, length, os.pread(fd, length, pos)))
            os.close(fd)
            return True

    monkeypatch.setitem(sys.modules, "uwsgi", FakeUwsgi)
    server = FakeServer(HTTP_RANGE="bytes=10-19", **{"uwsgi.version": b"2.0.30"})
    mw = ZeroCopyWSGIMiddleware(file_app(tmp_path / "data.bin"), debug_header="x-zc")
    status, headers, body = server.run(mw)
    assert (status, body, headers["x-zc"]) == ("206 Partial Content", b"", "uwsgi.sendfile")
    assert [(pos, length, chunk) for _, pos, length, chunk in sent] == [(10, 10, data[10:20])]
    assert CountingFile.closes == 1
    # Multipart goes by the iterator.
    server = FakeServer(HTTP_RANGE="bytes=0-0,5-5", **{"uwsgi.version": b"2.0.30"})
    assert server.run(mw)[1]["x-zc"] == "fallback"


# ---------------------------------------------------------- what the app sees


def test_app_runs_with_the_servers_environ_and_gets_it_back_as_it_was(
    tmp_path: Path,
) -> None:
    seen: list[Environ] = []
    ids: list[int] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        ids.append(id(environ))
        seen.append(dict(environ))
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](CountingFile(tmp_path / "data.bin"))
        seen.append(dict(environ))
        environ["app.note"] = "stored by the app"  # as Werkzeug stores its request
        start_response("200 OK", [])
        return wrapper

    (tmp_path / "data.bin").write_bytes(b"x" * 10)
    server = FakeServer(
        HTTP_RANGE="bytes=0-1",
        HTTP_IF_RANGE='"a"',
        HTTP_IF_NONE_MATCH='"b"',
        **{"wsgi.file_wrapper": GunicornFileWrapper},
    )
    original = dict(server.environ)
    status, _, body = server.run(ZeroCopyWSGIMiddleware(app))
    # The planner answered from the request as the client sent it: If-Range does not
    # match, so the whole file.
    assert (status, body) == ("200 OK", b"x" * 10)
    # No copy: the app's environ is the server's (what it stores there, the server
    # and outer middleware see, as without us) ...
    assert ids == [id(server.environ)]
    assert server.environ.pop("app.note") == "stored by the app"
    # ... and every field the middleware hid or swapped is back, its wrapper gone.
    assert server.environ == original
    before, after = seen
    assert "HTTP_RANGE" not in before and "HTTP_IF_RANGE" not in before
    # Conditionals stay visible until a regular file is wrapped (pages that are not
    # files keep their own conditional GET), then the planner owns them.
    assert before["HTTP_IF_NONE_MATCH"] == '"b"' and "HTTP_IF_NONE_MATCH" not in after
    assert before["wsgi.file_wrapper"] is not GunicornFileWrapper


@pytest.mark.parametrize("server_wrapper", [GunicornFileWrapper, None])
@pytest.mark.parametrize("fails", [False, True])
def test_servers_environ_is_back_even_when_the_app_raises(
    tmp_path: Path, server_wrapper: object, fails: bool
) -> None:
    # The server's wsgi.file_wrapper (or its absence) and the hidden Range are back
    # before the middleware answers or re-raises; gunicorn reads its wrapper back from
    # the environ, its access log the request's fields.
    (tmp_path / "data.bin").write_bytes(b"y" * 10)

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](CountingFile(tmp_path / "data.bin"))
        if fails:
            raise RuntimeError("the view failed")
        start_response("200 OK", [])
        return wrapper

    extra = {} if server_wrapper is None else {"wsgi.file_wrapper": server_wrapper}
    server = FakeServer(HTTP_RANGE="bytes=0-1", HTTP_IF_MATCH="*", **extra)
    original = dict(server.environ)
    mw = ZeroCopyWSGIMiddleware(app)
    if fails:
        with pytest.raises(RuntimeError, match="the view failed"):
            mw(server.environ, server.start_response)
        assert CountingFile.closes == 1
    else:
        result = mw(server.environ, server.start_response)
        assert server.environ == original  # before the body is even iterated
        assert b"".join(result) == b"yy"
        result.close()  # type: ignore[attr-defined]
    assert server.environ == original


def test_a_wrap_file_called_after_the_app_returned_edits_nothing(tmp_path: Path) -> None:
    # An app that keeps our wrap_file and calls it from its body's iteration: the
    # server's environ is back by then, and stays as it was.
    (tmp_path / "data.bin").write_bytes(b"z" * 10)
    kept: list[Any] = []

    def body() -> Iterator[bytes]:
        wrapper = kept[0](CountingFile(tmp_path / "data.bin"))
        yield from wrapper
        wrapper.close()

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        kept.append(environ["wsgi.file_wrapper"])
        start_response("200 OK", [])
        return body()

    server = FakeServer(HTTP_RANGE="bytes=0-1", HTTP_IF_NONE_MATCH='"b"')
    original = dict(server.environ)
    status, _, data = server.run(ZeroCopyWSGIMiddleware(app))
    assert (status, data) == ("200 OK", b"z" * 10)
    assert server.environ == original
    assert CountingFile.closes == 1


@pytest.mark.parametrize("field", REQUEST_FIELDS)
def test_each_planner_field_alone_makes_the_answer_the_planners(tmp_path: Path, field: str) -> None:
    # The middleware spells the environ keys of REQUEST_FIELDS out: each one alone
    # must count (the app then sees none of it once its regular file is wrapped).
    key = "HTTP_" + field.upper().replace("-", "_")
    seen: list[Environ] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](CountingFile(tmp_path / "data.bin"))
        seen.append(dict(environ))
        start_response("200 OK", [])
        return wrapper

    (tmp_path / "data.bin").write_bytes(b"x" * 10)
    FakeServer(**{key: "x"}).run(ZeroCopyWSGIMiddleware(app))
    assert key not in seen[0]


def test_bytesio_stays_the_apps_and_gets_its_range_back() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"hello"))
        seen.append(dict(environ))
        start_response("200 OK", [])
        return wrapper

    status, headers, body = FakeServer(HTTP_RANGE="bytes=0-1").run(ZeroCopyWSGIMiddleware(app))
    assert (status, body) == ("200 OK", b"hello")
    assert seen[0]["HTTP_RANGE"] == "bytes=0-1"


def test_handle_ranges_off_leaves_headers_to_the_app(tmp_path: Path, data: bytes) -> None:
    seen: list[str | None] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        seen.append(environ.get("HTTP_RANGE"))
        return file_app(tmp_path / "data.bin")(environ, start_response)

    server = FakeServer(HTTP_RANGE="bytes=0-1")
    status, headers, body = server.run(ZeroCopyWSGIMiddleware(app, handle_ranges=False))
    assert (status, body, seen) == ("200 OK", data, ["bytes=0-1"])
    assert "accept-ranges" not in headers


def test_excluded_paths_are_handled_as_with_handle_ranges_off(tmp_path: Path, data: bytes) -> None:
    seen: list[str | None] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        seen.append(environ.get("HTTP_RANGE"))
        return file_app(tmp_path / "data.bin")(environ, start_response)

    mw = ZeroCopyWSGIMiddleware(app, exclude_paths=["/media/"], debug_header="x-zc")
    server = FakeServer(PATH_INFO="/media/x", HTTP_RANGE="bytes=0-1")
    status, headers, body = server.run(mw)
    assert (status, body, headers["x-zc"], seen) == ("200 OK", data, "fallback", ["bytes=0-1"])
    status, _, body = FakeServer(PATH_INFO="/other", HTTP_RANGE="bytes=0-1").run(mw)
    assert (status, body, seen[1]) == ("206 Partial Content", data[:2], None)


def test_sendfile_header_needs_roots() -> None:
    with pytest.raises(ValueError, match="sendfile_roots"):
        ZeroCopyWSGIMiddleware(lambda e, s: [], sendfile_header="X-Sendfile")


# ------------------------------------------------------------- recognition


@pytest.mark.parametrize(
    "make_wrapper",
    [
        pytest.param(lambda f: __import__("werkzeug.wsgi").wsgi.FileWrapper(f), id="werkzeug"),
        pytest.param(wsgiref.util.FileWrapper, id="wsgiref"),
        pytest.param(GunicornFileWrapper, id="gunicorn"),
    ],
)
def test_recognises_other_file_wrappers(
    tmp_path: Path, data: bytes, make_wrapper: Callable[[Any], Iterable[bytes]]
) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return make_wrapper(CountingFile(tmp_path / "data.bin"))

    server = FakeServer(HTTP_RANGE="bytes=7-8")
    status, headers, body = server.run(ZeroCopyWSGIMiddleware(app, debug_header="x-zc"))
    assert (status, body, headers["x-zc"]) == ("206 Partial Content", data[7:9], "fallback")
    assert CountingFile.closes == 1


def test_recognises_waitress_wrapper_when_it_is_the_servers(tmp_path: Path, data: bytes) -> None:
    from waitress.buffers import ReadOnlyFileBasedBuffer

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return ReadOnlyFileBasedBuffer(CountingFile(tmp_path / "data.bin"))

    server = FakeServer(HTTP_RANGE="bytes=1-2", **{"wsgi.file_wrapper": ReadOnlyFileBasedBuffer})
    assert server.run(ZeroCopyWSGIMiddleware(app))[2] == data[1:3]
    assert CountingFile.closes == 1


def test_a_pipe_is_not_a_file_response() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped")
    os.close(write_end)

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](os.fdopen(read_end, "rb"))
        return wrapper

    assert FakeServer(HTTP_RANGE="bytes=0-0").run(ZeroCopyWSGIMiddleware(app))[2] == b"piped"


# ------------------------------------------------------------------ X-Sendfile


def xsendfile_app(path: str, status: str = "200 OK") -> Callable[[Environ, Any], Iterable[bytes]]:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response(status, [("X-Sendfile", path), ("Content-Type", "text/plain")])
        return []

    return app


def test_x_sendfile_inside_roots(tmp_path: Path, data: bytes) -> None:
    mw = ZeroCopyWSGIMiddleware(
        xsendfile_app(str(tmp_path / "data.bin")),
        sendfile_header="X-Sendfile",
        sendfile_roots=[tmp_path],
    )
    status, headers, body = FakeServer(HTTP_RANGE="bytes=0-9").run(mw)
    assert (status, body) == ("206 Partial Content", data[:10])
    assert "x-sendfile" not in headers


@pytest.mark.parametrize(
    ("path", "status"),
    [("/etc/hostname", "500"), ("{root}/missing.bin", "404"), ("{root}", "500")],
)
def test_x_sendfile_refused_without_revealing_the_path(
    tmp_path: Path, path: str, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = path.format(root=tmp_path)
    mw = ZeroCopyWSGIMiddleware(
        xsendfile_app(path), sendfile_header="X-Sendfile", sendfile_roots=[tmp_path]
    )
    got, headers, body = FakeServer().run(mw)
    assert got.startswith(status)
    assert path.encode() not in body and "x-sendfile" not in headers
    assert "X-Sendfile" in caplog.text or "x-sendfile" in caplog.text


def test_x_sendfile_on_a_304_sends_no_file(tmp_path: Path) -> None:
    mw = ZeroCopyWSGIMiddleware(
        xsendfile_app(str(tmp_path / "data.bin"), "304 Not Modified"),
        sendfile_header="X-Sendfile",
        sendfile_roots=[tmp_path],
    )
    status, headers, body = FakeServer().run(mw)
    assert (status, body) == ("304 Not Modified", b"")
    assert "x-sendfile" not in headers


# ------------------------------------------------------------------- PEP 3333


def test_legacy_write_callable() -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"hello ")
        return [b"world"]

    assert FakeServer().run(ZeroCopyWSGIMiddleware(app))[2] == b"hello world"


def test_start_response_from_a_generator() -> None:
    def app(environ: Environ, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b""
        yield b"lazy"

    assert FakeServer().run(ZeroCopyWSGIMiddleware(app))[2] == b"lazy"


def test_exc_info_before_headers_replaces_them() -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"error page"]

    status, _, body = FakeServer().run(ZeroCopyWSGIMiddleware(app))
    assert (status, body) == ("500 Internal Server Error", b"error page")


def test_exc_info_after_headers_is_reraised() -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"partial")
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return []

    with pytest.raises(ValueError, match="boom"):
        FakeServer().run(ZeroCopyWSGIMiddleware(app))


def test_second_start_response_without_exc_info_is_an_error() -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    with pytest.raises(AssertionError):
        FakeServer().run(ZeroCopyWSGIMiddleware(app))


def test_a_response_passed_on_keeps_the_apps_own_header_list() -> None:
    headers = [("Content-Type", "text/plain"), ("X-App", "1")]

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", headers)
        return [b"hello"]

    server = FakeServer(HTTP_RANGE="bytes=0-1")
    assert server.run(ZeroCopyWSGIMiddleware(app))[2] == b"hello"
    assert server.calls[0][1] is headers


def test_app_iterable_close_is_always_called(tmp_path: Path) -> None:
    closed: list[str] = []

    class Body:
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        def __iter__(self) -> Iterator[bytes]:
            return iter(self.chunks)

        def close(self) -> None:
            closed.append("closed")

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body([b"x"])

    FakeServer(HTTP_RANGE="bytes=0-0").run(ZeroCopyWSGIMiddleware(app))
    mw = ZeroCopyWSGIMiddleware(
        lambda e, s: (s("200 OK", [("X-Sendfile", str(tmp_path / "data.bin"))]), Body([]))[1],
        sendfile_header="X-Sendfile",
        sendfile_roots=[tmp_path],
    )
    (tmp_path / "data.bin").write_bytes(b"abc")
    assert FakeServer().run(mw)[2] == b"abc"
    assert closed == ["closed", "closed"]


def test_an_app_that_raises_does_not_leak_the_file(tmp_path: Path) -> None:
    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        environ["wsgi.file_wrapper"](CountingFile(tmp_path / "data.bin"))
        raise RuntimeError("view failed")

    (tmp_path / "data.bin").write_bytes(b"abc")
    with pytest.raises(RuntimeError):
        FakeServer().run(ZeroCopyWSGIMiddleware(app))
    assert CountingFile.closes == 1


@pytest.mark.parametrize("server_wrapper", [None, GunicornFileWrapper], ids=["plain", "gunicorn"])
def test_every_wrapped_file_is_closed_when_one_close_raises(
    tmp_path: Path, server_wrapper: Any
) -> None:
    # The app returns the first of three wrapped files; the second's close raises.
    class FailingFile(io.FileIO):
        def close(self) -> None:
            CountingFile.closes += 1
            super().close()
            raise OSError("close failed")

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [])
        first: Iterable[bytes] = environ["wsgi.file_wrapper"](CountingFile(path))
        environ["wsgi.file_wrapper"](FailingFile(path))
        environ["wsgi.file_wrapper"](CountingFile(path))
        return first

    path = tmp_path / "data.bin"
    path.write_bytes(b"abc")
    server = FakeServer(**({"wsgi.file_wrapper": server_wrapper} if server_wrapper else {}))
    with pytest.raises(OSError, match="close failed"):
        server.run(ZeroCopyWSGIMiddleware(app))
    assert CountingFile.closes == 3


# --------------------------------------------------------------- test clients


@pytest.mark.parametrize("gunicorn", [False, True], ids=["plain", "gunicorn"])
@pytest.mark.parametrize(
    "request_headers",
    [{}, {"HTTP_RANGE": "bytes=0-1"}, {"HTTP_IF_NONE_MATCH": '"x"'}],
    ids=["whole", "range", "conditional"],
)
def test_an_exchange_goes_without_the_garbage_collector(
    tmp_path: Path, data: bytes, request_headers: dict[str, str], gunicorn: bool
) -> None:
    # A reference cycle per request would leave every request's objects (the app's
    # environ, its file) to the next collection.
    exchanges: list[weakref.ref[object]] = []

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        exchanges.append(weakref.ref(environ["wsgi.file_wrapper"].__self__))
        start_response("200 OK", [])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](CountingFile(tmp_path / "data.bin"))
        return wrapper

    mw = ZeroCopyWSGIMiddleware(app)
    server = FakeServer(**request_headers)
    gc.collect()
    gc.disable()
    try:
        (server.run_like_gunicorn if gunicorn else server.run)(mw)
        assert exchanges[0]() is None
    finally:
        gc.enable()
    assert CountingFile.closes == 1


def test_flask_test_client_keeps_working(tmp_path: Path, data: bytes) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)

    @app.get("/f")
    def f() -> Any:
        return flask.send_file(tmp_path / "data.bin")

    @app.get("/json")
    def json_view() -> Any:
        return {"ok": True}

    app.wsgi_app = ZeroCopyWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    with client.get("/f") as r:
        assert (r.status_code, r.data) == (200, data)
        etag = r.headers["ETag"]
    with client.get("/f", headers={"Range": "bytes=5-9"}) as r:
        assert (r.status_code, r.data) == (206, data[5:10])
    with client.get("/f", headers={"Range": "bytes=0-0,9-9"}) as r:
        assert r.status_code == 206 and r.mimetype == "multipart/byteranges"
    with client.head("/f") as r:
        assert (r.status_code, r.headers["Content-Length"], r.data) == (200, str(SIZE), b"")
    with client.get("/f", headers={"If-None-Match": etag}) as r:
        assert r.status_code == 304
    with client.get("/f", headers={"If-Match": '"x"'}) as r:
        assert r.status_code == 412
    with client.get("/json") as r:
        assert r.json == {"ok": True}


def test_django_test_client_keeps_working(tmp_path: Path, data: bytes) -> None:
    pytest.importorskip("django")
    os.environ["ZC_DATA_DIR"] = str(tmp_path)
    try:
        from apps import wsgi_django_app  # noqa: F401 (configures Django)
        from django.test import Client
        from werkzeug.test import Client as WSGIClient

        # Django's own test client bypasses WSGI: it must still work.
        response = Client().get("/hello")
        assert response.content == b"hello"
        # Through the WSGI application (the middleware), FileResponse gains ranges.
        wsgi_django_app.DATA_DIR = str(tmp_path)
        client = WSGIClient(wsgi_django_app.application)
        with client.get("/file/data.bin", headers={"Range": "bytes=5-9"}) as r:
            assert (r.status_code, r.data) == (206, data[5:10])
        with client.head("/file/data.bin") as r:
            assert (r.status_code, r.headers["Content-Length"]) == (200, str(SIZE))
    finally:
        del os.environ["ZC_DATA_DIR"]


@pytest.mark.parametrize("sendfile_works", [True, False], ids=["sendfile", "seek-and-read"])
def test_sliced_file_through_socket_sendfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendfile_works: bool
) -> None:
    # gunicorn passes the file-like to socket.sendfile(file, offset, count). When
    # os.sendfile fails before sending anything (a client that just went away, a file
    # system without sendfile) the standard library falls back to seek + read on it.
    data = os.urandom(100_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    closed: list[int] = []
    sliced = _SlicedFile(fd, 1000, 5000, 4096, lambda: (closed.append(fd), os.close(fd)))
    if not sendfile_works:

        def no_sendfile(*args: object) -> int:
            raise OSError(errno.EINVAL, "sendfile not supported here")

        monkeypatch.setattr(os, "sendfile", no_sendfile)
    a, b = socket.socketpair()
    with a, b:
        assert a.sendfile(sliced, offset=1000, count=5000) == 5000  # type: ignore[arg-type]
        received = b""
        while len(received) < 5000:
            received += b.recv(5000 - len(received))
    assert received == data[1000:6000]
    sliced.close()
    assert closed == [fd]


# --------------------------------------------- the whole-file answer without a plan


@pytest.mark.parametrize("status", [200, 204, 304, 404, 412, 500])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("handles", [True, False])
@pytest.mark.parametrize("option", ["none", "precompressed", "accel_redirect"])
@pytest.mark.parametrize("named", [True, False])
def test_whole_file_answer_is_answer_files_or_defers_to_it(
    tmp_path: Path, status: int, method: str, handles: bool, option: str, named: bool
) -> None:
    # The shortcut of a request with no Range or conditional field says what
    # answer_file says, or leaves the answer to it (a variant, nginx, another status).
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10)
    (tmp_path / "f.bin.br").write_bytes(b"y")
    kwargs: dict[str, Any] = {
        "none": {},
        "precompressed": {"precompressed": ["br"]},
        "accel_redirect": {"accel_redirect": {str(tmp_path): "/_zc/"}},
    }[option]
    options = Options.build(**kwargs)
    headers = [("Content-Type", "text/plain"), ("Content-Length", "10"), ("ETag", '"a"')]
    facts = FileFacts(10, 1_700_000_000_000_000_000)
    name = str(path) if named else None
    quick = whole_file_answer(status, headers, 10, facts.mtime_ns, name, options, handles)
    deferred = status != 200 or option == "accel_redirect" or (option == "precompressed" and named)
    assert (quick is None) == deferred
    if quick is None:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        answer = answer_file(method, {}, status, headers, fd, facts, name, options, handles)
    finally:
        os.close(fd)
    assert answer.headers == quick
    assert answer.plan.status == 200
    assert answer.plan.segments == (() if method == "HEAD" else (FileSlice(0, 10),))
