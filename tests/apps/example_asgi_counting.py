"""``examples/starlette_app.py`` as tests/test_real_clients.py serves it, counted.

Importing it wraps ``os.sendfile`` (which ``zcmiddleware.uvicorn`` looks up on every
call) and ``os.pread`` (the middleware's fallback reads) in this server process, and
``GET /__zc_stats`` answers the totals as JSON (``?reset`` zeroes them after reading),
as ``tests/apps/wsgi_gunicorn_conf.py`` does for gunicorn.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from starlette_app import app as example_app  # noqa: E402

totals = {"sendfile": 0, "sendfile_calls": 0, "pread": 0}
_real_sendfile = os.sendfile
_real_pread = os.pread


def _counting_sendfile(out_fd: int, in_fd: int, offset: Any, count: int) -> int:
    sent = _real_sendfile(out_fd, in_fd, offset, count)
    totals["sendfile"] += sent
    totals["sendfile_calls"] += 1
    return sent


def _counting_pread(fd: int, n: int, offset: int) -> bytes:
    data = _real_pread(fd, n, offset)
    totals["pread"] += len(data)
    return data


os.sendfile = _counting_sendfile  # type: ignore[assignment]
os.pread = _counting_pread


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http" or scope["path"] != "/__zc_stats":
        await example_app(scope, receive, send)
        return
    body = json.dumps(totals).encode()
    if b"reset" in scope["query_string"]:
        for key in totals:
            totals[key] = 0
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
