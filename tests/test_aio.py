"""``off_loop``: a cancelled request still waits for its worker thread."""

from __future__ import annotations

import asyncio
import threading
import time

from zcmiddleware._aio import off_loop


class SlowOpen:
    """A call that takes 0.3 s in its thread; what it opened goes to ``orphans``."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.orphans: list[str] = []

    def __call__(self) -> str:
        time.sleep(0.3)
        self.finished.set()
        return "opened"

    def check(self) -> None:
        assert self.finished.is_set(), "off_loop returned before its thread finished"
        assert self.orphans == ["opened"]


def test_a_plain_task_cancel_waits_for_the_thread_and_hands_over_its_result() -> None:
    # Django's ASGI handler cancels its task when the client leaves; a read still in
    # the thread must finish before the caller may close its descriptor (EBADF was
    # seen in the thread otherwise).
    slow = SlowOpen()

    async def main() -> None:
        task = asyncio.ensure_future(off_loop(slow, orphan=slow.orphans.append))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancellation was swallowed")
        slow.check()

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


def test_an_anyio_cancel_scope_also_waits_for_the_thread() -> None:
    import anyio

    slow = SlowOpen()

    async def main() -> None:
        with anyio.move_on_after(0.05) as scope:
            await off_loop(slow, orphan=slow.orphans.append)
        assert scope.cancelled_caught
        slow.check()

    asyncio.run(main())


def test_more_calls_at_once_than_workers_all_complete_on_bounded_threads() -> None:
    from zcmiddleware import _aio

    barrier_hits: list[int] = []

    def work(i: int) -> int:
        time.sleep(0.01)
        barrier_hits.append(i)
        return i * 2

    async def main() -> None:
        n = 3 * _aio.MAX_WORKERS
        results = await asyncio.gather(*(off_loop(work, i) for i in range(n)))
        assert results == [i * 2 for i in range(n)]
        workers = [t for t in threading.enumerate() if t.name == "zcmiddleware"]
        assert 1 <= len(workers) <= _aio.MAX_WORKERS

    asyncio.run(main())


def test_a_forked_child_gets_workers_of_its_own() -> None:
    # gunicorn forks its workers: a pool counted in the parent has no threads there.
    import os

    asyncio.run(off_loop(len, "x"))  # the parent's pool has started a worker
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if the hop comes back
        try:
            code = 0 if asyncio.run(asyncio.wait_for(off_loop(len, "abc"), 5)) == 3 else 1
        except BaseException:
            code = 2
        os._exit(code)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:  # a hop nobody takes waits for ever (a cancel does not end it)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError("the child's hop never came back")
    assert os.waitstatus_to_exitcode(done[1]) == 0
