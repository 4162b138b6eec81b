"""The one way the ASGI side runs blocking work (``open``, ``fstat``, ``pread``) off
the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

__all__ = ["off_loop"]

_T = TypeVar("_T")


async def off_loop(
    fn: Callable[..., _T], *args: Any, orphan: Callable[[_T], object] | None = None
) -> _T:
    """``fn(*args)`` in a worker thread; the event loop never blocks on it.

    On asyncio the loop's own executor carries it: an ``anyio.to_thread`` round trip
    costs measurably more (``python -m benchmarks.thread_hop``, docs/asgi.md). Elsewhere
    (trio) anyio's worker threads. Either way a cancelled request still waits for its
    thread, so no descriptor is closed under a running ``pread`` (that was seen: EBADF
    in the thread, when Django's handler cancels its task on a disconnect). anyio's
    cancel scopes are held off by a shield; a plain ``Task.cancel()``, which no shield
    stops, is absorbed until the thread is done and then raised again -- after the
    thread's result went to ``orphan`` (to close a descriptor it opened, say).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(fn, *args)
    future = loop.run_in_executor(None, functools.partial(fn, *args))
    cancelled = False
    with anyio.CancelScope(shield=True):
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                cancelled = True
    if not cancelled:
        return future.result()
    if future.exception() is None and orphan is not None:
        orphan(future.result())
    raise asyncio.CancelledError
