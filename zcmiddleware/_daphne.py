"""Backpressure for daphne, whose ``send`` returns before the body is written.

daphne writes each ``http.response.body`` into Twisted's transport buffer and returns
at once, so awaiting its ``send`` paces nothing: a fallback body is read from disk as
fast as the disk allows and piles up in the worker (docs/django.md has the numbers).
Twisted's own answer is a push producer registered on the request: the transport
calls ``pauseProducing`` when its write buffer is full and ``resumeProducing`` once it
has drained. :func:`paced` wraps daphne's ``send`` so that each body message with more
to come waits for that. Any other server's ``send`` is returned unchanged.

daphne is recognised by what it passes as ``send`` (``functools.partial`` of its
``Server.handle_reply``, bound to the Twisted request); nothing here imports daphne
or Twisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["paced"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def paced(send: Send) -> Send:
    """``send``, waiting for daphne's transport after each body message with more to
    come; any other server's ``send`` as it is.

    The ``send`` may be daphne's own or one closure around it (Starlette's
    ServerErrorMiddleware, outside every user middleware, wraps it so): the closure
    is still what is awaited, daphne's request only tells when to go on.
    """
    if "daphne.server" not in sys.modules:
        return send  # not on daphne: nothing to look at, on every request
    request = _daphne_request(send)
    if request is None:
        for cell in getattr(send, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                request = _daphne_request(cell.cell_contents)
            if request is not None:
                break
    if request is None:
        return send
    return _PacedSend(send, request)


def _daphne_request(send: Send) -> Any:
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    owner = getattr(send.func, "__self__", None)
    if type(owner).__module__ != "daphne.server" or send.func.__name__ != "handle_reply":
        return None
    request = send.args[0]
    if not callable(getattr(request, "registerProducer", None)):
        return None
    return request


class _PacedSend:
    """daphne's ``send`` plus a Twisted push producer that tells when to go on.

    Registered on the first body message with more to come, unregistered before the
    last one (Twisted logs a failure for a request finished with a producer still
    registered). Twisted runs on daphne's asyncio loop, so its calls set the event
    directly.
    """

    def __init__(self, send: Send, request: Any) -> None:
        self._send = send
        self._request = request
        self._writable = asyncio.Event()
        self._writable.set()
        self._registered = False
        self._stopped = False

    async def __call__(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        if not message.get("more_body", False):
            self._unregister()
            await self._send(message)
            return
        if not self._registered and not self._stopped:
            self._register()
        await self._send(message)
        await self._writable.wait()

    def _register(self) -> None:
        channel = getattr(self._request, "channel", None)
        if channel is None or getattr(self._request, "finished", False):
            return  # the response is over or the connection gone: nothing to pace
        self._request.registerProducer(self, True)
        self._registered = True
        # A transport already paused says so once, before we were listening.
        if getattr(channel, "_waitingForTransport", False):
            self._writable.clear()

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            if getattr(self._request, "channel", None) is not None:
                self._request.unregisterProducer()

    # IPushProducer, called by Twisted
    def pauseProducing(self) -> None:
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:
        # The connection is gone: never wait again (daphne drops what follows).
        self._stopped = True
        self._writable.set()
