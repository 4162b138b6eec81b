"""The apps the benchmark servers load.

Every app serves ``GET /files/{name}`` from the directory named by the
``ZC_BENCH_FILES`` environment variable, and only the names listed in
:data:`NAMES`, so no request can leave that directory.
"""

from __future__ import annotations

import os
from pathlib import Path

NAMES = frozenset({"1g.bin", "64m.bin", "64k.bin", "4k.bin"})


def files_dir() -> Path:
    """The directory holding the benchmark files (set by the harness)."""
    return Path(os.environ["ZC_BENCH_FILES"])


def resolve(name: str) -> Path | None:
    """The path of benchmark file ``name``, or ``None`` if it is not one."""
    return files_dir() / name if name in NAMES else None
