"""ASGI adapter: put an app's file responses on the server's zero-copy path.

The middleware sits between the server and the app. It offers the app
``http.response.pathsend`` (in a copy of the scope, unless the server's offers it
already and there is nothing to hide: :class:`_PlainGet`), so a framework's file response
arrives as ``http.response.start`` + ``http.response.pathsend``. It then opens the file
itself (once, off the event loop), asks :func:`._serve.answer_file` what to answer,
and delivers the body by the best path the server offers (:mod:`._asgi_body`).
Everything that is not a file response passes through untouched.

What the app sees (docs/asgi.md, "What changes in your app"): on GET and HEAD the
request's ``Range`` and ``If-Range`` are hidden, so that a framework hands over the
whole file, and HEAD reaches the app as GET (Starlette names no file for HEAD); the
conditional fields stay, so the app's own 304s and 412s still happen.
"""

from __future__ import annotations

import copy
import enum
import functools
import logging
import operator
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, NamedTuple

import anyio
import anyio.lowlevel

from ._aio import off_loop
from ._asgi_body import fdopen, send_fallback, send_zerocopy
from ._daphne import paced
from ._errors import ClientGone, SendfileRootError
from ._files import OPEN_FLAGS, iter_segments, open_fd, open_in_roots, read_exactly
from ._http import (
    RANGE_FIELDS,
    REQUEST_FIELDS,
    lone_range_headers,
    sends_no_file,
    whole_file_headers,
)
from ._options import (
    ABORTS_SHORT_FILES,
    OPENS_BEFORE_START,
    PATHSEND,
    PATHSEND_RANGE,
    ZEROCOPYSEND,
    Configured,
    Delivery,
    Options,
    error_answer,
)
from ._serve import FileAnswer, answer_file, bodiless_headers, request_fields

__all__ = ["ZeroCopyMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("zcmiddleware.asgi")

_HIDDEN = frozenset(name.encode() for name in RANGE_FIELDS)


class ZeroCopyMiddleware(Configured[ASGIApp]):
    """Serve the app's file responses -- Range requests included -- zero-copy.

    ```python
    app.add_middleware(ZeroCopyMiddleware)  # Starlette, FastAPI: add it last
    app = ZeroCopyMiddleware(app)  # any ASGI app
    ```

    It must be the outermost middleware (added last), so that it talks to the server
    itself; wrapped by another one it still answers correctly, without zerocopysend.

    Options (the same on ``ZeroCopyWSGIMiddleware``):

    * ``handle_ranges`` -- answer Range and conditional requests for file responses
      (docs/http.md). Off: the app answers them itself, and no ``Accept-Ranges`` is
      promised for it.
    * ``exclude_paths`` -- a path prefix, or several, left to the app as if
      ``handle_ranges`` were off; their file responses still go zero-copy.
    * ``sendfile_header`` -- opt-in X-Sendfile style: a response carrying this header
      (e.g. ``"X-Sendfile"``) is served from the file it names. The header never
      reaches the client.
    * ``sendfile_roots`` -- a directory, or several, that a ``sendfile_header`` path
      must lie in, symlinks resolved; required with ``sendfile_header``. Outside them:
      a 500 and an error log line; the answer names no path.
    * ``chunk_size`` -- bytes per read where the file is read in Python.
    * ``debug_header`` -- if set (e.g. ``"X-ZeroCopy-Path"``), file responses carry
      this header naming the path that sent the body (:class:`Delivery`). The same is
      always logged at DEBUG level on the ``zcmiddleware.asgi`` logger.
    * ``accel_redirect`` -- behind nginx: ``{"/srv/media": "/_zc/media/"}`` maps
      directories to ``internal`` nginx locations; file responses under them that
      nginx answers identically are handed to it with ``X-Accel-Redirect``
      (docs/deployment.md). Without nginx in front that header would reach the
      client: a deployment bug.
    * ``precompressed`` -- content codings (``"br"``, ``"gzip"``, ``"zstd"``) whose
      precompressed variants (``file.br``, ``file.gz``, ``file.zst``) are served, in
      this order of preference, to clients that accept them.
    """

    _compressor: object = None
    _looked_for_compressor = False
    _plain_gets = False
    _warned_outer = False
    _outer_of: tuple[object, str] = (None, "")

    @functools.cached_property
    def sendfile_raw(self) -> bytes:
        """``sendfile_header`` as an ASGI header name."""
        return (self.options.sendfile_header or "").encode()

    @functools.cached_property
    def private_raw(self) -> frozenset[bytes]:
        """:meth:`Options.private_headers` as ASGI header names."""
        return frozenset(name.encode() for name in self.options.private_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._looked_for_compressor:
            self._compressor = _find_compressor(self.app)
            self._plain_gets = _answers_plain_gets(self)
            self._looked_for_compressor = True
        if self._plain_gets and scope["method"] == "GET":
            extensions = scope.get("extensions")
            if (
                extensions is not None
                and extensions.get(PATHSEND) == {}
                and ZEROCOPYSEND not in extensions
            ):
                headers, plain = scope["headers"], None
                if _NEEDS_THE_FILE.isdisjoint(map(_name_of, headers)):
                    plain = _PlainGet(self, scope, receive, send, None)
                    await self.app(scope, receive, plain.send)
                elif (field := _only_range(headers)) is not None:
                    plain = _PlainGet(self, scope, receive, send, field[1])
                    hidden = list(headers)
                    hidden.remove(field)  # so that the app hands over the whole file
                    await self.app({**scope, "headers": hidden}, receive, plain.send)
                if plain is not None:
                    if plain.held is not None or plain.machine is not None:
                        await plain.finish()
                    return
        exchange = _Exchange(self, scope, receive, send)
        responder = _Responder(exchange)
        if exchange.head_as_get:
            with exchange.app_cancel:
                await self.app(exchange.app_scope(), receive, responder.send)
        else:
            await self.app(exchange.app_scope(), receive, responder.send)
        if responder.state is not _State.DONE:
            await responder.finish()

    def warn_outer_once(self, outer: str) -> None:
        if not self._warned_outer:
            self._warned_outer = True
            logger.warning(
                "ZeroCopyMiddleware is wrapped by %s, which does not forward "
                "http.response.zerocopysend: ranges are read in Python. Make it the "
                "outermost middleware: app.add_middleware(ZeroCopyMiddleware) after "
                "every other add_middleware (or wrap the whole app with it).",
                outer,
            )


def _answers_plain_gets(mw: ZeroCopyMiddleware) -> bool:
    """Whether no option changes a plain GET's file answer (:class:`_PlainGet`)."""
    o = mw.options
    return (
        o.handle_ranges and not o.exclude_paths and o.sendfile_header is None
        and o.debug_header is None and not o.precompressed and not o.accel_redirect
        and mw._compressor is None
    )  # fmt: skip


class _PlainGet:
    """The commonest requests, answered without the state machine: a GET with no
    field the planner reads, or with a lone Range, on a server that takes a whole file
    by path and offers nothing else (granian), to an app whose options
    change nothing.

    Without a Range the app gets the server's own scope (nothing in it is to hide or
    to offer), and a file response whose headers carry its size and both validators
    goes out as the app sent it, plus Accept-Ranges if it lacks it
    (:func:`whole_file_headers`). A lone Range is hidden from the app (in a copy of
    the scope) and answered as :meth:`_Responder._app_file` answers it on such a
    server: planned from the app's headers, its bytes read in the hop that opens the
    file. A response that starts with a body passes through. Anything else -- a file
    response that needs the file looked at, or messages out of order -- continues in
    :class:`_Responder` from the same point, for the request as the server sent it."""

    __slots__ = ("mw", "scope", "receive", "server_send", "path", "headers", "held", "machine",
                 "through", "done", "range")  # fmt: skip

    def __init__(
        self, mw: ZeroCopyMiddleware, scope: Scope, receive: Receive, send: Send, wanted: Any
    ) -> None:
        self.mw, self.scope, self.receive, self.server_send = mw, scope, receive, send
        self.range: bytes | None = wanted  # the request's lone Range, hidden from the app
        # The request as the server sent it, whatever the app does to its scope.
        self.path, self.headers = scope["path"], scope["headers"]
        self.held: Message | None = None
        self.machine: _Responder | None = None
        self.through = self.done = False

    async def send(self, message: Message) -> None:
        if self.through:  # not a file response: everything passes
            await self.server_send(message)
            return
        if self.machine is not None:
            await self.machine.send(message)
            return
        kind, start = message["type"], self.held
        if start is None:
            if kind == "http.response.start" and not self.done:
                self.held = message  # held until the next message says: file or not
            elif not (self.done and kind in _AFTER_THE_ANSWER):
                await self.server_send(message)  # not ours, as _Responder._forward
            return
        if kind != PATHSEND:
            # Not a file response: the start as the app sent it, then the rest.
            self.held, self.through = None, True
            await self.server_send(start)
            await self.server_send(message)
            return
        path, answer = message["path"], None
        if start.get("status", 200) == 200 and type(path) is str:
            sent = start.get("headers", ())
            if self.range is None:
                headers = whole_file_headers(sent, True, as_sent=True)
                if headers is not None:
                    answer = start if headers is sent else {**start, "headers": headers}
            else:
                ranged = await self._lone_range(start, sent, path, message)
                if ranged is None:
                    return  # the state machine answered
                answer, message = ranged
        if answer is None:  # the file must be looked at
            self.machine = self._responder()  # the state machine, at its held start
            await self.machine.send(message)
            return
        start = answer
        # The answer (inline: a coroutine less on the commonest file answer).
        self.held, self.done = None, True
        if logger.isEnabledFor(logging.DEBUG):  # as _Delivery.run's, before the body
            what = "200 full" if start["status"] == 200 else "206 partial"
            how = "pathsend" if message["type"] == PATHSEND else "fallback"
            length = _content_length(start["headers"])
            logger.debug("GET %s -> %s, %s body bytes via %s", self.path, what, length, how)
        try:
            await self.server_send(start)
            await self.server_send(message)
        except OSError:  # as to_server's: the client is gone (ASGI 2.4)
            logger.debug("client disconnected during GET %s", self.path)

    async def _lone_range(
        self, start: Message, sent: Any, path: str, message: Message
    ) -> tuple[Message, Message] | None:
        # As _Responder._app_file's lone range on a server without zerocopysend: the
        # range's bytes read in the hop that opens the file, at most one chunk of them.
        # The start and the body to send, or None once the state machine has answered.
        lone = lone_range_headers(sent, self.range)  # type: ignore[arg-type]
        if lone is None or lone[1][1] > self.mw.options.chunk_size:
            self.machine = self._responder()  # planned from the descriptor
            await self.machine.send(message)
            return None
        headers, wanted = lone
        self.held, self.done = None, True
        data = await off_loop(_read_lone_range, path, wanted)
        if data is None:  # the file changed: planned from it as it is now
            machine = self.machine = self._responder(start)
            machine.state = _State.DONE
            await machine._file_from_app(start, path)
            return None
        return {**start, "status": 206, "headers": headers}, {
            "type": "http.response.body", "body": data}  # fmt: skip

    def _responder(self, start: Message | None = None) -> _Responder:
        # The request as the server sent it (the app may have changed its scope).
        scope = {**self.scope, "method": "GET", "path": self.path, "headers": self.headers}
        machine = _Responder(_Exchange(self.mw, scope, self.receive, self.server_send))
        machine.start = start or self.held or {}
        machine.state, self.held = _State.HELD, None
        return machine

    async def finish(self) -> None:
        """The app returned (as :meth:`_Responder.finish`)."""
        if self.machine is not None:
            if self.machine.state is not _State.DONE:
                await self.machine.finish()
        elif self.held is not None:  # a start still held goes out alone
            start, self.held = self.held, None
            await self.server_send(start)


#: What an answered response's app may still send that is dropped (as in DONE).
_AFTER_THE_ANSWER = frozenset({"http.response.body", PATHSEND})


class _ServerPaths(NamedTuple):
    """The file paths the server offers that reach it through what wraps us."""

    zerocopysend: bool
    pathsend: bool
    server_checks: bool  # the server aborts a short sendfile itself
    opens_first: bool  # the server opens a pathsend's file before the start's headers
    ranges_by_path: bool  # and takes a range of it (PATHSEND_RANGE)

    @classmethod
    def of(cls, mw: ZeroCopyMiddleware, scope: Scope, send: Send) -> _ServerPaths:
        extensions = scope.get("extensions") or _NO_EXTENSIONS
        by_path = extensions.get(PATHSEND)
        first = (type(by_path) is dict or isinstance(by_path, Mapping)) and (
            by_path.get(OPENS_BEFORE_START) is True
        )
        ranged = by_path is not None and first and by_path.get(PATHSEND_RANGE) is True
        zerocopy = extensions.get(ZEROCOPYSEND)
        if zerocopy is not None and (outer := _non_forwarding_outer(mw, scope, send)):
            mw.warn_outer_once(outer)
            zerocopy = None
        if zerocopy is None:  # most servers: a shared tuple
            return _PATHSEND_ONLY[first + ranged] if by_path is not None else _NEITHER
        checks = isinstance(zerocopy, Mapping) and zerocopy.get(ABORTS_SHORT_FILES) is True
        return cls(True, by_path is not None, checks, first, ranged)


_NO_EXTENSIONS: Mapping[str, Any] = MappingProxyType({})
_NEITHER = _ServerPaths(False, False, False, False, False)
_PATHSEND_ONLY = (  # by the server's pathsend keys: none, OPENS_BEFORE_START, both
    _ServerPaths(False, True, False, False, False),
    _ServerPaths(False, True, False, True, False),
    _ServerPaths(False, True, False, True, True),
)


# Middleware known to drop or reject ``http.response.zerocopysend`` (they forward
# pathsend). Starlette's ServerErrorMiddleware, always outside user middleware,
# forwards everything.
_NON_FORWARDING_MODULES = ("starlette.middleware.base", "starlette.middleware.gzip")


def _non_forwarding_outer(mw: ZeroCopyMiddleware, scope: Scope, send: Send) -> str:
    """What wraps us and would lose zerocopysend, or "" when nothing is known to."""
    module = getattr(getattr(send, "__func__", send), "__module__", None) or ""
    if module in _NON_FORWARDING_MODULES:
        return module
    # Starlette and FastAPI: the stack is in the app's user_middleware, outermost first.
    app = scope.get("app")
    if app is None:
        return ""
    if mw._outer_of[0] is app:
        return mw._outer_of[1]
    verdict = _outer_in_stack(mw, getattr(app, "user_middleware", None))
    mw._outer_of = (app, verdict)
    return verdict


def _outer_in_stack(mw: ZeroCopyMiddleware, stack: object) -> str:
    if isinstance(stack, list):
        for i, entry in enumerate(stack):
            if getattr(entry, "cls", None) is type(mw):
                return "" if i == 0 else repr(getattr(stack[0], "cls", stack[0]))
    return ""


class _Exchange:
    """One request: what the app is shown, and what the server offers."""

    def __init__(self, mw: ZeroCopyMiddleware, scope: Scope, receive: Receive, send: Send):
        self.mw = mw
        self.options: Options = mw.options
        self.scope = scope
        self.receive = receive
        # daphne's send returns before the body is written: pace it by its transport.
        self.server_send = paced(send)
        self.method: str = scope["method"]
        options = self.options  # Options.handles, inline
        self.handles = options.handle_ranges and not scope["path"].startswith(options.exclude_paths)
        self.paths = _ServerPaths.of(mw, scope, send)
        # HEAD answers with the status and headers GET would have (RFC 9110 §9.3.2);
        # asking the app for GET makes a framework's file response arrive as pathsend.
        self.head_as_get = self.handles and self.method == "HEAD"
        # Whether the request has a field the planner reads (ASGI names are lower case).
        self.asks = not _NEEDS_THE_FILE.isdisjoint(map(_name_of, scope["headers"]))

    def app_scope(self) -> Scope:
        scope = dict(self.scope)
        # Never zerocopysend: GZipMiddleware drops it and BaseHTTPMiddleware asserts on
        # it. pathsend passes through both, and names the file for us.
        extensions = self.scope.get("extensions")
        if extensions is None or ZEROCOPYSEND in extensions or extensions.get(PATHSEND) != {}:
            extensions = dict(extensions or ())  # the server's as it is when it can be
            extensions.pop(ZEROCOPYSEND, None)
            extensions[PATHSEND] = {}
        scope["extensions"] = extensions
        if self.handles and self.method in ("GET", "HEAD"):
            if self.asks:
                headers = self.scope["headers"]
                scope["headers"] = [(n, v) for n, v in headers if n.lower() not in _HIDDEN]
            scope["method"] = "GET"
        return scope

    @functools.cached_property
    def app_cancel(self) -> anyio.CancelScope:
        """Stops the app once a HEAD it was asked as GET has its answer."""
        return anyio.CancelScope()

    @functools.cached_property
    def request(self) -> dict[str, str]:
        """The request fields a file answer reads, as the client sent them."""
        return request_fields(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in self.scope["headers"]
        )

    async def to_server(self, message: Message) -> None:
        try:
            await self.server_send(message)
        except OSError as exc:  # ASGI 2.4: OSError (uvicorn's ClientDisconnected is one)
            raise ClientGone(str(exc)) from exc


class _State(enum.Enum):
    # Hashed by identity, in C: Enum's own __hash__ is a Python call, and every
    # message looks up a (state, kind) pair in _TRANSITIONS.
    __hash__ = object.__hash__

    IDLE = "idle"  # nothing from the app yet
    HELD = "held"  # its start is held until the next message says: file or not
    SENDFILE = "sendfile"  # its start named a file (sendfile_header); its body is dropped
    STREAMING = "streaming"  # not a file: everything passes through
    DONE = "done"  # the answer is out; the app's further body is dropped


class _Kind(enum.Enum):
    __hash__ = object.__hash__  # as _State's

    START = "http.response.start"
    BODY = "http.response.body"
    PATHSEND = PATHSEND
    OTHER = ""


_KINDS = {kind.value: kind for kind in _Kind if kind is not _Kind.OTHER}


class _Responder:
    """One response, as a state machine: the transitions are the table below, and
    the first one (IDLE, START: the start is held) is taken in :meth:`send` itself."""

    def __init__(self, exchange: _Exchange) -> None:
        self.x = exchange
        self.state = _State.IDLE
        self.start: Message = {}
        self.sendfile_path = b""

    async def send(self, message: Message) -> None:
        kind = _KINDS.get(message["type"], _Kind.OTHER)
        if kind is _Kind.START and self.state is _State.IDLE:
            # Every response's first message, held: no coroutine, no call for it.
            self.start, self.state = message, _State.HELD
            if self.x.options.sendfile_header is not None:
                self._named_file(message)
            return
        handler = _TRANSITIONS.get((self.state, kind), _Responder._forward)
        await handler(self, message)

    async def finish(self) -> None:
        """The app returned: a start still held goes out alone (the server will say
        what is missing); an X-Sendfile response without a body sends its file."""
        if self.state is _State.SENDFILE:
            await self._file_from_header(self.start)
        elif self.state is _State.HELD:
            self.state = _State.STREAMING
            await self.x.server_send(self.start)

    # ----------------------------------------------------------- transitions

    async def _forward(self, message: Message) -> None:
        # Not ours: early hints before the start, trailers after a file, and what a
        # server is there to refuse (a message out of order).
        await self.x.server_send(message)

    def _named_file(self, message: Message) -> None:
        # A held start that names a file in sendfile_header becomes SENDFILE.
        name = self.x.mw.sendfile_raw
        headers = message.get("headers", ())
        path = next((bytes(v) for k, v in headers if k.lower() == name), None)
        if path is not None:
            # Whatever happens next, the path never reaches the client.
            kept = [(k, v) for k, v in headers if k.lower() != name]
            self.start, self.state = {**message, "headers": kept}, _State.SENDFILE
            self.sendfile_path = path

    async def _release(self, message: Message) -> None:
        # Not a file response: the start goes out as the app sent it, then the rest.
        self.state = _State.STREAMING
        await self.x.server_send(self.start)
        await self._stream(message)

    async def _stream(self, message: Message) -> None:
        if not (self.x.head_as_get and message["type"] == "http.response.body"):
            await self.x.server_send(message)
            return
        # HEAD asked of the app as GET: the first body ends the answer, bodiless, and
        # the app is stopped, so it does no more work than before its first body.
        self.state = _State.DONE
        await self.x.server_send({"type": "http.response.body", "body": b""})
        if message.get("more_body", False):
            self.x.app_cancel.cancel()
            await anyio.lowlevel.checkpoint()

    async def _drop(self, message: Message) -> None:
        pass

    async def _app_file(self, message: Message) -> None:
        self.state = _State.DONE
        x, path = self.x, message["path"]
        headers = None if x.asks else _whole_file_headers(x, self.start, path)
        status, body = 200, message
        if headers is None:
            lone = _lone_range(x, self.start, path)
            if lone is None:
                await self._file_from_app(self.start, path)
                return
            status, (headers, wanted) = 206, lone
            if x.paths.ranges_by_path:
                body = {"type": PATHSEND, "path": path, PATHSEND_RANGE: wanted}
            elif x.method != "HEAD":
                read = await off_loop(_read_lone_range, path, wanted)
                if read is None:  # the file changed: planned from it as it is now
                    await self._file_from_app(self.start, path)
                    return
                body = {"type": "http.response.body", "body": read}
        # Planned from the framework's own headers: no second stat, and no thread hop
        # but a lone range's read where the server cannot take its path (inline: a
        # coroutine less on the commonest file answer).
        length = headers[-1][1]  # both put Content-Length last
        start = {**self.start, "status": status, "headers": headers}
        how = "pathsend" if body["type"] == PATHSEND else "fallback"
        if x.method == "HEAD":
            how, body = "none", {"type": "http.response.body"}
        elif how == "pathsend" and x.paths.opens_first:
            start[OPENS_BEFORE_START] = True  # the server opens the file first
        if x.options.debug_header is not None:
            headers.append((x.options.debug_header.encode(), how.encode()))
        if logger.isEnabledFor(logging.DEBUG):  # as _Delivery.run: before the body
            logger.debug(
                "%s %s -> %d %s, %s body bytes via %s",
                *(x.method, x.scope["path"], status, "full" if status == 200 else "partial"),
                *(length.decode(), how),
            )
        send = self.x.server_send
        try:
            await send(start)
            await send(body)
        except OSError:  # as to_server's: the client is gone (ASGI 2.4)
            logger.debug("client disconnected during %s %s", self.x.method, self.x.scope["path"])

    async def _sendfile_body(self, message: Message) -> None:
        # The app's own body of an X-Sendfile response is discarded; the file is sent
        # once the app has finished its body.
        if not message.get("more_body", False):
            await self._file_from_header(self.start)

    async def _header_file(self, message: Message) -> None:
        await self._file_from_header(self.start)

    # ------------------------------------------------------------ the file

    async def _file_from_app(self, start: Message, path: Any) -> None:
        # The app named the file: a failure to open it is the app's error to hear
        # about (the response has not started, so the server answers 500).
        fd, answer = await off_loop(_open_and_answer, self.x, start, path, orphan=_close_all)
        await self._deliver(fd, answer)

    async def _file_from_header(self, start: Message) -> None:
        self.state = _State.DONE
        status = start.get("status", 200)
        if sends_no_file(status):
            # The app answered 304, 412, ... itself: the file is not even opened.
            private = self.x.options.private_headers
            app_headers = _str_headers(start, private)
            headers = [(k.encode("latin-1"), v.encode("latin-1"))
                       for k, v in bodiless_headers(status, app_headers)]  # fmt: skip
            await self.x.server_send({**start, "headers": headers})
            await self.x.server_send({"type": "http.response.body", "body": b""})
            return
        path = os.fsdecode(self.sendfile_path)
        name = self.x.options.sendfile_header
        try:
            fd, answer = await off_loop(_open_in_roots, self.x, start, path, orphan=_close_all)
        except OSError as exc:
            if isinstance(exc, SendfileRootError):
                logger.error("%s header refused: %r is outside sendfile_roots", name, path)
            else:
                logger.error("%s header: cannot serve %r: %s", name, path, exc)
            await _send_error(self.x, 404 if isinstance(exc, FileNotFoundError) else 500)
            return
        await self._deliver(fd, answer)

    async def _deliver(self, fd: int, answer: FileAnswer) -> None:
        try:
            await _Delivery(self.x, self.start, answer).run()
        except ClientGone:
            logger.debug("client disconnected during %s %s", self.x.method, self.x.scope["path"])
        finally:
            _close_all((fd, answer))


_TRANSITIONS: dict[tuple[_State, _Kind], Callable[[_Responder, Message], Awaitable[None]]] = {
    (_State.HELD, _Kind.START): _Responder._release,
    (_State.HELD, _Kind.PATHSEND): _Responder._app_file,
    (_State.HELD, _Kind.BODY): _Responder._release,
    (_State.HELD, _Kind.OTHER): _Responder._release,
    (_State.SENDFILE, _Kind.BODY): _Responder._sendfile_body,
    (_State.SENDFILE, _Kind.PATHSEND): _Responder._header_file,
    (_State.SENDFILE, _Kind.OTHER): _Responder._release,
    (_State.STREAMING, _Kind.START): _Responder._stream,
    (_State.STREAMING, _Kind.BODY): _Responder._stream,
    (_State.STREAMING, _Kind.PATHSEND): _Responder._stream,
    (_State.STREAMING, _Kind.OTHER): _Responder._stream,
    (_State.DONE, _Kind.BODY): _Responder._drop,
    (_State.DONE, _Kind.PATHSEND): _Responder._drop,
}


class _Delivery:
    """Sends one planned file answer by the best path the server offers."""

    def __init__(self, exchange: _Exchange, start: Message, answer: FileAnswer) -> None:
        self.x = exchange
        self.start = start
        self.answer = answer
        self.compressor = exchange.mw._compressor
        self.compress = (
            self.compressor is not None
            and bool(answer.plan.segments)
            and _compresses(self.compressor, exchange, answer)
        )
        self.how = self._choose()

    def _choose(self) -> Delivery:
        answer, paths = self.answer, self.x.paths
        if answer.accel:
            return Delivery.X_ACCEL_REDIRECT
        if not answer.plan.segments:
            return Delivery.NONE
        if self.compress:
            return Delivery.FALLBACK  # read and compressed as the app's own would be
        if paths.zerocopysend:
            return Delivery.ZEROCOPYSEND
        # pathsend can only send a whole file: any range, and multipart framing, can't.
        if paths.pathsend and answer.by_path and answer.path is not None and answer.whole_file:
            return Delivery.PATHSEND
        return Delivery.FALLBACK

    def start_message(self) -> Message:
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self.answer.headers]
        if self.x.options.debug_header is not None:
            headers.append((self.x.options.debug_header.encode(), self.how.value.encode()))
        return {**self.start, "status": self.answer.plan.status, "headers": headers}

    async def run(self) -> None:
        plan, send = self.answer.plan, self.x.to_server
        if logger.isEnabledFor(logging.DEBUG):  # the arguments cost a small file's request
            logger.debug(
                "%s %s -> %d %s, %d body bytes via %s",
                *(self.x.method, self.x.scope["path"], plan.status, plan.kind),
                *(plan.body_length, self.how.value),
            )
        if self.compress:
            await self._through_compressor()
            return
        await send(self.start_message())
        if self.how in (Delivery.NONE, Delivery.X_ACCEL_REDIRECT):
            await send({"type": "http.response.body", "body": b""})
        elif self.how is Delivery.PATHSEND:
            await send({"type": PATHSEND, "path": self.answer.path})
        elif self.how is Delivery.ZEROCOPYSEND:
            with fdopen(self.answer.fd) as file:  # the descriptor outlives it: ours to close
                await send_zerocopy(send, file, plan.segments, self.x.paths.server_checks)
        else:
            await self._fallback(send)

    async def _fallback(self, send: Send) -> None:
        if self.answer.body is not None:
            await send({"type": "http.response.body", "body": self.answer.body})
            return
        segments, chunk = self.answer.plan.segments, self.x.options.chunk_size
        await send_fallback(send, self.x.receive, self.answer.fd, segments, chunk)

    async def _through_compressor(self) -> None:
        # The app's compressing middleware (inside us) saw a pathsend and let it pass
        # uncompressed; without us it would have compressed the file's body. A copy of
        # it, around an app that replays our start and the file's bytes, does just that.
        async def replay(scope: Scope, receive: Receive, send: Send) -> None:
            await send(self.start_message())
            await self._fallback(send)

        clone = copy.copy(self.compressor)
        clone.app = replay  # type: ignore[attr-defined]
        await clone(self.x.app_scope(), self.x.receive, self.x.to_server)  # type: ignore[operator]


# Compressing middleware found inside us, by class name (Starlette's and FastAPI's
# GZipMiddleware are one class).
_COMPRESSORS = frozenset({"GZipMiddleware", "BrotliMiddleware", "CompressMiddleware"})


def _find_compressor(app: object) -> object | None:
    for _ in range(64):  # bounded: a chain of middleware, each holding the next as .app
        if type(app).__name__ in _COMPRESSORS and callable(app):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _compresses(compressor: object, exchange: _Exchange, answer: FileAnswer) -> bool:
    """Whether the app's compressor would have compressed this full file response (it
    reads the same request): mirrors Starlette's GZipMiddleware where it can."""
    if answer.plan.kind != "full":
        return False
    accept = exchange.request.get("accept-encoding", "")
    headers = {name: value for name, value in answer.headers}
    if "content-encoding" in headers or not accept:
        return False
    if answer.plan.body_length < getattr(compressor, "minimum_size", 0):
        return False
    excluded = getattr(compressor, "exclude_content_types", None)
    if isinstance(excluded, tuple):
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        if not {media, media.partition("/")[0] + "/*"}.isdisjoint(excluded):
            return False
    if type(compressor).__name__ == "GZipMiddleware":
        return "gzip" in accept
    return accept.strip().lower() != "identity"


# The request fields that need the file itself (its size and mtime as they are now):
# without any of them, a framework's whole-file answer can be planned from its headers.
_NEEDS_THE_FILE = frozenset(f.encode() for f in REQUEST_FIELDS)
_name_of = operator.itemgetter(0)


def _lone_range(x: _Exchange, start: Message, path: Any) -> tuple[list[Any], Any] | None:
    """The 206's headers and ``(offset, count, size)`` of a GET or HEAD whose only
    planner field is a Range of one satisfiable spec, planned from the framework's
    size and validators as :func:`_whole_file_headers` is: on a server that takes a
    range of a pathsend's file (:data:`PATHSEND_RANGE`, which answers 500 if the
    file has another size), or one whose range path would read it anyway (no
    zerocopysend). None when anything needs the file itself, and for every other
    Range (several, 416, ignored, If-Range): those are planned from our descriptor."""
    paths = x.paths
    if not (paths.ranges_by_path or not paths.zerocopysend) or not x.handles:
        return None
    if x.method not in ("GET", "HEAD") or not _from_app_headers(x, start, path):
        return None
    field = _only_range(x.scope["headers"])
    if field is None:
        return None
    lone = lone_range_headers(start.get("headers", ()), field[1], x.mw.private_raw)
    if lone is None or paths.ranges_by_path or x.method == "HEAD":
        return lone
    # Read in the hop that opens the file: one chunk at most (a longer range streams).
    return lone if lone[1][1] <= x.options.chunk_size else None


def _only_range(headers: Any) -> Any:
    """The request's Range field (its name and value, as the server sent them) when it
    is its only planner field (one Range, nothing else of :data:`REQUEST_FIELDS`),
    else None."""
    found = None
    for field in headers:
        if field[0] in _NEEDS_THE_FILE:
            if field[0] != b"range" or found is not None:
                return None  # another planner field (or a second Range)
            found = field
    return found


def _read_lone_range(path: str, wanted: tuple[int, int, int]) -> bytes | None:
    """In a worker thread: the range's bytes, when the file still has the size the app
    reported; else None, and the caller plans from the file as it is now (open_fd,
    which refuses what is not a regular file with its own error).

    The size is the descriptor's end (``lseek``), not ``fstat``'s: its stat_result
    costs ~6 k of a 4 KiB range's budget (benchmarks.instructions). What is not a
    regular file has no end (a FIFO or a socket: ESPIPE) or not the app's size (a
    character device, 0); the regular-file check is otherwise the framework's, as it
    is for the whole file the server opens by path."""
    offset, count, size = wanted
    fd = os.open(path, OPEN_FLAGS)
    try:
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
        except OSError:  # no end to seek to
            return None
        if end == size:
            data = os.pread(fd, count, offset)
            return data if len(data) == count else read_exactly(fd, offset, count)
    finally:
        os.close(fd)
    return None


def _from_app_headers(x: _Exchange, start: Message, path: Any) -> bool:
    """Whether a file answer may be planned from the framework's headers at all: the
    app's 200 for a path, and no option that needs the file itself (a precompressed
    variant, nginx's offload, the app's compressor)."""
    options = x.options
    if options.precompressed or options.accel_redirect or x.mw._compressor is not None:
        return False
    return start.get("status", 200) == 200 and isinstance(path, str)


def _whole_file_headers(x: _Exchange, start: Message, path: Any) -> list[Any] | None:
    """The headers of a plain GET or HEAD of a whole file on a server that takes
    paths, planned from the size and validators the framework already put in its
    headers (Starlette's FileResponse stat-ed the file a moment ago, in a thread; the
    server opens it again anyway). None when anything needs the file itself.

    Also where the server offers zerocopysend besides and says it opens a pathsend's
    file before the start (:data:`OPENS_BEFORE_START`, zcmiddleware.uvicorn): the
    server opens it in its own hop, as it does for the app without us, instead of the
    middleware in one more (docs/asgi.md, "The one shortcut")."""
    paths = x.paths
    # Where the server takes a descriptor, the middleware opens the file (the bytes
    # then cannot change between the plan and the send) -- unless the server opens a
    # pathsend's file before it writes the start, and answers 500 itself if it cannot.
    if not paths.pathsend or (paths.zerocopysend and not paths.opens_first):
        return None
    if not _from_app_headers(x, start, path):
        return None
    if x.asks:
        return None
    return whole_file_headers(start.get("headers", ()), x.handles, x.mw.private_raw)


def _open_and_answer(x: _Exchange, start: Message, path: Any) -> tuple[int, FileAnswer]:
    fd, facts = open_fd(path if isinstance(path, str) else os.fsdecode(path))
    return fd, _read_small_body(x, fd, _answer(x, start, fd, facts, os.fsdecode(path)))


def _read_small_body(x: _Exchange, fd: int, answer: FileAnswer) -> FileAnswer:
    # Still in the worker thread: a body of at most one chunk that the fallback would
    # read anyway is read now, saving it a second hop.
    plan, paths = answer.plan, x.paths
    if not plan.segments or answer.accel or paths.zerocopysend:
        return answer
    if plan.body_length > x.options.chunk_size or x.mw._compressor is not None:
        return answer
    if paths.pathsend and answer.by_path and answer.whole_file:
        return answer
    try:
        answer.body = b"".join(iter_segments(answer.fd, plan.segments, x.options.chunk_size))
    except BaseException:
        _close_all((fd, answer))
        raise
    return answer


def _open_in_roots(x: _Exchange, start: Message, path: str) -> tuple[int, FileAnswer]:
    real, fd, facts = open_in_roots(path, x.options.sendfile_roots)
    answer = _answer(x, start, fd, facts, real)
    answer.by_path = False  # the checked descriptor is what goes out
    return fd, _read_small_body(x, fd, answer)


def _answer(x: _Exchange, start: Message, fd: int, facts: Any, path: str) -> FileAnswer:
    app_headers = _str_headers(start, x.options.private_headers)
    try:
        return answer_file(
            x.method, x.request, start.get("status", 200), app_headers, fd, facts, path,
            x.options, x.handles,
        )  # fmt: skip
    except BaseException:
        os.close(fd)
        raise


async def _send_error(x: _Exchange, status: int) -> None:
    status, headers, body = error_answer(status)
    raw = [(k.encode(), v.encode()) for k, v in headers]
    try:
        await x.to_server({"type": "http.response.start", "status": status, "headers": raw})
        await x.to_server({"type": "http.response.body", "body": body})
    except ClientGone:
        pass


def _content_length(headers: Any) -> str:
    """The Content-Length of an answer's headers, for a log line."""
    return next((v.decode() for n, v in headers if n.lower() == b"content-length"), "?")


def _str_headers(start: Message, private: frozenset[str]) -> list[tuple[str, str]]:
    """The start message's headers as text, less the private ones."""
    headers = []
    for raw_name, raw_value in start.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if name not in private:
            headers.append((name, raw_value.decode("latin-1")))
    return headers


def _close_all(opened: tuple[int, FileAnswer]) -> None:
    fd, answer = opened
    answer.close_variant()
    os.close(fd)
