"""Carry file bytes to the socket under an asyncio transport with ``os.sendfile``.

Server-integration room: this module knows about sockets, file descriptors and
event loops, but nothing about uvicorn. ``zcmiddleware.uvicorn`` wires it into
uvicorn's request/response cycles.

Why it looks the way it does:

* The transport may still hold bytes it has not written (uvicorn writes the
  status line and headers through it; uvloop even defers small writes to the
  end of the loop iteration). Those must reach the socket first, so we wait
  until ``transport.get_write_buffer_size() == 0`` before each sendfile.
* ``loop.add_writer`` refuses the transport's own fd on both asyncio and
  uvloop, so writability is awaited on an ``os.dup`` of it. The dup is also
  the fd we send on: it keeps the socket alive even if the transport closes
  its own fd meanwhile, so a recycled fd number can never receive our bytes.
* The sendfile path never reads the file into Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from zcmiddleware._aio import off_loop
from zcmiddleware._errors import ClientGone, FileChangedError, FileShrankError
from zcmiddleware._files import open_fd
from zcmiddleware._options import OPENS_BEFORE_START, PATHSEND_RANGE, error_answer

__all__ = [
    "EXTENSIONS",
    "FileSpan",
    "SocketSender",
    "content_length",
    "file_span",
    "holds_start",
    "send_held",
    "transmit_or_abandon",
    "open_path",
    "pathsend_range",
    "plain_socket",
    "span_from_zerocopysend",
]

# The scope extensions advertised; fresh empty dicts per scope, as the spec shows.
EXTENSIONS = ("http.response.zerocopysend", "http.response.pathsend")

# Upper bound of one sendfile(2) call. Between calls the loop gets a turn, so
# one fast download on a fast link cannot monopolise the loop thread, and a
# cold-cache read blocks the thread for at most this many bytes of disk reads
# (see docs/uvicorn.md for the measurements behind the number).
MAX_CHUNK = 1 << 20


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


@dataclass(frozen=True)
class FileSpan:
    """``count`` bytes of the file open as ``fd``, from ``offset``.

    ``owned`` says the fd was opened by us (pathsend) and must be closed by us;
    a zerocopysend fd belongs to the application. ``advance`` says the file
    position must be moved past the span afterwards (no explicit offset was
    given, so the send behaves like sendfile(2) with a NULL offset).
    """

    fd: int
    offset: int
    count: int
    owned: bool = False
    advance: Any = None  # the app's file object (or fd) whose position to advance

    def __len__(self) -> int:
        # h11's writers only ever call len() on Data.data and hand it back
        # unchanged in send_with_data_passthrough, so a span can stand in for
        # the bytes while h11 does the Content-Length / chunk accounting.
        return self.count


def plain_socket(transport: asyncio.BaseTransport) -> _HasFileno | None:
    """The transport's socket when raw writes on it are safe, else ``None``.

    Under TLS ``get_extra_info("socket")`` is still the raw TCP socket: writing
    to it would put plaintext on an encrypted connection, so TLS gets nothing.
    """
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(sock, "fileno"):
        return None
    return sock  # type: ignore[no-any-return]


def _fileno(file: Any) -> int:
    if isinstance(file, int):
        return file
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise TypeError(f"zerocopysend 'file' must have fileno(), got {type(file).__name__}")
    fd = fileno()
    if not isinstance(fd, int):
        raise TypeError(f"fileno() returned {fd!r}, expected an int")
    return fd


def _position(file: Any, fd: int) -> int:
    # A buffered file object knows its logical position better than the OS does.
    tell = getattr(file, "tell", None)
    if tell is not None:
        return int(tell())
    return os.lseek(fd, 0, os.SEEK_CUR)


def advance_position(span: FileSpan) -> None:
    """Move the app's file position past ``span`` (the NULL-offset sendfile behaviour)."""
    file = span.advance
    if file is None:
        return
    end = span.offset + span.count
    seek = getattr(file, "seek", None)
    if seek is not None:
        seek(end)
    else:
        os.lseek(span.fd, end, os.SEEK_SET)


def span_from_zerocopysend(message: Any) -> FileSpan:
    """Turn an ``http.response.zerocopysend`` message into a span.

    ``offset`` absent means the file's current position; ``count`` absent
    means up to the end of the file as it is now (``fstat``).
    """
    file = message["file"]
    fd = _fileno(file)
    offset = message.get("offset")
    count = message.get("count")
    advance = None
    if offset is None:
        offset = _position(file, fd)
        advance = file
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"zerocopysend 'offset' must be a non-negative int, got {offset!r}")
    if count is None:
        count = max(0, os.fstat(fd).st_size - offset)
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"zerocopysend 'count' must be a non-negative int, got {count!r}")
    return FileSpan(fd=fd, offset=offset, count=count, advance=advance)


def _open_span(path: str, wanted: tuple[int, int, int] | None) -> FileSpan:
    # The one open-and-fstat of the project: a FIFO is refused, never waited on.
    fd, facts = open_fd(path)
    if wanted is None:
        return FileSpan(fd=fd, offset=0, count=facts.size, owned=True)
    offset, count, size = wanted
    if facts.size != size:
        os.close(fd)
        raise FileChangedError(
            f"{facts.size} bytes, not the {size} the range was planned for: it changed "
            "since the app looked at it"
        )
    return FileSpan(fd=fd, offset=offset, count=count, owned=True)


def pathsend_range(message: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """The ``(offset, count, size)`` of a pathsend's :data:`PATHSEND_RANGE`, checked
    (``ValueError`` if it is not three ints that fit the size), or None: the whole file."""
    wanted = message.get(PATHSEND_RANGE)
    if wanted is None:
        return None
    try:
        offset, count, size = wanted
    except (TypeError, ValueError):
        raise ValueError(f"pathsend {PATHSEND_RANGE!r} must be (offset, count, size)") from None
    if not all(type(n) is int for n in (offset, count, size)) or not (
        offset >= 0 and count >= 0 and offset + count <= size
    ):
        raise ValueError(
            f"pathsend {PATHSEND_RANGE!r} must be ints with 0 <= offset, 0 <= count and "
            f"offset + count <= size, got {wanted!r}"
        )
    return offset, count, size


async def open_path(path: Any, wanted: tuple[int, int, int] | None = None) -> FileSpan:
    """Open ``path`` for an ``http.response.pathsend``, off the loop thread: the whole
    file, or ``wanted`` (:func:`pathsend_range`) of it when the file has its size
    (else :class:`FileChangedError`).

    The span owns its fd; the caller closes it. If we are cancelled while the
    worker thread is still opening, the fd is closed when the thread finishes.
    """
    if not isinstance(path, str):
        path = os.fsdecode(path)
    return await off_loop(_open_span, path, wanted, orphan=_close_span)


def content_length(headers: Any) -> int | None:
    """The Content-Length among ASGI response headers, or None (absent, not digits)."""
    for name, value in headers:
        if bytes(name).lower() == b"content-length":
            return int(value) if bytes(value).isdigit() else None
    return None


def holds_start(message: Mapping[str, Any], head: bool) -> bool:
    """Whether ``message`` is a start to hold until its pathsend's file is open: marked
    ``OPENS_BEFORE_START`` by the app, on a request that is not HEAD (no file follows)."""
    return (
        message["type"] == "http.response.start"
        and message.get(OPENS_BEFORE_START) is True
        and not head
    )


SendOpened = Callable[[Any, "FileSpan | None"], Awaitable[None]]


async def send_held(
    start: Mapping[str, Any], message: Mapping[str, Any], send: SendOpened, log: logging.Logger
) -> None:
    """A held start (:func:`holds_start`) and the pathsend after it. The file is opened
    first; then ``send(start, None)`` and ``send(message, span)``, the span closed here
    afterwards. When the file cannot be sent as the start announces -- it cannot be
    opened, is not a regular file, or its size is not the start's Content-Length (it
    changed since the app looked at it) -- a whole 500 goes out with ``send`` in the
    start's place, and the path and the reason to ``log``."""
    path = message["path"]
    wanted = pathsend_range(message)
    try:
        span = await open_path(path, wanted)
    except OSError as exc:
        log.error("pathsend: cannot serve %r: %s", path, exc)
        await _send_500(send)
        return
    try:
        promised = content_length(start.get("headers", ()))
        if promised is not None and promised != span.count:
            log.error(
                "pathsend: %r is %d bytes, not the %d its Content-Length says: it changed "
                "since the app looked at it", path, span.count, promised,
            )  # fmt: skip
            await _send_500(send)
            return
        await send(start, None)
        await send(message, span)
    finally:
        os.close(span.fd)


async def _send_500(send: SendOpened) -> None:
    status, headers, body = error_answer(500)
    raw = [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw}, None)
    await send({"type": "http.response.body", "body": body}, None)


def _close_span(span: FileSpan) -> None:
    os.close(span.fd)


@contextlib.asynccontextmanager
async def file_span(
    message: Mapping[str, Any], opened: FileSpan | None = None
) -> AsyncIterator[FileSpan]:
    """The span a zerocopysend or pathsend message names (``opened``: a pathsend's,
    opened already, and closed by whoever opened it). Afterwards a file opened here
    is closed and, once sent, the app's file position is moved past it."""
    if opened is not None:
        yield opened
        return
    if message["type"] == EXTENSIONS[1]:
        span = await open_path(message["path"], pathsend_range(message))
    else:
        span = span_from_zerocopysend(message)
    try:
        yield span
    finally:
        if span.owned:
            os.close(span.fd)
    advance_position(span)


async def transmit_or_abandon(transmit: Awaitable[None], abandon: Callable[[], None]) -> None:
    """Await a span's transmission; whatever goes wrong, ``abandon`` the connection.

    The client gone is no error (later sends are no-ops, as servers do after a
    disconnect). A file that ended early is: the framing promised bytes it no
    longer has, so finishing the response would desynchronise the client.
    """
    try:
        await transmit
    except ClientGone:
        abandon()
    except FileShrankError as exc:
        abandon()
        raise RuntimeError(f"Response aborted: {exc}") from None
    except OSError:
        abandon()
        raise


class SocketSender:
    """Sends file spans on one connection's socket, bypassing its transport.

    One instance per connection; at most one ``send`` runs at a time (one
    response is in flight per HTTP/1.1 connection). ``wake()`` is for the
    protocol's ``connection_lost``: it releases a pending writability wait.
    """

    def __init__(self, transport: asyncio.WriteTransport, sock: _HasFileno) -> None:
        self._transport = transport
        self._sock = sock
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, span: FileSpan) -> None:
        """Send the whole span, or raise ``ClientGone`` / ``FileShrankError``.

        Any other ``OSError`` comes from the file side (EIO, a file that
        sendfile(2) cannot read, ...) and propagates unchanged.
        """
        if span.count == 0:
            return
        transport = self._transport
        if transport.is_closing():
            raise ClientGone
        sock_fd = self._sock.fileno()
        if sock_fd < 0:
            raise ClientGone
        loop = asyncio.get_running_loop()
        out = os.dup(sock_fd)
        try:
            await self._drain_transport(loop, out)
            offset, remaining = span.offset, span.count
            while remaining:
                if transport.is_closing():
                    raise ClientGone
                try:
                    # Looked up at call time on purpose: tests count the bytes
                    # that go through it.
                    sent = os.sendfile(out, span.fd, offset, min(remaining, MAX_CHUNK))
                except BlockingIOError:
                    await self._writable(loop, out)
                    continue
                except (BrokenPipeError, ConnectionError) as exc:
                    raise ClientGone from exc
                if sent == 0:
                    raise FileShrankError(
                        f"file ended {remaining} bytes before the {span.count} promised"
                    )
                offset += sent
                remaining -= sent
                if remaining:
                    # Give other connections on this loop a turn between chunks.
                    await asyncio.sleep(0)
        finally:
            os.close(out)

    async def _drain_transport(self, loop: asyncio.AbstractEventLoop, out: int) -> None:
        # Headers (and chunk-size lines) written through the transport must be
        # on the wire before the file bytes. uvloop flushes small writes at the
        # end of the loop iteration, so one turn of the loop usually suffices;
        # otherwise the socket is full and we wait until it takes more.
        transport = self._transport
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise ClientGone
            await asyncio.sleep(0)
            if transport.get_write_buffer_size() and not transport.is_closing():
                await self._writable(loop, out)

    async def _writable(self, loop: asyncio.AbstractEventLoop, out: int) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        loop.add_writer(out, _resolve, waiter)
        try:
            await waiter
        finally:
            loop.remove_writer(out)
            self._waiter = None
        if self._transport.is_closing():
            raise ClientGone


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
