"""uvicorn HTTP protocols that add ``http.response.zerocopysend`` and ``pathsend``.

Use them in place of uvicorn's own::

    uvicorn app:app --http zcmiddleware.uvicorn:AutoHTTPProtocol
    uvicorn.run(app, http="zcmiddleware.uvicorn:AutoHTTPProtocol")

On plain-TCP connections the scope advertises both extensions and file bytes
go from the page cache to the socket with ``os.sendfile``; everything else,
including uvicorn's Content-Length and chunked bookkeeping, stays uvicorn's.
Under TLS nothing is advertised and uvicorn behaves exactly as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import h11
import uvicorn
from uvicorn.protocols.http import h11_impl

from zcmiddleware._options import ABORTS_SHORT_FILES, OPENS_BEFORE_START, PATHSEND_RANGE
from zcmiddleware._uvicorn_compat import check_uvicorn
from zcmiddleware._uvicorn_sendfile import (
    EXTENSIONS,
    FileSpan,
    SocketSender,
    file_span,
    holds_start,
    plain_socket,
    send_held,
    transmit_or_abandon,
)

try:
    from uvicorn.protocols.http import httptools_impl
except ImportError:  # httptools is not installed
    _HAS_HTTPTOOLS = False
else:
    _HAS_HTTPTOOLS = True

__all__ = ["AutoHTTPProtocol", "H11Protocol", "HttpToolsProtocol"]

# The internals used here, not the version, decide (docs/uvicorn.md).
check_uvicorn(uvicorn.__version__, h11_impl, httptools_impl if _HAS_HTTPTOOLS else None, h11)

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

_ZEROCOPYSEND, _PATHSEND = EXTENSIONS
_logger = logging.getLogger("uvicorn.error")


class _FileSendingCycle:
    """The part of a request/response cycle that handles the two file messages.

    Mixed in front of uvicorn's ``RequestResponseCycle``: every other message,
    and every file message that arrives out of order, goes to uvicorn's
    ``send`` unchanged, so its error messages and state checks still apply.
    After the file bytes are out, the cycle is completed by handing uvicorn an
    empty ``http.response.body`` with the message's ``more_body``.
    """

    # Provided by uvicorn's RequestResponseCycle / set when adopted.
    scope: Any
    transport: asyncio.Transport
    flow: Any
    disconnected: bool
    response_started: bool
    response_complete: bool
    _zc_sender: SocketSender

    # A start marked OPENS_BEFORE_START, held until its pathsend's file is open.
    _zc_held: Any = None

    async def _uvicorn_send(self, message: ASGISendEvent) -> None:
        await super().send(message)  # type: ignore[misc]

    async def send(self, message: ASGISendEvent) -> None:
        if self._zc_held is not None:
            start, self._zc_held = self._zc_held, None
            if message["type"] == _PATHSEND:
                await send_held(start, message, self._send, _logger)
                return
            await self._send(start)
        elif holds_start(message, self.scope["method"] == "HEAD") and not self.response_started:
            self._zc_held = message
            return
        await self._send(message)

    async def _send(self, message: ASGISendEvent, opened: FileSpan | None = None) -> None:
        kind = message["type"]
        if kind not in EXTENSIONS or not self.response_started or self.response_complete:
            await self._uvicorn_send(message)
            return
        # The same gate as uvicorn's own send.
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return

        fields = cast(Mapping[str, Any], message)
        # pathsend is always the whole file and always the last message.
        more_body = kind == _ZEROCOPYSEND and bool(fields.get("more_body", False))
        if self.scope["method"] != "HEAD":
            async with file_span(fields, opened) as span:
                await transmit_or_abandon(self._transmit(span, more_body), self._abandon)
            if self.disconnected:
                return
        if self.transport.is_closing():
            # Closed under us (a reset seen by the loop) before connection_lost ran:
            # uvloop refuses every write now, uvicorn's empty final body included.
            self.disconnected = True
            return
        await self._uvicorn_send(
            {"type": "http.response.body", "body": b"", "more_body": more_body}
        )

    def _abandon(self) -> None:
        self.disconnected = True
        self.transport.abort()

    async def _transmit(self, span: FileSpan, more_body: bool) -> None:
        raise NotImplementedError


class _SendfileProtocol:
    """What both protocol classes add to uvicorn's: a sender for plain-TCP
    connections, and the hook that turns each new cycle into a file-sending one."""

    _zc_plain_cycle: type[Any]  # uvicorn's own cycle class
    _zc_cycle_class: type[_FileSendingCycle]
    _zc_sender: SocketSender | None = None
    _zc_cycle: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        sock = plain_socket(transport)
        if sock is not None:
            self._zc_sender = SocketSender(transport, sock)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)  # type: ignore[misc]
        if self._zc_sender is not None:
            self._zc_sender.wake()

    # uvicorn assigns ``self.cycle`` right after building each cycle and
    # before its task runs: the one moment to adopt it.
    @property
    def cycle(self) -> Any:
        return self._zc_cycle

    @cycle.setter
    def cycle(self, cycle: Any) -> None:
        if type(cycle) is self._zc_plain_cycle and self._zc_sender is not None:
            _adopt(cycle, self._zc_cycle_class, self._zc_sender)
        self._zc_cycle = cycle


if TYPE_CHECKING or _HAS_HTTPTOOLS:

    class _HttpToolsCycle(_FileSendingCycle, httptools_impl.RequestResponseCycle):
        async def _transmit(self, span: FileSpan, more_body: bool) -> None:
            # Mirrors the body branch of uvicorn's httptools send().
            count = span.count
            if self.chunked_encoding:
                if count:
                    self.transport.write(b"%x\r\n" % count)
                    await self._zc_sender.send(span)
                    self.transport.write(b"\r\n")
                return
            if count > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            if not more_body and count < self.expected_content_length:
                raise RuntimeError("Response content shorter than Content-Length")
            self.expected_content_length -= count
            await self._zc_sender.send(span)

    class HttpToolsProtocol(  # type: ignore[misc]
        _SendfileProtocol, httptools_impl.HttpToolsProtocol
    ):
        """uvicorn's httptools protocol plus zerocopysend and pathsend."""

        _zc_plain_cycle = httptools_impl.RequestResponseCycle
        _zc_cycle_class = _HttpToolsCycle


class _H11Cycle(_FileSendingCycle, h11_impl.RequestResponseCycle):
    async def _transmit(self, span: FileSpan, more_body: bool) -> None:
        if not span.count:
            return
        # h11 frames and counts the span as if it were the bytes (Content-Length
        # overrun raises LocalProtocolError here, as it would for a body) and
        # hands the very same object back among the framing bytes.
        parts: list[object] = list(
            self.conn.send_with_data_passthrough(h11.Data(data=cast(bytes, span))) or ()
        )
        for part in parts:
            if part is span:
                await self._zc_sender.send(span)
            else:
                self.transport.write(cast(bytes, part))

    def _abandon(self) -> None:
        self.conn.send_failed()
        super()._abandon()


class H11Protocol(_SendfileProtocol, h11_impl.H11Protocol):  # type: ignore[misc]
    """uvicorn's h11 protocol plus zerocopysend and pathsend."""

    _zc_plain_cycle = h11_impl.RequestResponseCycle
    _zc_cycle_class = _H11Cycle


def _adopt(cycle: Any, cls: type[_FileSendingCycle], sender: SocketSender) -> None:
    # The cycle's task has been created but has not run yet, so the app will
    # see the extended scope and the extended send from its first step.
    cycle.__class__ = cls
    cycle._zc_sender = sender
    extensions = cycle.scope.setdefault("extensions", {})
    for name in EXTENSIONS:
        extensions[name] = {}
    # sendfile meeting the end of the file early aborts the connection (FileShrankError).
    extensions[_ZEROCOPYSEND][ABORTS_SHORT_FILES] = True
    # A marked start waits for its pathsend's file to be open (_release_held).
    extensions[_PATHSEND][OPENS_BEFORE_START] = True
    extensions[_PATHSEND][PATHSEND_RANGE] = True  # and a range of it


AutoHTTPProtocol: type[asyncio.Protocol] = HttpToolsProtocol if _HAS_HTTPTOOLS else H11Protocol


def __getattr__(name: str) -> Any:
    if name == "UvicornWorker":  # gunicorn -k zcmiddleware.uvicorn.UvicornWorker
        try:
            from zcmiddleware._uvicorn_worker import UvicornWorker
        except ImportError as exc:
            raise ImportError(
                f"zcmiddleware.uvicorn.UvicornWorker needs uvicorn-worker ({exc}): "
                "pip install uvicorn-worker"
            ) from exc
        return UvicornWorker
    if name == "HttpToolsProtocol":
        raise AttributeError(
            "zcmiddleware.uvicorn.HttpToolsProtocol needs httptools, which is not installed; "
            "use H11Protocol or AutoHTTPProtocol"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
