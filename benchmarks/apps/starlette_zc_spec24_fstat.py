"""Experiment (not in the default run): :mod:`starlette_zc_spec24`, and
``os.fstat`` run inline instead of in a worker thread.

The middleware checks the file's size after each zero-copy send through
``anyio.to_thread.run_sync(os.fstat, fd)``. On a local filesystem an ``fstat``
of an open descriptor reads the in-memory inode and does not block (on NFS it
may revalidate attributes over the network); this measures what the hop costs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import anyio.to_thread

_run_sync = anyio.to_thread.run_sync


async def _run_sync_fstat_inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if func is os.fstat:
        return func(*args)
    return await _run_sync(func, *args, **kwargs)


anyio.to_thread.run_sync = _run_sync_fstat_inline  # type: ignore[assignment]

from benchmarks.apps.starlette_zc_spec24 import app  # noqa: E402

__all__ = ["app"]
