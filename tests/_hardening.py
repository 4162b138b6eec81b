"""Servers and a raw HTTP/1.1 client shared by the hardening tests.

Every kind serves ``apps/hardening_asgi_app.py`` or ``apps/hardening_wsgi_app.py``
(the same routes; ``apps/hardening_django_app.py`` for Django on ASGI): uvicorn with
``zcmiddleware.uvicorn`` (zerocopysend), stock uvicorn (the fallback), granian
(pathsend), Django through ``zcmiddleware.django`` on stock uvicorn, gunicorn sync and
gthread (gunicorn's own FileWrapper). The client speaks raw bytes over a socket so
that CR, LF, NUL and non-ASCII reach the server as sent, and reads a response exactly
as framed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _servers import HOST, Server, free_port, python, run_server

ASGI_KINDS = ["uvicorn-zerocopy", "uvicorn-stock", "granian", "django-asgi"]
WSGI_KINDS = ["gunicorn-sync", "gunicorn-gthread"]
KINDS = ASGI_KINDS + WSGI_KINDS

#: kind -> the debug header naming the path the body took
DEBUG_HEADER = {k: "x-zerocopy-path" for k in ASGI_KINDS} | {k: "x-zc-path" for k in WSGI_KINDS}


def argv(kind: str, port: int, *, workers: int = 1) -> list[str]:
    asgi, wsgi = "apps.hardening_asgi_app:app", "apps.hardening_wsgi_app:application"
    if kind == "django-asgi":  # Django on ASGI: stock uvicorn, the fallback reads
        return python(
            "-m", "uvicorn", "apps.hardening_django_app:application", "--host", HOST,
            "--port", str(port), "--no-access-log", "--workers", str(workers),
        )  # fmt: skip
    if kind.startswith("uvicorn"):
        zerocopy = kind.endswith("zerocopy")
        extra = ["--http", "zcmiddleware.uvicorn:AutoHTTPProtocol"] if zerocopy else []
        return python(
            "-m", "uvicorn", asgi, "--host", HOST, "--port", str(port), "--no-access-log",
            "--workers", str(workers), *extra,
        )  # fmt: skip
    if kind == "granian":
        granian = shutil.which("granian", path=os.path.dirname(python()[0]))
        assert granian is not None
        return [
            granian, "--interface", "asgi", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--no-ws", asgi,
        ]  # fmt: skip
    gunicorn = python(
        "-m", "gunicorn", "-c", "apps/wsgi_gunicorn_conf.py", "-b", f"{HOST}:{port}",
        "-w", str(workers), "--graceful-timeout", "5",
    )  # fmt: skip
    if kind == "gunicorn-sync":
        return [*gunicorn, "-k", "sync", wsgi]
    if kind == "gunicorn-gthread":
        return [*gunicorn, "-k", "gthread", "--threads", "8", wsgi]
    raise AssertionError(kind)


@contextlib.contextmanager
def serve(
    kind: str,
    directory: Path,
    *,
    roots: object = None,
    workers: int = 1,
    prefix: Sequence[str] = (),
) -> Iterator[Server]:
    """Run ``kind`` on ``directory``; ``prefix`` goes before its argv (``setpriv ...``)."""
    port = free_port()
    env = {"ZC_DIR": str(directory), "PYTHONWARNINGS": "always::ResourceWarning"}
    if roots is not None:
        env["ZC_ROOTS"] = json.dumps(roots)
    command = [*prefix, *argv(kind, port, workers=workers)]
    with run_server(command, port=port, env=env) as server:
        yield server


def make_directory(d: Path, files: dict[str, bytes], sparse: dict[str, int]) -> Path:
    """``d`` with ``files`` (name: bytes), sparse files (name: size) and an empty
    ``public/`` (the apps' default X-Sendfile root)."""
    for name, data in files.items():
        (d / name).write_bytes(data)
    for name, size in sparse.items():
        with open(d / name, "wb") as f:
            f.truncate(size)  # no disk used, yet every byte read counts in rchar
    (d / "public").mkdir(exist_ok=True)
    return d


def each_kind(
    request: pytest.FixtureRequest, directory: Path, **options: Any
) -> Iterator[tuple[str, Server]]:
    """The body of a module-scoped fixture with ``params=KINDS``: one running server
    per kind, whose log must show no ResourceWarning when it stops."""
    kind = str(request.param)
    with serve(kind, directory, **options) as srv:
        yield kind, srv
        # Not for Django: its ASGI handler drops a response whose client left while
        # the view ran, closed by the collector (a ResourceWarning), with or without
        # zcmiddleware (ZC_DJANGO_PLAIN=1 shows it). The middleware's own descriptors
        # are os.open ones, which warn of nothing: the descriptor counts cover them.
        log = srv.log()
        if kind != "django-asgi":
            at = max(0, log.find("ResourceWarning") - 1500)
            assert "ResourceWarning" not in log, log[at : at + 3000]


@dataclass
class Reply:
    status: int
    head: bytes  # the status line and header lines, as received
    headers: dict[str, str]  # lower-cased names; the last value of a repeated name
    body: bytes
    keep_alive: bool


class ConnectionClosed(Exception):
    """The server closed the connection before a whole response arrived."""


class RawClient:
    """One HTTP/1.1 connection; requests are bytes, responses are read as framed."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionClosed(self.buffer[:200])
        self.buffer += data

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def request(self, target: bytes, headers: bytes = b"", method: bytes = b"GET") -> Reply:
        self.sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        return self.response(head_only=method == b"HEAD")

    def response(self, head_only: bool = False, max_body: int = 1 << 31) -> Reply:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if head_only or status in (204, 304) or status < 200:
            body = b""
        elif "content-length" in headers:
            length = int(headers["content-length"])
            assert length <= max_body, (length, max_body)
            body = self._take(length)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked(max_body)
        else:  # delimited by the close
            with contextlib.suppress(ConnectionClosed):
                while len(self.buffer) <= max_body:
                    self._fill()
            body, self.buffer = self.buffer, b""
            assert len(body) <= max_body
        close = "close" in headers.get("connection", "").lower()
        return Reply(status, head, headers, body, keep_alive=not close)

    def _chunked(self, max_body: int) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            size_line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = self._take(size + 2)
            assert chunk.endswith(b"\r\n")
            body += chunk[:-2]
            assert len(body) <= max_body
            if size == 0:
                return body


class Connections:
    """Requests on one kept-alive connection, a new one whenever the server closes it
    (gunicorn sync closes after every response); each reuse is checked by the reply."""

    #: A connection idle this long is not reused: the server may close an idle
    #: connection when it likes (uvicorn after 5 s), which a loaded machine reaches.
    IDLE = 2.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.client: RawClient | None = None
        self.used = 0.0

    def request(self, target: bytes, headers: bytes = b"", method: bytes = b"GET") -> Reply:
        if self.client is not None and time.monotonic() - self.used > self.IDLE:
            self.close()
        if self.client is None:
            self.client = RawClient(self.port)
        reply = self.client.request(target, headers, method)
        self.used = time.monotonic()
        if not reply.keep_alive:
            self.close()
        return reply

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get(port: int, target: str, headers: bytes = b"") -> Reply:
    """One request on a fresh connection."""
    with RawClient(port) as client:
        return client.request(target.encode(), headers)


def stats(server: Server) -> dict[str, int]:
    """The worker's own numbers (``GET /__hz__`` on the hardening apps)."""
    result: dict[str, int] = json.loads(get(server.port, "/__hz__").body)
    return result
