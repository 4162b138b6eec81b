"""How much one worker-thread round trip costs on the event loop, two ways.

``python -m benchmarks.thread_hop``: awaits a trivial ``os.fstat`` 5,000 times one
after another and 200 x 32 at once, through ``loop.run_in_executor``, through
``anyio.to_thread.run_sync`` and through the middleware's own ``off_loop`` (its worker
threads, the cancel-proof wait included), on uvloop. The middleware's choice of its own
workers on asyncio (``zcmiddleware._aio``) rests on this measurement and on the
instruction counts of ``benchmarks.instructions``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
import uvloop

from zcmiddleware._aio import off_loop


def _work() -> os.stat_result:
    return os.fstat(0)


async def _measure(name: str, hop: Callable[[], Awaitable[object]]) -> None:
    for _ in range(300):  # warm the thread pool
        await hop()
    n = 5000
    start = time.perf_counter()
    for _ in range(n):
        await hop()
    sequential = (time.perf_counter() - start) / n * 1e6
    rounds, width = 200, 32
    start = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(hop() for _ in range(width)))
    concurrent = (time.perf_counter() - start) / (rounds * width) * 1e6
    print(f"{name:18} sequential {sequential:6.1f} us/hop, {width} at once {concurrent:6.1f}")


async def main() -> None:
    loop = asyncio.get_running_loop()
    await _measure("run_in_executor", lambda: loop.run_in_executor(None, _work))
    await _measure("anyio.to_thread", lambda: anyio.to_thread.run_sync(_work))
    await _measure("off_loop", lambda: off_loop(_work))


if __name__ == "__main__":
    uvloop.run(main())
