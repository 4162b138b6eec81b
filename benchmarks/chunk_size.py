"""Measure the fallback path's chunk size: ``python -m benchmarks.chunk_size``.

Stock uvicorn (no zero-copy extension, so every byte goes by the fallback) serves a
256 MiB file through ZeroCopyMiddleware with each chunk size in turn; curl downloads
it; we report the median throughput over five downloads and the server's CPU time per
GiB (utime + stime from /proc), for 1 and for 8 concurrent downloads.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests._servers import free_port, python, run_server

SIZE = 256 * 1024 * 1024
CHUNKS = [16, 64, 128, 256, 512, 1024, 4096]  # KiB
RUNS = 5


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def download(url: str, parallel: int) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", url]) for _ in range(parallel)]
    for p in procs:
        assert p.wait() == 0
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "data.bin").write_bytes(os.urandom(SIZE))
        print("chunk KiB | 1 stream MiB/s | CPU s/GiB | 8 streams MiB/s | CPU s/GiB")
        for kib in CHUNKS:
            port = free_port()
            env = {"ZC_DIR": directory, "ZC_CHUNK_SIZE": str(kib * 1024)}
            argv = python(
                "-m",
                "uvicorn",
                "apps.asgi_app:app",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
            )
            with run_server(argv, port=port, env=env) as server:
                url = f"{server.url}/download"
                download(url, 1)  # warm the page cache and the server
                row = [f"{kib:>9}"]
                for parallel in (1, 8):
                    cpu0 = cpu_seconds(server.pid)
                    times = [download(url, parallel) for _ in range(RUNS)]
                    cpu = cpu_seconds(server.pid) - cpu0
                    gib = RUNS * parallel * SIZE / 2**30
                    rate = parallel * SIZE / 2**20 / statistics.median(times)
                    row += [f"{rate:>14.0f}", f"{cpu / gib:>9.2f}"]
                print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
