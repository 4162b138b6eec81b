"""In-process fake servers: one app, driven ``N`` times, for the instruction counts.

``python -m benchmarks._inproc CASE N [--warmup W] [--profile]`` builds the case's
app, checks one response's bytes against the file, runs ``W`` requests, then ``N``
more, and prints what the last response was (status, message types). Run under
callgrind with ``N`` and ``2 N`` by :mod:`benchmarks.instructions`: the difference
is ``N`` requests, start-up and warm-up cancel out.

The servers do what a server must, cheaply, and the same for the plain app and the
middleware: a scope (ASGI) or an environ (WSGI) built fresh per request, as uvicorn
and gunicorn build theirs; nothing done with the file's bytes on the zero-copy paths
(``http.response.pathsend``, ``http.response.zerocopysend``, gunicorn's
``FileWrapper``: only the ``lseek`` and ``fileno`` gunicorn itself does). The ASGI
loop is the standard library's asyncio, so worker-thread hops are real threads.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib
import io
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

if __package__ in (None, ""):  # run as ``python benchmarks/_inproc.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"
ABORTS_SHORT_FILES = "zcmiddleware.aborts_short_files"
OPENS_BEFORE_START = "zcmiddleware.opens_before_start"
PATHSEND_RANGE = "zcmiddleware.pathsend_range"
FILE_NAME = "4k.bin"
FILE_SIZE = 4096
#: The single range of the range cases: 1 KiB from inside the file.
RANGE = (1000, 2024)

Server = Literal["pathsend", "zerocopysend", "zerocopysend-aborts", "neither", "gunicorn"]

#: What the fake ASGI servers put in ``scope["extensions"]``.
_EXTENSIONS: dict[str, Callable[[], dict[str, Any]]] = {
    "pathsend": lambda: {PATHSEND: {}},
    "zerocopysend": lambda: {ZEROCOPYSEND: {}, PATHSEND: {}},
    # What zcmiddleware.uvicorn offers. Like every pathsend here, the fake does not
    # open the file, with or without the start marked OPENS_BEFORE_START.
    "zerocopysend-aborts": lambda: {
        ZEROCOPYSEND: {ABORTS_SHORT_FILES: True},
        PATHSEND: {OPENS_BEFORE_START: True, PATHSEND_RANGE: True},
    },
    "neither": dict,
}


@dataclass(frozen=True)
class Case:
    name: str
    #: "module:attribute" of the app, from benchmarks/apps/.
    app: str
    server: Server
    ranged: bool = False

    @property
    def middleware(self) -> bool:
        return "_zc:" in self.app


_STARLETTE = "benchmarks.apps.starlette_plain:app"
_STARLETTE_ZC = "benchmarks.apps.starlette_zc:app"
_LAYERS = "benchmarks.apps.starlette_layers:"
_FLASK = "benchmarks.apps.flask_plain:app"
_FLASK_ZC = "benchmarks.apps.flask_zc:app"
_DJANGO = "benchmarks.apps.django_plain:application"
_DJANGO_ZC = "benchmarks.apps.django_zc:application"

CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("starlette-pathsend", _STARLETTE, "pathsend"),
        # The cheapest layers a middleware can be (benchmarks/apps/starlette_layers.py).
        Case("starlette-passthrough-pathsend", _LAYERS + "passthrough_app", "pathsend"),
        Case("starlette-holding-pathsend", _LAYERS + "holding_app", "pathsend"),
        Case("starlette-zc-pathsend", _STARLETTE_ZC, "pathsend"),
        Case("starlette-zc-pathsend-range", _STARLETTE_ZC, "pathsend", ranged=True),
        Case("starlette-zc-zerocopysend", _STARLETTE_ZC, "zerocopysend"),
        Case("starlette-zc-zerocopysend-range", _STARLETTE_ZC, "zerocopysend", ranged=True),
        Case("starlette-zc-zerocopysend-aborts", _STARLETTE_ZC, "zerocopysend-aborts"),
        Case(
            "starlette-zc-zerocopysend-aborts-range",
            _STARLETTE_ZC,
            "zerocopysend-aborts",
            ranged=True,
        ),
        Case("starlette-neither", _STARLETTE, "neither"),
        Case("starlette-zc-neither", _STARLETTE_ZC, "neither"),
        Case("starlette-zc-neither-range", _STARLETTE_ZC, "neither", ranged=True),
        Case("flask-gunicorn", _FLASK, "gunicorn"),
        Case("flask-zc-gunicorn", _FLASK_ZC, "gunicorn"),
        Case("flask-zc-gunicorn-range", _FLASK_ZC, "gunicorn", ranged=True),
        Case("django-gunicorn", _DJANGO, "gunicorn"),
        Case("django-zc-gunicorn", _DJANGO_ZC, "gunicorn"),
        Case("django-zc-gunicorn-range", _DJANGO_ZC, "gunicorn", ranged=True),
    )
}

#: Request headers of every request: what curl sends, plus Accept-Encoding.
_HEADERS = (
    ("host", "127.0.0.1:8000"),
    ("user-agent", "curl/7.88.1"),
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate"),
)


def _range_header() -> str:
    return f"bytes={RANGE[0]}-{RANGE[1] - 1}"


def load_app(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------- ASGI


class FakeASGIServer:
    """A server side of one connection at a time: a fresh scope per request, a
    ``receive`` that gives the (empty) request body and then waits, a ``send`` that
    keeps the last response's messages and does nothing with file bytes."""

    def __init__(self, server: Server, ranged: bool) -> None:
        self.server = server
        headers = list(_HEADERS) + ([("range", _range_header())] if ranged else [])
        self.raw_headers = [(k.encode(), v.encode()) for k, v in headers]
        self.messages: list[dict[str, Any]] = []

    def scope(self) -> dict[str, Any]:
        # As uvicorn's httptools protocol builds it (spec_version included).
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "GET",
            "root_path": "",
            "path": f"/files/{FILE_NAME}",
            "raw_path": f"/files/{FILE_NAME}".encode(),
            "query_string": b"",
            "headers": list(self.raw_headers),
            "state": {},
            "extensions": _EXTENSIONS[self.server](),
        }

    async def request(self, app: Any) -> None:
        self.messages = []
        received = False
        gone = asyncio.Event()  # never set: the client stays

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            self.messages.append(message)
            if self.keep:
                self._resolve(message)

        await app(self.scope(), receive, send)

    keep = False
    status = 0
    body = b""

    def _resolve(self, m: dict[str, Any]) -> None:
        # While the file is still open: the middleware closes it when it returns.
        kind = m["type"]
        if kind == "http.response.start":
            self.status = m["status"]
        elif kind == "http.response.body":
            self.body += m.get("body", b"")
        elif kind == PATHSEND:
            data = Path(m["path"]).read_bytes()
            offset, count, _ = m.get(PATHSEND_RANGE, (0, len(data), None))
            self.body += data[offset : offset + count]
        elif kind == ZEROCOPYSEND:
            self.body += os.pread(m["file"].fileno(), m["count"], m["offset"])

    async def response(self, app: Any) -> tuple[int, bytes]:
        """One request with its status and body bytes kept, file messages resolved."""
        self.keep, self.status, self.body = True, 0, b""
        try:
            await self.request(app)
        finally:
            self.keep = False
        return self.status, self.body

    def kinds(self) -> list[str]:
        return [m["type"] for m in self.messages]


async def _run_asgi(case: Case, warmup: int, n: int, profile: bool) -> FakeASGIServer:
    app = load_app(case.app)
    server = FakeASGIServer(case.server, case.ranged)
    _check(case, *(await server.response(app)))
    for _ in range(warmup):
        await server.request(app)
    _settle()
    if profile:
        import cProfile

        with cProfile.Profile() as prof:
            for _ in range(n):
                await server.request(app)
        _print_profile(prof, n)
    else:
        for _ in range(n):
            await server.request(app)
    return server


# --------------------------------------------------------------------------- WSGI


def _gunicorn_file_wrapper() -> type:
    from gunicorn.http.wsgi import FileWrapper

    return FileWrapper


class FakeWSGIServer:
    """gunicorn's side of one request: an environ with gunicorn's keys, built per
    request; for an instance of its ``FileWrapper`` only ``fileno`` and ``lseek``
    (gunicorn would sendfile from there); any other body iterated."""

    def __init__(self, ranged: bool) -> None:
        self.file_wrapper = _gunicorn_file_wrapper()
        headers = list(_HEADERS) + ([("range", _range_header())] if ranged else [])
        self.headers = [(k.upper(), v) for k, v in headers]
        self.errors = sys.stderr
        self.status = ""
        self.body = b""
        self.sent = ""

    def environ(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "wsgi.errors": self.errors,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": self.file_wrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": "gunicorn/23.0.0",
            "wsgi.input": io.BytesIO(),
            "gunicorn.socket": None,
            "REQUEST_METHOD": "GET",
            "QUERY_STRING": "",
            "RAW_URI": f"/files/{FILE_NAME}",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for name, value in self.headers:
            env["HTTP_" + name.replace("-", "_")] = value
        env["wsgi.url_scheme"] = "http"
        env["REMOTE_ADDR"] = "127.0.0.1"
        env["REMOTE_PORT"] = "50000"
        env["SERVER_NAME"] = "127.0.0.1"
        env["SERVER_PORT"] = "8000"
        env["PATH_INFO"] = f"/files/{FILE_NAME}"
        env["SCRIPT_NAME"] = ""
        return env

    def request(self, app: Any) -> None:
        response_length: list[int | None] = [None]

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: object = None
        ) -> Callable[[bytes], None]:
            self.status = status
            for name, value in headers:
                if name.lower() == "content-length":
                    response_length[0] = int(value)
            return self._write

        self.body = b""
        result: Iterable[bytes] = app(self.environ(), start_response)
        try:
            if isinstance(result, self.file_wrapper):
                # Response.sendfile: the descriptor, its position, and Content-Length.
                fd = result.filelike.fileno()
                offset = os.lseek(fd, 0, os.SEEK_CUR)
                count = response_length[0]
                if count is None:
                    count = os.fstat(fd).st_size - offset
                self.sent = "sendfile"
                self.body = os.pread(fd, count, offset) if self._keep else b""
            else:
                self.sent = "iterated"
                for chunk in result:
                    if self._keep:
                        self.body += chunk
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    _keep = False

    def _write(self, data: bytes) -> None:
        self.body += data

    def response(self, app: Any) -> tuple[int, bytes]:
        self._keep = True
        try:
            self.request(app)
        finally:
            self._keep = False
        return int(self.status[:3]), self.body


def _run_wsgi(case: Case, warmup: int, n: int, profile: bool) -> FakeWSGIServer:
    app = load_app(case.app)
    server = FakeWSGIServer(case.ranged)
    _check(case, *server.response(app))
    for _ in range(warmup):
        server.request(app)
    _settle()
    if profile:
        import cProfile

        with cProfile.Profile() as prof:
            for _ in range(n):
                server.request(app)
        _print_profile(prof, n)
    else:
        for _ in range(n):
            server.request(app)
    return server


# ------------------------------------------------------------------------- common


def _expected(case: Case) -> tuple[int, bytes]:
    data = (Path(os.environ["ZC_BENCH_FILES"]) / FILE_NAME).read_bytes()
    if case.ranged:
        return 206, data[RANGE[0] : RANGE[1]]
    return 200, data


def _check(case: Case, status: int, body: bytes) -> None:
    want_status, want = _expected(case)
    if case.ranged and not case.middleware:
        raise SystemExit(f"{case.name}: range cases are for the middleware")
    if status != want_status or hashlib.sha256(body).digest() != hashlib.sha256(want).digest():
        raise SystemExit(
            f"{case.name}: wrong response: {status}, {len(body)} bytes "
            f"(expected {want_status}, {len(want)} bytes of the file)"
        )


def _settle() -> None:
    """Collect, then freeze what is left, before the counted requests.

    Without this the count depends on where CPython's full collections fall: one full
    collection scans the framework's whole heap (about 12 M instructions for Django),
    and whether the last ``N`` of ``2 N`` requests hold one depends on the generation
    counters' phase, not on the code (30 k per request when it lands in the window).
    Frozen, the start-up heap is not scanned again, as in a server that calls
    ``gc.freeze()`` before it forks its workers; the collections the requests' own
    objects cause are still counted, the same way for both sides of a ratio.
    """
    gc.collect()
    gc.freeze()


def _print_profile(prof: Any, n: int) -> None:
    import pstats

    stats = pstats.Stats(prof, stream=sys.stdout)
    print(f"PROFILE {n} requests: the top functions, then the middleware's own")
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats("zcmiddleware/", 30)


def write_file(directory: Path) -> Path:
    """The 4 KiB file the cases serve (deterministic bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    data = hashlib.sha256(b"zcmiddleware-instructions").digest() * (FILE_SIZE // 32)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


_LAYOUT: list[str] = []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks._inproc")
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("n", type=int)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--profile", action="store_true", help="cProfile the N requests")
    p.add_argument(
        "--layout",
        type=int,
        default=0,
        help="allocate this many small objects before the app is imported: another "
        "memory layout of the same code (benchmarks/instructions.py)",
    )
    args = p.parse_args(argv)
    global _LAYOUT
    _LAYOUT = [str(i) * 3 for i in range(args.layout)]  # alive to the end
    case = CASES[args.case]
    if case.server == "gunicorn":
        wsgi = _run_wsgi(case, args.warmup, args.n, args.profile)
        print(f"RESULT {case.name} status={wsgi.status[:3]} body={wsgi.sent}")
    else:
        asgi = asyncio.run(_run_asgi(case, args.warmup, args.n, args.profile))
        start = asgi.messages[0] if asgi.messages else {}
        print(f"RESULT {case.name} status={start.get('status')} messages={','.join(asgi.kinds())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
