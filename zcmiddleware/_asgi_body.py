"""The ASGI body senders: how a planned file body reaches the server.

``send`` below is always the responder's own ``to_server``: it raises
:class:`._errors.ClientGone` once the server says the client is gone.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any, BinaryIO

import anyio
import anyio.lowlevel

from ._aio import off_loop
from ._errors import ClientGone
from ._files import check_size, read_exactly
from ._http import FileSlice, Segment
from ._options import ZEROCOPYSEND

__all__ = ["send_fallback", "send_zerocopy"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]


async def send_zerocopy(
    send: Send, file: BinaryIO, segments: Sequence[Segment], server_checks: bool
) -> None:
    """One ``zerocopysend`` per file slice, multipart framing as body messages.

    No disconnect listener: a few messages and no reads in Python, so after a
    disconnect there is nothing to stop early (the server drops them or raises).
    """
    fd = file.fileno()
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if isinstance(segment, bytes):
            # Literal bytes (multipart framing) are never short: the closing delimiter,
            # sent after every slice was checked, ends the body.
            await send({"type": "http.response.body", "body": segment, "more_body": i < last})
            if i == last:
                return
            continue
        # Always both offset and count: an omitted offset means the descriptor's
        # current position, which pread-based code never moves.
        await send(
            {
                "type": ZEROCOPYSEND,
                "file": file,
                "offset": segment.offset,
                "count": segment.count,
                "more_body": True,
            }
        )
        # sendfile(2) stops short at end of file and a server may not notice: a file
        # that shrank would complete the response short. Check before the final
        # message, and abort instead -- unless the server aborts such a response itself.
        if not server_checks:
            await off_loop(check_size, fd, segment.offset + segment.count)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_fallback(
    send: Send, receive: Receive, fd: int, segments: Sequence[Segment], chunk_size: int
) -> None:
    """The body as body messages of at most ``chunk_size`` bytes, each read by position
    off the loop: one chunk in memory, awaiting the server's send as backpressure.

    A body of several chunks listens for ``http.disconnect`` meanwhile and stops
    reading once the client is gone: a server's send may go on returning at once
    after a disconnect, and the shielded reads alone would never meet a cancellation.
    """
    pieces = list(_pieces(segments, chunk_size))
    if len(pieces) <= 1:
        await _send_pieces(send, fd, pieces, None)
        return
    gone = anyio.Event()
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_disconnect, receive, gone)
        try:
            await _send_pieces(send, fd, pieces, gone)
        except Exception as exc:  # re-raised below, outside the task group's wrapping
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error


async def _send_pieces(
    send: Send, fd: int, pieces: Sequence[Segment], gone: anyio.Event | None
) -> None:
    last = len(pieces) - 1
    for i, piece in enumerate(pieces):
        data = piece if isinstance(piece, bytes) else await off_loop(_read, fd, piece)
        if gone is not None:
            # An unshielded checkpoint per chunk: a cancelled request stops here, and
            # the watcher gets its turn even when the server's send never suspends.
            await anyio.lowlevel.checkpoint()
            if gone.is_set():
                raise ClientGone("http.disconnect during the body")
        await send({"type": "http.response.body", "body": data, "more_body": i < last})
    if not pieces:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _watch_disconnect(receive: Receive, gone: anyio.Event) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:
        return  # a server that cannot be listened to: rely on send failing instead
    gone.set()


def _pieces(segments: Sequence[Segment], chunk_size: int) -> Iterator[Segment]:
    """The segments, with file slices cut into at most ``chunk_size`` bytes each."""
    for segment in segments:
        if isinstance(segment, bytes):
            yield segment
            continue
        offset, end = segment.offset, segment.offset + segment.count
        while offset < end:
            count = min(chunk_size, end - offset)
            yield FileSlice(offset, count)
            offset += count


def _read(fd: int, piece: FileSlice) -> bytes:
    return read_exactly(fd, piece.offset, piece.count)


def fdopen(fd: int) -> BinaryIO:
    """A file object over ``fd`` that does not own it (anycorn wants a file object)."""
    return os.fdopen(fd, "rb", buffering=0, closefd=False)
