"""``off_loop``: a cancelled request still waits for its worker thread."""

from __future__ import annotations

import asyncio
import threading
import time

from zcmiddleware._aio import off_loop


def test_a_plain_task_cancel_waits_for_the_thread_and_hands_over_its_result() -> None:
    # Django's ASGI handler cancels its task when the client leaves; a read still in
    # the thread must finish before the caller may close its descriptor (EBADF was
    # seen in the thread otherwise).
    finished = threading.Event()
    orphans: list[str] = []

    def slow() -> str:
        time.sleep(0.3)
        finished.set()
        return "opened"

    async def main() -> None:
        task = asyncio.ensure_future(off_loop(slow, orphan=orphans.append))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancellation was swallowed")
        assert finished.is_set(), "off_loop returned before its thread finished"
        assert orphans == ["opened"]

    asyncio.run(main())


def test_the_threads_error_and_result_come_back() -> None:
    async def main() -> None:
        assert await off_loop(len, "abc") == 3
        try:
            await off_loop(int, "x")
        except ValueError:
            return
        raise AssertionError("no ValueError")

    asyncio.run(main())
