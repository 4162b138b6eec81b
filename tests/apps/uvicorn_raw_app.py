"""Raw ASGI app for tests/test_uvicorn_protocol.py; runs inside the uvicorn server.

It sends zerocopysend / pathsend messages directly, following a JSON "plan"
from the query string, and counts every byte that goes through ``os.sendfile``
in this process (``GET /stats``), which is how the tests prove the zero-copy
path was taken.

Files are looked up by name in the directory named by ``ZC_TEST_FILES``.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs

_real_sendfile = os.sendfile
STATS = {"bytes": 0, "calls": 0}


def _counting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
    sent = _real_sendfile(out_fd, in_fd, offset, count)
    STATS["bytes"] += sent
    STATS["calls"] += 1
    return sent


os.sendfile = _counting_sendfile  # type: ignore[assignment]

FILES = os.environ.get("ZC_TEST_FILES", "")


def body_bytes(size: int, seed: int) -> bytes:
    """Deterministic filler for body parts (the tests compute the same)."""
    return bytes((seed + i) % 251 for i in range(size))


async def _json(send: Any, payload: Any, scope: Any) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"x-client-port", str(scope["client"][1]).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _drain(receive: Any) -> None:
    message = await receive()
    while message["type"] == "http.request" and message.get("more_body"):
        message = await receive()


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    await _drain(receive)
    query = parse_qs(scope["query_string"].decode())
    path = scope["path"]
    if path == "/stats":
        await _json(send, {**STATS, "pid": os.getpid()}, scope)
    elif path == "/ext":
        await _json(send, scope.get("extensions"), scope)
    elif path == "/auto":
        await _auto(scope, send, query["file"][0])
    elif path == "/plan":
        await _plan(scope, send, json.loads(query["p"][0]))
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})


async def _auto(scope: Any, send: Any, name: str) -> None:
    """The whole file: zero-copy when the server offers it, else as body bytes."""
    full = os.path.join(FILES, name)
    size = await asyncio.to_thread(os.path.getsize, full)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(size).encode())],
        }
    )
    file = await asyncio.to_thread(open, full, "rb")
    with file:
        if "http.response.zerocopysend" in scope.get("extensions", {}):
            await send({"type": "http.response.zerocopysend", "file": file})
        else:
            await send({"type": "http.response.body", "body": file.read()})


async def _plan(scope: Any, send: Any, plan: dict[str, Any]) -> None:
    """Run a plan: {"file", "content_length" (int or null = chunked), "parts"}.

    Parts: ["body", size, seed] | ["zc", offset, count, seek] | ["path"] (plan["file"])
    | ["path", name] (another file, maybe missing) | ["path-range", offset, count, size]
    (PATHSEND_RANGE of plan["file"]); every part but the last carries
    more_body=True. "opens_first": true marks the start OPENS_BEFORE_START.
    """
    headers = [(b"x-client-port", str(scope["client"][1]).encode())]
    if plan.get("content_length") is not None:
        headers.append((b"content-length", str(plan["content_length"]).encode()))
    start: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": headers}
    if plan.get("opens_first"):
        start["zcmiddleware.opens_before_start"] = True
    await send(start)
    full = os.path.join(FILES, plan["file"])
    parts = plan["parts"]
    file = await asyncio.to_thread(open, full, "rb")
    with file:
        for index, part in enumerate(parts):
            more_body = index < len(parts) - 1
            kind = part[0]
            if kind == "body":
                body = body_bytes(part[1], part[2])
                await send({"type": "http.response.body", "body": body, "more_body": more_body})
            elif kind == "zc":
                _, offset, count, seek = part
                if seek is not None:
                    file.seek(seek)
                message: dict[str, Any] = {
                    "type": "http.response.zerocopysend",
                    "file": file,
                    "more_body": more_body,
                }
                if offset is not None:
                    message["offset"] = offset
                if count is not None:
                    message["count"] = count
                await send(message)
            elif kind == "path":
                named = os.path.join(FILES, part[1]) if len(part) > 1 else full
                await send({"type": "http.response.pathsend", "path": named})
            elif kind == "path-range":
                _, offset, count, size = part
                await send(
                    {
                        "type": "http.response.pathsend",
                        "path": full,
                        "zcmiddleware.pathsend_range": (offset, count, size),
                    }
                )
            else:
                raise ValueError(f"unknown plan part {part!r}")
