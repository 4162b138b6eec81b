"""Shared by the ASGI examples: serving on uvicorn, and the ``--demo`` self-check."""

from __future__ import annotations

import socket
import sys
import threading
import time
import urllib.request
from typing import Any

import uvicorn

#: uvicorn's stock protocols offer no zero-copy extension; zcmiddleware's add one.
try:
    import zcmiddleware.uvicorn  # noqa: F401

    HTTP = "zcmiddleware.uvicorn:AutoHTTPProtocol"
except ImportError as exc:  # still correct, by the fallback; say why it is not zero-copy
    print(f"zcmiddleware.uvicorn not used, files go by the fallback: {exc}", file=sys.stderr)
    HTTP = "auto"


def serve(app: Any, port: int = 8000) -> None:
    uvicorn.run(app, host="127.0.0.1", port=port, http=HTTP)


def demo(app: Any, path: str) -> None:
    """Serve ``app`` on a free port, download ``/download`` three ways, check every byte."""
    with open(path, "rb") as f:
        data = f.read()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=HTTP, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/download"
    cases = [
        ("whole file", None, data),
        ("one range", "bytes=1000-1999999", data[1000:2000000]),
        ("two ranges", "bytes=0-99,4000000-4999999", None),
    ]
    ok = True
    for label, range_header, expected in cases:
        request = urllib.request.Request(url)
        if range_header:
            request.add_header("Range", range_header)
        with urllib.request.urlopen(request) as response:
            body = response.read()
            status, headers = response.status, response.headers
        if expected is None:  # multipart: each part's bytes must be the file's
            good = body.count(data[:100]) == 1 and body.count(data[4000000:5000000]) == 1
        else:
            good = body == expected
        ok = ok and good
        print(
            f"{label:>10}: {status}, {len(body):>8} bytes, "
            f"{'bytes OK' if good else 'BYTES WRONG'}, via {headers['X-ZeroCopy-Path']}"
        )
    server.should_exit = True
    thread.join()
    raise SystemExit(0 if ok else 1)
