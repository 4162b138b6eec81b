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
    (trio) anyio's worker threads. The wait is shielded from cancel scopes, as
    ``anyio.to_thread.run_sync`` is: a cancelled request still waits for the thread,
    so no descriptor is closed under a running ``pread``. A plain ``Task.cancel()``
    (which no shield stops) leaves the thread running: its result then goes to
    ``orphan`` (e.g. to close a descriptor it opened) instead of being lost.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(fn, *args)
    future = loop.run_in_executor(None, functools.partial(fn, *args))
    with anyio.CancelScope(shield=True):
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if orphan is not None:
                future.add_done_callback(functools.partial(_hand_over, orphan))
            raise
    raise AssertionError("unreachable")  # for mypy: a shielded scope may swallow nothing


def _hand_over(orphan: Callable[[Any], object], future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        orphan(future.result())
