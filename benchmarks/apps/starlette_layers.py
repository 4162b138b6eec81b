"""The plain Starlette app behind the two cheapest ASGI layers: what any middleware
costs before it does its own work (``benchmarks.pairs``' reference ratios).

* ``passthrough_app``: a layer that only calls the app (``await app(scope, receive,
  send)``): the coroutine any middleware adds.
* ``holding_app``: a layer that also holds each response's start until the next
  message, then sends both, as a middleware that must see whether a response is a
  file before its headers go out (ZeroCopyMiddleware) does at the least.
"""

from __future__ import annotations

from typing import Any

from benchmarks.apps.starlette_plain import app as plain_app


class PassThrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _Held:
    __slots__ = ("held", "server_send")

    def __init__(self, send: Any) -> None:
        self.server_send, self.held = send, None

    async def send(self, message: Any) -> None:
        held = self.held
        if held is None and message["type"] == "http.response.start":
            self.held = message
            return
        if held is not None:
            self.held = None
            await self.server_send(held)
        await self.server_send(message)


class HoldsTheStart(PassThrough):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Held(send).send)


passthrough_app = PassThrough(plain_app)
holding_app = HoldsTheStart(plain_app)
