"""What the hardening apps report about their own process (``GET /__hz__``)."""

from __future__ import annotations

import os


def process_stats() -> dict[str, int]:
    """This process's bytes read (``rchar``), open descriptors, RSS and peak RSS (KiB)."""
    with open("/proc/self/io") as f:
        io = dict(line.split(": ") for line in f.read().splitlines())
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines())
    return {
        "pid": os.getpid(),
        "rchar": int(io["rchar"]),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kib": int(status["VmRSS"].split()[0]),
        "hwm_kib": int(status["VmHWM"].split()[0]),
    }
