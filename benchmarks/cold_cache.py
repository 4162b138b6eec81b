"""Measure what a cold-cache sendfile costs other requests on the same loop.

Not a test: a probe whose numbers are in docs/uvicorn.md. It starts one uvicorn
worker (zcmiddleware.uvicorn:HttpToolsProtocol) serving apps.uvicorn_raw_app,
then, while one client downloads a large file by zerocopysend, a second client
times small keep-alive requests (``GET /ext``) on another connection.

The file's pages are dropped from the page cache with
``posix_fadvise(POSIX_FADV_DONTNEED)`` after an fsync (``/proc/sys/vm/drop_caches``
is not writable here), so the first download reads from disk inside sendfile(2)
on the loop thread; the "warm" run repeats it with the pages cached.

    python -m benchmarks.cold_cache --loop uvloop --chunk 1048576
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests._servers import HOST, free_port, python, run_server


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def download(port: int, target: bytes, result: dict[str, float]) -> None:
    start = time.perf_counter()
    with socket.create_connection((HOST, port)) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        total = 0
        while chunk := s.recv(1 << 20):
            total += len(chunk)
    result["seconds"] = time.perf_counter() - start
    result["bytes"] = total


def small_requests(port: int, stop: threading.Event, latencies: list[float]) -> None:
    request = b"GET /ext HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((HOST, port)) as s:
        while not stop.is_set():
            start = time.perf_counter()
            s.sendall(request)
            data = b""
            while not data.endswith(b"]"):  # the JSON list ends the body
                data += s.recv(65536)
            latencies.append(time.perf_counter() - start)
            time.sleep(0.001)


def summary(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    if not ms:
        return "no samples"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"n={len(ms)} p50={statistics.median(ms):.2f}ms p99={p99:.2f}ms max={ms[-1]:.2f}ms"


def run(port: int, name: str, size: int, cold: bool, path: Path) -> None:
    if cold:
        drop_cache(path)
    import json
    import urllib.parse

    plan = {"file": name, "content_length": size, "parts": [["zc", None, None, None]]}
    target = ("/plan?p=" + urllib.parse.quote(json.dumps(plan))).encode()
    stop, latencies, result = threading.Event(), [], {}
    poller = threading.Thread(target=small_requests, args=(port, stop, latencies))
    poller.start()
    time.sleep(0.3)
    idle = len(latencies)
    downloader = threading.Thread(target=download, args=(port, target, result))
    downloader.start()
    downloader.join()
    stop.set()
    poller.join()
    during = latencies[idle:]
    mib_s = result["bytes"] / result["seconds"] / 2**20
    label = "cold" if cold else "warm"
    print(f"  {label}: download {result['seconds']:.2f}s ({mib_s:.0f} MiB/s)")
    print(f"  {label}: small requests idle      {summary(latencies[:idle])}")
    print(f"  {label}: small requests during    {summary(during)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--chunk", type=int, default=1 << 20)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        make_file(path, size)
        port = free_port()
        timings = Path(tmp) / "timings.txt"
        # The server times every os.sendfile call (the time the loop thread is
        # blocked in it) and appends "seconds bytes" lines to a file.
        code = (
            "import os, time, uvicorn, zcmiddleware._uvicorn_sendfile as s\n"
            "import apps.uvicorn_raw_app\n"
            f"s.MAX_CHUNK = {args.chunk}\n"
            f"out = os.open({str(timings)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND)\n"
            "inner = os.sendfile\n"
            "def timed(*a):\n"
            "    t = time.perf_counter(); n = inner(*a)\n"
            "    os.write(out, b'%f %d\\n' % (time.perf_counter() - t, n)); return n\n"
            "os.sendfile = timed\n"
            "uvicorn.run('apps.uvicorn_raw_app:app', host='127.0.0.1', "
            f"port={port}, loop={args.loop!r}, access_log=False, "
            "http='zcmiddleware.uvicorn:HttpToolsProtocol')\n"
        )
        print(f"loop={args.loop} chunk={args.chunk} file={args.size_mib} MiB")
        with run_server(python("-c", code), port=port, env={"ZC_TEST_FILES": tmp}):
            for cold in (True, False):
                seen = len(timings.read_text().splitlines()) if timings.exists() else 0
                run(port, "big.bin", size, cold=cold, path=path)
                lines = timings.read_text().splitlines()[seen:]
                ms = sorted(float(line.split()[0]) * 1000 for line in lines)
                p99 = ms[int(len(ms) * 0.99)]
                print(
                    f"  {'cold' if cold else 'warm'}: sendfile calls n={len(ms)} "
                    f"p50={statistics.median(ms):.2f}ms p99={p99:.2f}ms max={ms[-1]:.2f}ms"
                )
        subprocess.run(["sync"], check=False)


if __name__ == "__main__":
    main()
