"""The suite's fake servers: one ASGI, one WSGI. Both record what the middleware
hands them and turn it into the body bytes a real server would write."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import anyio

from zcmiddleware import PATHSEND, PATHSEND_RANGE, ZEROCOPYSEND

Message = MutableMapping[str, Any]
Environ = dict[str, Any]

#: The ASGI capability sets a server may offer.
CAPABILITIES: dict[str, dict[str, Any]] = {
    "none": {},
    "pathsend": {PATHSEND: {}},
    "zerocopysend": {ZEROCOPYSEND: {}},
    "both": {PATHSEND: {}, ZEROCOPYSEND: {}},
    # As zcmiddleware.uvicorn offers them: a pathsend's file is opened before the start,
    # and a pathsend may name a range of it.
    "zc-uvicorn": {
        PATHSEND: {"zcmiddleware.opens_before_start": True, PATHSEND_RANGE: True},
        ZEROCOPYSEND: {"zcmiddleware.aborts_short_files": True},
    },
}


class AsgiServer:
    """A recorded ASGI server: what it offers, what it was sent, the body it would write."""

    def __init__(
        self,
        extensions: Mapping[str, Any],
        *,
        spec_version: str = "2.3",
        fail_send_after: int | None = None,
        disconnect_after: int | None = None,
    ) -> None:
        self.extensions = dict(extensions)
        self.spec_version = spec_version
        self.messages: list[Message] = []
        self.body = bytearray()
        self.files: list[Any] = []  # file objects handed over by zerocopysend
        self.fail_send_after = fail_send_after
        self.disconnect_after = disconnect_after
        self.disconnected = anyio.Event()

    def scope(self, method: str, path: str, headers: Sequence[tuple[str, str]] = ()) -> Message:
        scope: Message = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": self.spec_version},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }
        if self.extensions:
            scope["extensions"] = self.extensions
        return scope

    async def receive(self) -> Message:
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.fail_send_after is not None and len(self.messages) >= self.fail_send_after:
            raise OSError("client disconnected")  # what ASGI 2.4 servers raise
        self.messages.append(message)
        kind = message["type"]
        if kind == "http.response.body":
            self.body += message.get("body", b"")
        elif kind == PATHSEND:
            with open(message["path"], "rb") as f:  # noqa: ASYNC230 (a test's small file)
                data = f.read()
            if PATHSEND_RANGE in message:  # as zcmiddleware.uvicorn: the size is checked
                offset, count, size = message[PATHSEND_RANGE]
                assert len(data) == size, "the server would answer 500"
                data = data[offset : offset + count]
            self.body += data
        elif kind == ZEROCOPYSEND:
            # Like os.sendfile: whatever the file holds now, possibly short.
            self.files.append(message["file"])
            self.body += os.pread(message["file"].fileno(), message["count"], message["offset"])
        if self.disconnect_after is not None and len(self.messages) >= self.disconnect_after:
            self.disconnected.set()

    @property
    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]

    @property
    def start(self) -> Message:
        assert self.messages[0]["type"] == "http.response.start", self.types
        return self.messages[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.start["headers"]}


class WsgiServer:
    """Just enough of a WSGI server: records start_response calls and write()s, and
    re-raises exc_info once headers went out, as PEP 3333 asks."""

    def __init__(self, **environ: Any) -> None:
        self.environ: Environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SCRIPT_NAME": "",
            "wsgi.url_scheme": "http",
            **environ,
        }
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.written: list[bytes] = []
        self.headers_sent = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.headers_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.calls.append((status, headers))
        return self.write

    def write(self, data: bytes) -> None:
        self.headers_sent = True
        self.written.append(data)

    def run(self, app: Any) -> tuple[str, dict[str, str], bytes]:
        result = app(self.environ, self.start_response)
        try:
            body = b"".join(self.written) + b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        assert len(self.calls) == 1, self.calls
        status, headers = self.calls[0]
        return status, {k.lower(): v for k, v in headers}, body

    def run_like_gunicorn(self, app: Any) -> tuple[str, dict[str, str], bytes]:
        """As gunicorn does: its own ``FileWrapper`` in the environ, and a body that is
        an instance of it sent as ``sendfile(2)`` would -- Content-Length bytes from the
        descriptor's position -- anything else iterated."""
        from gunicorn.http.wsgi import FileWrapper

        self.environ["wsgi.file_wrapper"] = FileWrapper
        result = app(self.environ, self.start_response)
        try:
            status, headers = self.calls[-1]
            fields = {k.lower(): v for k, v in headers}
            self.by_file_wrapper = isinstance(result, FileWrapper)
            if self.by_file_wrapper:
                fd = result.filelike.fileno()
                length = int(fields["content-length"])
                body = os.pread(fd, length, os.lseek(fd, 0, os.SEEK_CUR))
            else:
                body = b"".join(self.written) + b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        assert len(self.calls) == 1, self.calls
        return status, fields, body
