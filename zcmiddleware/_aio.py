"""The one way the ASGI side runs blocking work (``open``, ``fstat``, ``pread``) off
the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread

__all__ = ["off_loop"]

_T = TypeVar("_T")

#: Worker threads at most, as many as the loop's default executor would start.
MAX_WORKERS = min(32, (os.cpu_count() or 1) + 4)


async def off_loop(
    fn: Callable[..., _T], *args: Any, orphan: Callable[[_T], object] | None = None
) -> _T:
    """``fn(*args)`` in a worker thread; the event loop never blocks on it.

    On asyncio the middleware's own worker threads carry it (:class:`_Workers`): a
    round trip through them costs about half the instructions of the loop's executor
    (``run_in_executor`` and ``wrap_future``), which costs less than ``anyio.to_thread``
    (``python -m benchmarks.thread_hop``, docs/asgi.md). Elsewhere (trio) anyio's worker
    threads. Either way a cancelled request still waits for its thread, so no
    descriptor is closed under a running ``pread`` (that was seen: EBADF in the thread,
    when Django's handler cancels its task on a disconnect). A cancellation -- anyio's
    or a plain ``Task.cancel()`` -- is absorbed until the thread is done (under an
    anyio shield from then on, so anyio does not deliver it again and again) and then
    raised again, after the thread's result went to ``orphan`` (to close a descriptor
    it opened, say).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(fn, *args)
    call = _Call(fn, args, loop)
    _WORKERS.submit(call)
    try:
        await call.waiter
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            while call.outcome is None:
                call.waiter = loop.create_future()
                with contextlib.suppress(asyncio.CancelledError):
                    await call.waiter
        outcome = call.outcome  # set by now: the loop above waited for it
        if outcome is not None and outcome[0] and orphan is not None:
            orphan(outcome[1])
        raise
    outcome = call.outcome
    assert outcome is not None  # the waiter is set only with it
    if outcome[0]:
        return outcome[1]  # type: ignore[no-any-return]
    raise outcome[1]


class _Call(Generic[_T]):
    """One function call for a worker, and the loop future its caller awaits."""

    __slots__ = ("args", "fn", "loop", "outcome", "waiter")

    def __init__(self, fn: Callable[..., _T], args: tuple[Any, ...], loop: Any) -> None:
        self.fn, self.args, self.loop = fn, args, loop
        self.waiter: asyncio.Future[None] = loop.create_future()
        self.outcome: tuple[bool, Any] | None = None

    def run(self) -> None:  # in a worker thread
        try:
            outcome: tuple[bool, Any] = (True, self.fn(*self.args))
        except BaseException as exc:  # handed to the caller, raised there
            outcome = (False, exc)
        try:  # noqa: SIM105 (contextlib.suppress: an object and two calls, ~3 k a hop)
            self.loop.call_soon_threadsafe(self._settle, outcome)
        except RuntimeError:  # a closed loop: nobody waits any more
            pass

    def _settle(self, outcome: tuple[bool, Any]) -> None:  # on the loop
        self.outcome = outcome
        if not self.waiter.done():  # a cancelled caller's waiter is done: it makes another
            self.waiter.set_result(None)


class _Workers:
    """Daemon threads that take calls off one queue, started as needed, at most
    :data:`MAX_WORKERS`. A call waits in the queue while every worker is busy."""

    def __init__(self) -> None:
        self.queue: SimpleQueue[_Call[Any]] = SimpleQueue()
        self.lock = threading.Lock()
        self.started = 0
        self.idle = 0  # workers waiting on the queue (an estimate: read without the lock)

    def submit(self, call: _Call[Any]) -> None:
        self.queue.put(call)
        if self.idle <= 0 and self.started < MAX_WORKERS:
            with self.lock:
                if self.started < MAX_WORKERS:
                    self.started += 1
                    threading.Thread(target=self._work, name="zcmiddleware", daemon=True).start()

    def _work(self) -> None:
        queue, lock = self.queue, self.lock
        while True:
            with lock:
                self.idle += 1
            call = queue.get()
            with lock:
                self.idle -= 1
            call.run()
            del call


_WORKERS = _Workers()


def _after_fork() -> None:  # the child has none of the parent's threads
    global _WORKERS
    _WORKERS = _Workers()


os.register_at_fork(after_in_child=_after_fork)
