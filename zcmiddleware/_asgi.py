"""ASGI adapter: put an app's file responses on the server's zero-copy path.

The middleware sits between the server and the app. It offers the app
``http.response.pathsend`` (in a copy of the scope), so a framework's file response
arrives as ``http.response.start`` + ``http.response.pathsend``. It then opens the file
itself (once, off the event loop), asks the planning core (:mod:`._http`) what to
answer -- 200, 206, multipart, 304, 412, 416 -- and delivers the body by the best path
the *server* offers:

* ``http.response.zerocopysend``: every body, ranges and multipart included;
* ``http.response.pathsend``: whole-file bodies; ranges go by the fallback;
* otherwise the fallback: ``pread`` in a worker thread, one chunk in memory at a time.

Everything that is not a file response passes through untouched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, BinaryIO, Literal, TypeVar

import anyio
import anyio.to_thread

from ._daphne import paced
from ._files import (
    ABORTS_SHORT_FILES,
    DEFAULT_CHUNK_SIZE,
    SendfileRootError,
    check_size,
    open_file,
    read_exactly,
    resolve_in_roots,
)
from ._http import FileFacts, FileSlice, Plan, Segment, header_map, plan_response

__all__ = ["ZeroCopyMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How the body of a file response went out. ``none``: there was no body to send
#: (HEAD, 304, 412, 416, an empty file).
Delivery = Literal["zerocopysend", "pathsend", "fallback", "none"]

PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"

logger = logging.getLogger("zcmiddleware.asgi")

# The middleware answers these itself for file responses. Hidden from the app on GET
# and HEAD so that the framework sends the whole file by path instead of its own 206
# (Starlette turns pathsend off for any Range) or its own 304 (StaticFiles answers
# If-None-Match itself, without Last-Modified and before If-Match is looked at,
# RFC 9110 §13.2.2).
_HIDDEN_REQUEST_HEADERS = frozenset(
    {
        b"range",
        b"if-range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
    }
)


class _Disconnected(Exception):
    """The server's ``send`` failed: the client is gone. Ends the response quietly."""


class ZeroCopyMiddleware:
    """Serve the app's file responses -- Range requests included -- zero-copy.

    ```python
    app.add_middleware(ZeroCopyMiddleware)  # Starlette, FastAPI
    app = ZeroCopyMiddleware(app)  # any ASGI app
    ```

    Add it outermost (outside GZip and ``BaseHTTPMiddleware``), so that it is the
    layer that talks to the server.

    Options:

    * ``handle_ranges`` -- answer Range and conditional requests (``If-Match``,
      ``If-None-Match``, ``If-Modified-Since``, ``If-Unmodified-Since``, ``If-Range``)
      for file responses. On GET and HEAD those request headers are hidden from the
      app and HEAD reaches the app as GET, so the app always produces the plain
      whole-file response that the middleware then answers from. Turn it off for apps
      that answer such requests themselves.
    * ``exclude_paths`` -- path prefixes (``scope["path"]``) left to the app as if
      ``handle_ranges`` were off; their file responses still go zero-copy.
    * ``sendfile_header`` -- opt-in X-Sendfile style: a response carrying this header
      (e.g. ``"X-Sendfile"``) is served from the file it names. The header never
      reaches the client.
    * ``sendfile_roots`` -- directories a ``sendfile_header`` path must lie in, with
      symlinks resolved; required with ``sendfile_header``. A path outside them is
      refused with a 500 and an error log line; the answer names no path.
    * ``chunk_size`` -- bytes per read on the fallback path (see ``docs/asgi.md``).
    * ``debug_header`` -- if set (e.g. ``"X-ZeroCopy-Path"``), file responses carry
      this header naming the path that sent the body: ``zerocopysend``, ``pathsend``,
      ``fallback`` or ``none``. The same is always logged at DEBUG level on the
      ``zcmiddleware.asgi`` logger.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        handle_ranges: bool = True,
        exclude_paths: Sequence[str] = (),
        sendfile_header: str | None = None,
        sendfile_roots: Sequence[str | os.PathLike[str]] = (),
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        debug_header: str | None = None,
    ) -> None:
        if sendfile_header is not None and not sendfile_roots:
            raise ValueError("sendfile_header needs at least one directory in sendfile_roots")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, not {chunk_size!r}")
        self.app = app
        self.handle_ranges = handle_ranges
        self.exclude_paths = tuple(exclude_paths)
        self.sendfile_header_name = sendfile_header or ""
        self.sendfile_header = (
            sendfile_header.lower().encode("latin-1") if sendfile_header else None
        )
        self.sendfile_roots = tuple(sendfile_roots)
        self.chunk_size = chunk_size
        self.debug_header = debug_header.lower().encode("latin-1") if debug_header else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server_extensions = scope.get("extensions") or {}
        handles = self.handle_ranges and not scope["path"].startswith(self.exclude_paths)
        app_scope = dict(scope)
        # Never zerocopysend: GZipMiddleware drops it and BaseHTTPMiddleware asserts on
        # it. pathsend passes through both, and names the file for us.
        app_scope["extensions"] = {
            **{k: v for k, v in server_extensions.items() if k != ZEROCOPYSEND},
            PATHSEND: {},
        }
        if handles and scope["method"] in ("GET", "HEAD"):
            app_scope["headers"] = [
                (name, value)
                for name, value in scope["headers"]
                if name.lower() not in _HIDDEN_REQUEST_HEADERS
            ]
            # HEAD answers with the status and headers GET would have (RFC 9110 §9.3.2);
            # asking the app for GET makes a framework's file response arrive as
            # pathsend (Starlette's FileResponse names no path for HEAD). The body of
            # anything else is dropped on the way out.
            app_scope["method"] = "GET"
        # daphne's send returns before the body is written: pace it by its transport.
        responder = _Responder(self, scope, receive, paced(send), handles, server_extensions)
        await self.app(app_scope, receive, responder.send)
        await responder.finish()


class _Responder:
    """One response: holds ``http.response.start`` until the next message says whether
    this is a file response, then either delivers the file or passes everything on."""

    def __init__(
        self,
        middleware: ZeroCopyMiddleware,
        scope: Scope,
        receive: Receive,
        send: Send,
        handles: bool,
        server_extensions: MutableMapping[str, Any],
    ) -> None:
        self.mw = middleware
        self.scope = scope
        self.receive = receive
        self.server_send = send
        self.handles = handles
        self.server_extensions = server_extensions
        self.method: str = scope["method"]
        self.start: Message | None = None
        self.sendfile_path: bytes | None = None
        # idle -> held -> streaming (not a file) | done (file sent)
        # idle -> sendfile (X-Sendfile header seen) -> done | streaming
        self.state: Literal["idle", "held", "sendfile", "streaming", "done"] = "idle"

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.state == "streaming":
            await self.server_send(self._strip_head_body(message))
        elif kind == "http.response.start" and self.state == "idle":
            self.start = message
            self.state = "held"
            if self.mw.sendfile_header is not None:
                self.sendfile_path = _find_header(message, self.mw.sendfile_header)
                if self.sendfile_path is not None:
                    self.state = "sendfile"
                    # Whatever happens next, the path never reaches the client.
                    self.start = _without_header(message, self.mw.sendfile_header)
        elif self.state == "held" and kind == PATHSEND:
            self.state = "done"
            await self._deliver_app_path(message["path"])
        elif self.state == "sendfile" and kind in ("http.response.body", PATHSEND):
            # The app's body of an X-Sendfile response is discarded; the file is sent
            # once the app has finished its body.
            if kind == PATHSEND or not message.get("more_body", False):
                self.state = "done"
                assert self.sendfile_path is not None
                await self._deliver_sendfile_header(self.sendfile_path)
        elif self.state == "done" and kind == "http.response.body":
            pass  # the rest of an X-Sendfile response's own body
        elif self.state in ("held", "sendfile"):
            # Not a file response: release the start and pass everything on unbuffered.
            assert self.start is not None
            self.state = "streaming"
            await self.server_send(self.start)
            await self.server_send(self._strip_head_body(message))
        else:
            # Before the start (early hints) or after a file (trailers): not ours.
            await self.server_send(message)

    async def finish(self) -> None:
        """The app returned: a start still held (no message followed it) goes out now,
        or, for an X-Sendfile response without a body, the file."""
        if self.state == "sendfile" and self.sendfile_path is not None:
            self.state = "done"
            await self._deliver_sendfile_header(self.sendfile_path)
        elif self.state == "held" and self.start is not None:
            self.state = "streaming"
            await self.server_send(self.start)

    def _strip_head_body(self, message: Message) -> Message:
        # The app was asked for GET on behalf of a HEAD request: its body is not sent.
        if (
            self.method == "HEAD"
            and message["type"] == "http.response.body"
            and message.get("body")
        ):
            return {**message, "body": b""}
        return message

    # ---------------------------------------------------------------- file responses

    async def _deliver_app_path(self, path: str) -> None:
        # The app named the file: a failure to open it is the app's error to hear about
        # (the response has not started, so the server answers 500).
        file, facts = await _off_loop(open_file, path)
        try:
            await self._deliver(file, facts, path)
        finally:
            file.close()

    async def _deliver_sendfile_header(self, raw_path: bytes) -> None:
        path = os.fsdecode(raw_path)
        try:
            real, (file, facts) = await _off_loop(_open_in_roots, path, self.mw)
        except SendfileRootError:
            logger.error("%s header refused: %r is outside sendfile_roots", _name(self.mw), path)
            await self._send_error(500)
            return
        except FileNotFoundError:
            logger.error("%s header names a missing file: %r", _name(self.mw), path)
            await self._send_error(404)
            return
        except OSError as exc:
            logger.error("%s header: cannot serve %r: %s", _name(self.mw), path, exc)
            await self._send_error(500)
            return
        try:
            await self._deliver(file, facts, real)
        finally:
            file.close()

    async def _send_error(self, status: int) -> None:
        body = b"Not Found" if status == 404 else b"Internal Server Error"
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        headers.append((b"content-length", str(len(body)).encode()))
        try:
            await self._send_to_server(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await self._send_to_server({"type": "http.response.body", "body": body})
        except _Disconnected:
            pass

    async def _deliver(self, file: BinaryIO, facts: FileFacts, path: str) -> None:
        assert self.start is not None
        start = self.start
        app_headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in start.get("headers", ())
            if name.lower() not in (self.mw.sendfile_header, self.mw.debug_header)
        ]
        plan = plan_response(
            self.method, self._request_headers(), start.get("status", 200), facts, app_headers
        )
        delivery = self._choose(plan, facts)
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in plan.apply(app_headers)
        ]
        if self.mw.debug_header is not None:
            headers.append((self.mw.debug_header, delivery.encode("ascii")))
        logger.debug(
            "%s %s -> %d %s, %d body bytes via %s",
            self.method,
            self.scope.get("path", ""),
            plan.status,
            plan.kind,
            plan.body_length,
            delivery,
        )
        try:
            await self._send_to_server({**start, "status": plan.status, "headers": headers})
            if delivery == "none":
                await self._send_to_server({"type": "http.response.body", "body": b""})
            elif delivery == "pathsend":
                await self._send_to_server({"type": PATHSEND, "path": path})
            else:
                await self._send_body(file, plan.segments, delivery)
        except _Disconnected:
            logger.debug("client disconnected during %s %s", self.method, self.scope.get("path"))

    def _request_headers(self) -> dict[str, str]:
        # Decoded only for a file response, the one place they are read. Without
        # handling, the app saw Range and the validators and chose to send the whole
        # file: the planner is given no request headers to act on.
        if not self.handles:
            return {}
        return header_map(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in self.scope["headers"]
        )

    def _choose(self, plan: Plan, facts: FileFacts) -> Delivery:
        if not plan.segments:
            return "none"
        if ZEROCOPYSEND in self.server_extensions:
            return "zerocopysend"
        # pathsend can only send a whole file: any range, and multipart framing, can't.
        if PATHSEND in self.server_extensions and plan.segments == (FileSlice(0, facts.size),):
            return "pathsend"
        return "fallback"

    async def _send_body(
        self, file: BinaryIO, segments: Sequence[Segment], delivery: Delivery
    ) -> None:
        if delivery == "zerocopysend":
            # A few messages, no reads in Python: after a disconnect the server drops
            # them (or raises), so there is nothing to stop early.
            await self._send_zerocopy(file, segments)
            return
        send_body = self._send_fallback
        if _spec_version(self.scope) >= (2, 4):
            # Servers of spec 2.4+ raise OSError from send once the client is gone.
            await send_body(file, segments)
            return
        # Older servers may go on accepting (and dropping) the body after a disconnect,
        # so the file would be read to the end for nobody: listen for http.disconnect,
        # as Starlette's FileResponse does. The app is inside our send, not receiving.
        # Only the fallback needs this: its reads are what a watcher saves.
        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_disconnect, tg.cancel_scope)
            try:
                await send_body(file, segments)
            except Exception as exc:  # re-raised below, outside the task group's wrapping
                error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _watch_disconnect(self, scope: anyio.CancelScope) -> None:
        try:
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except Exception:
            return  # a server that cannot be listened to: rely on send failing instead
        logger.debug("client disconnected during %s %s", self.method, self.scope.get("path"))
        scope.cancel()

    async def _send_zerocopy(self, file: BinaryIO, segments: Sequence[Segment]) -> None:
        extension = self.server_extensions.get(ZEROCOPYSEND)
        server_checks = isinstance(extension, Mapping) and extension.get(ABORTS_SHORT_FILES) is True
        for i, segment in enumerate(segments):
            if isinstance(segment, bytes):
                # Literal bytes (multipart framing) are never short: the closing
                # delimiter, sent after every slice was checked, ends the body.
                last = i == len(segments) - 1
                await self._send_to_server(
                    {"type": "http.response.body", "body": segment, "more_body": not last}
                )
                if last:
                    return
                continue
            # Always both offset and count: an omitted offset means the descriptor's
            # current position, which pread-based code never moves.
            await self._send_to_server(
                {
                    "type": ZEROCOPYSEND,
                    "file": file,
                    "offset": segment.offset,
                    "count": segment.count,
                    "more_body": True,
                }
            )
            # sendfile(2) stops short at end of file and the server may not notice: a
            # file that shrank would complete the response short. Check before the
            # final message, and abort instead (HTTP.md "The file itself") -- unless
            # the server says it aborts such a response itself.
            if server_checks:
                continue
            await _off_loop(check_size, file.fileno(), segment.offset + segment.count)
        await self._send_to_server({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_fallback(self, file: BinaryIO, segments: Sequence[Segment]) -> None:
        fd = file.fileno()
        pieces = _pieces(segments, self.mw.chunk_size)
        piece = next(pieces, None)
        while piece is not None:
            # One piece in memory at a time; awaiting the server's send between reads
            # is the backpressure.
            if isinstance(piece, FileSlice):
                data = await _off_loop(_read_piece, fd, piece)
            else:
                data = piece
            piece = next(pieces, None)
            await self._send_to_server(
                {"type": "http.response.body", "body": data, "more_body": piece is not None}
            )

    async def _send_to_server(self, message: Message) -> None:
        try:
            await self.server_send(message)
        except OSError as exc:  # ASGI 2.4: OSError (uvicorn's ClientDisconnected is one)
            raise _Disconnected from exc


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


def _read_piece(fd: int, piece: FileSlice) -> bytes:
    return read_exactly(fd, piece.offset, piece.count)


_T = TypeVar("_T")


async def _off_loop(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a worker thread; the event loop never blocks on it.

    On asyncio the loop's own executor carries it: measured on this project's 2-core
    machine, an ``anyio.to_thread`` round trip costs about 45 us more than
    ``run_in_executor`` under load (docs/asgi.md), a large part of a small file's
    response. Elsewhere (trio) anyio's worker threads. Either way the wait is shielded
    from cancellation, as ``anyio.to_thread.run_sync`` is: a cancelled request still
    waits for the thread, so no descriptor is closed under a running ``pread``, and
    a file the thread opened comes back to the caller, who closes it.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(fn, *args)
    with anyio.CancelScope(shield=True):
        result = await loop.run_in_executor(None, functools.partial(fn, *args))
    return result


def _open_in_roots(path: str, mw: ZeroCopyMiddleware) -> tuple[str, tuple[BinaryIO, FileFacts]]:
    real = resolve_in_roots(path, mw.sendfile_roots)
    file, facts = open_file(real)
    # A directory on the resolved path could be swapped for a symlink between the check
    # and the open: check again what was actually opened (Linux names it in /proc).
    try:
        opened = os.readlink(f"/proc/self/fd/{file.fileno()}")
    except OSError:
        return real, (file, facts)  # no /proc: the check above is what we have
    try:
        resolve_in_roots(opened, mw.sendfile_roots)
    except BaseException:
        file.close()
        raise
    return real, (file, facts)


def _find_header(message: Message, name: bytes) -> bytes | None:
    for key, value in message.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _without_header(message: Message, name: bytes) -> Message:
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != name]
    return {**message, "headers": headers}


def _name(mw: ZeroCopyMiddleware) -> str:
    return mw.sendfile_header_name


def _spec_version(scope: Scope) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in scope.get("asgi", {}).get("spec_version", "2.0").split("."))
    except (TypeError, ValueError, AttributeError):
        return (2, 0)
