"""gunicorn's native ASGI worker plus ``http.response.zerocopysend`` and ``pathsend``.

Use it in place of ``-k asgi``::

    gunicorn app:app -k zcmiddleware.gunicorn.ASGIWorker

On plain-TCP HTTP/1.x connections the scope advertises both extensions and file
bytes go from the page cache to the socket with ``os.sendfile``; gunicorn keeps
its own framing, Content-Length accounting and keep-alive decisions. Under TLS,
over HTTP/2 and with ``--protocol uwsgi`` nothing is advertised and the worker
is gunicorn's. How it hooks in, and why, is in docs/asgi.md.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from gunicorn.asgi import protocol as _protocol  # type: ignore[import-untyped]
from gunicorn.workers import gasgi  # type: ignore[import-untyped]

from zcmiddleware._options import ABORTS_SHORT_FILES, OPENS_BEFORE_START, PATHSEND_RANGE
from zcmiddleware._uvicorn_sendfile import (
    EXTENSIONS,
    FileSpan,
    SocketSender,
    content_length,
    file_span,
    holds_start,
    plain_socket,
    send_held,
    transmit_or_abandon,
)

__all__ = ["ASGIWorker", "ZeroCopyASGIProtocol"]

_ZEROCOPYSEND, _PATHSEND = EXTENSIONS
_logger = logging.getLogger("gunicorn.error")
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def _missing_internals() -> list[str]:
    """What of gunicorn's ASGI worker this module relies on is not there."""
    missing = []
    cls = _protocol.ASGIProtocol
    for name in ("_build_http_scope", "_send_body", "_safe_write", "connection_lost"):
        if not callable(getattr(cls, name, None)):
            missing.append(f"ASGIProtocol.{name}")
    send_body = getattr(cls, "_send_body", None)
    if callable(send_body) and list(inspect.signature(send_body).parameters) != [
        "self", "body", "chunked", "last", "size"
    ]:  # fmt: skip
        missing.append("ASGIProtocol._send_body(body, chunked, last, size)")
    init_names = set(cls.__init__.__code__.co_names)
    for attribute in ("app", "transport", "_response_buffer", "_is_ssl", "_uses_uwsgi"):
        if attribute not in init_names:
            missing.append(f"ASGIProtocol.{attribute}")
    serve_code = getattr(getattr(gasgi.ASGIWorker, "_serve", None), "__code__", None)
    nested = [c for c in getattr(serve_code, "co_consts", ()) if inspect.iscode(c)]
    if not any("ASGIProtocol" in code.co_names for code in nested):
        missing.append("ASGIWorker._serve building ASGIProtocol(self)")
    return missing


_MISSING = _missing_internals()
if _MISSING:
    raise ImportError(
        f"zcmiddleware.gunicorn cannot extend this gunicorn, which lacks {', '.join(_MISSING)}: "
        'install a tested gunicorn (pip install "gunicorn>=27,<28") or use -k asgi (no zero-copy)'
    )


class _SpanBody(bytes):
    """Stands in for a file span's bytes in gunicorn's ``send``: ``len()`` is the
    span's count, so gunicorn's Content-Length and chunk accounting see the body;
    ``bytes()`` of it is itself, so it reaches ``_send_body`` as it was given."""

    span: FileSpan
    chunked: bool | None = None  # set by _send_body once the framing is written

    def __len__(self) -> int:
        return self.span.count

    def __bytes__(self) -> bytes:
        return self


def _stand_in(span: FileSpan) -> _SpanBody:
    body = _SpanBody()
    body.span = span
    return body


class ZeroCopyASGIProtocol(_protocol.ASGIProtocol):  # type: ignore[misc]
    """gunicorn's ``ASGIProtocol`` whose HTTP/1.x plain-TCP requests may send files."""

    # gunicorn's, set in its __init__
    app: Any
    transport: Any
    _response_buffer: bytes | None
    _is_ssl: bool
    _uses_uwsgi: bool

    def __init__(self, worker: Any) -> None:
        super().__init__(worker)
        self._zc_app = self.app
        self.app = self._zc_call
        self._zc_sender: SocketSender | None = None

    def _build_http_scope(self, request: Any, sockname: Any, peername: Any) -> Any:
        scope = super()._build_http_scope(request, sockname, peername)
        if self._zc_sender is None and not (self._is_ssl or self._uses_uwsgi):
            sock = plain_socket(self.transport)
            if sock is not None:
                self._zc_sender = SocketSender(self.transport, sock)
        if self._zc_sender is not None:
            extensions = scope.setdefault("extensions", {})
            # A marked start waits for its pathsend's file to be open (_FileSender).
            extensions[_PATHSEND] = {OPENS_BEFORE_START: True, PATHSEND_RANGE: True}
            # sendfile meeting the end of the file early aborts the connection.
            extensions[_ZEROCOPYSEND] = {ABORTS_SHORT_FILES: True}
        return scope

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._zc_sender is not None:
            self._zc_sender.wake()

    def _send_body(
        self, body: Any, chunked: bool = False, last: bool = False, size: int | None = None
    ) -> None:
        if type(body) is not _SpanBody:
            super()._send_body(body, chunked, last, size)
            return
        # Headers (and a chunk-size line) go through the transport now; the file
        # bytes follow by sendfile once gunicorn's send returns.
        head = self._response_buffer or b""
        self._response_buffer = None
        if chunked:
            head += b"%x\r\n" % len(body)
        if head:
            self._safe_write(head)
        body.chunked = chunked

    async def _zc_call(self, scope: Any, receive: Any, send: Send) -> None:
        if scope["type"] != "http" or _ZEROCOPYSEND not in scope.get("extensions", {}):
            await self._zc_app(scope, receive, send)
            return
        await self._zc_app(scope, receive, _FileSender(self, scope, send))


class _FileSender:
    """One response's ``send``: file messages become sendfile between gunicorn's
    own body messages; everything else goes to gunicorn's ``send`` unchanged."""

    def __init__(self, protocol: ZeroCopyASGIProtocol, scope: Any, send: Send) -> None:
        self.protocol = protocol
        self.head = scope["method"] == "HEAD"
        self.send = send
        self.remaining: int | None = None  # of the Content-Length
        self.gone = False
        self.held: Message | None = None  # a start marked OPENS_BEFORE_START

    async def __call__(self, message: Message) -> None:
        if self.gone:
            return
        if self.held is not None:
            start, self.held = self.held, None
            if message["type"] == _PATHSEND:
                await send_held(start, message, self._send, _logger)
                return
            await self._send(start)
        elif holds_start(message, self.head):
            self.held = message  # its pathsend's file is opened before it goes out
            return
        await self._send(message)

    async def _send(self, message: Message, opened: FileSpan | None = None) -> None:
        kind = message["type"]
        if self.gone:
            return
        if kind == "http.response.start":
            self.remaining = content_length(message.get("headers", ()))
        elif kind == "http.response.body" and self.remaining is not None:
            self.remaining -= len(message.get("body", b""))
        if kind not in EXTENSIONS:
            await self.send(message)
            return
        fields: Mapping[str, Any] = message
        # pathsend is always the whole file and always the last message.
        more_body = kind == _ZEROCOPYSEND and bool(fields.get("more_body", False))
        if not self.head:
            async with file_span(fields, opened) as span:
                await self._transmit(span)
            if self.gone:
                return
        await self.send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def _transmit(self, span: FileSpan) -> None:
        if not span.count:
            return
        if self.remaining is not None:
            if span.count > self.remaining:
                raise RuntimeError("Response content longer than Content-Length")
            self.remaining -= span.count
        body = _stand_in(span)
        await self.send({"type": "http.response.body", "body": body, "more_body": True})
        if body.chunked is None:  # gunicorn wrote nothing: closed, or a bodiless status
            return
        protocol = self.protocol
        assert protocol._zc_sender is not None
        await transmit_or_abandon(protocol._zc_sender.send(span), self._abandon)
        if body.chunked and not self.gone:
            protocol._safe_write(b"\r\n")

    def _abandon(self) -> None:
        self.gone = True
        self.protocol.transport.abort()


def _serving_with(protocol: type[Any]) -> Callable[..., Any]:
    # gunicorn's worker builds each connection's protocol by the module-global
    # name ``ASGIProtocol`` inside ``_serve``: run gunicorn's own ``_serve`` with
    # that one name bound to ours, rather than a copy of it or a global patch.
    serve = gasgi.ASGIWorker._serve
    rebound = types.FunctionType(
        serve.__code__,
        {**serve.__globals__, "ASGIProtocol": protocol},
        serve.__name__,
        serve.__defaults__,
        serve.__closure__,
    )
    rebound.__qualname__ = serve.__qualname__
    rebound.__doc__ = serve.__doc__
    return rebound


class ASGIWorker(gasgi.ASGIWorker):  # type: ignore[misc]
    """gunicorn's ``-k asgi`` worker serving with ``ZeroCopyASGIProtocol``."""

    _serve = _serving_with(ZeroCopyASGIProtocol)
