"""zcmiddleware.uvicorn against real uvicorn servers on 127.0.0.1.

Every server runs the raw ASGI app in ``tests/apps/uvicorn_raw_app.py``, which
sends zerocopysend / pathsend messages as a JSON plan tells it and counts the
bytes that go through ``os.sendfile`` in the server process: each download test
asserts the exact bytes *and* that the file part of the body went by sendfile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from _servers import HOST, Server, free_port, python, run_server
from _tls import write_tls_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

MEDIUM_SIZE = 3 * 2**20 + 17  # several sendfile chunks, odd length
SPARSE_SIZE = 5 * 2**30
# Markers in the sparse file, each one just below or past a 32-bit boundary.
SPARSE_MARKS = (2**31 - 5, 2**32 - 7, 2**32 + 4093)
TIMEOUT = httpx.Timeout(15.0)

COMBOS = [
    ("HttpToolsProtocol", "asyncio"),
    ("HttpToolsProtocol", "uvloop"),
    ("H11Protocol", "asyncio"),
    ("H11Protocol", "uvloop"),
]


# --- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("zcfiles")
    (root / "medium.bin").write_bytes(os.urandom(MEDIUM_SIZE))
    (root / "one-mib.bin").write_bytes(os.urandom(2**20))
    (root / "empty.bin").write_bytes(b"")
    with open(root / "sparse-64m.bin", "wb") as f:
        f.truncate(64 * 2**20)
    with open(root / "sparse-5g.bin", "wb") as f:
        f.truncate(SPARSE_SIZE)
        for mark in SPARSE_MARKS:
            os.pwrite(f.fileno(), hashlib.sha256(str(mark).encode()).digest(), mark)
    yield root


def _uvicorn_argv(protocol: str, loop: str, port: int, *extra: str) -> list[str]:
    return python(
        "-m",
        "uvicorn",
        "apps.uvicorn_raw_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--http",
        f"zcmiddleware.uvicorn:{protocol}",
        "--loop",
        loop,
        "--no-access-log",
        *extra,
    )


@pytest.fixture(scope="module", params=COMBOS, ids=lambda combo: f"{combo[0]}-{combo[1]}")
def server(request: pytest.FixtureRequest, files: Path) -> Iterator[Server]:
    protocol, loop = request.param
    port = free_port()
    # Unclosed files or sockets in the server would print ResourceWarnings.
    env = {"ZC_TEST_FILES": str(files), "PYTHONWARNINGS": "always::ResourceWarning"}
    with run_server(_uvicorn_argv(protocol, loop, port), port=port, env=env) as srv:
        yield srv
        assert "ResourceWarning" not in srv.log()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


# --- helpers ------------------------------------------------------------------


def body_bytes(size: int, seed: int) -> bytes:
    # The same filler as apps/uvicorn_raw_app.py (not imported: importing it
    # would install its os.sendfile counter in the test process too).
    return bytes((seed + i) % 251 for i in range(size))


def sendfile_bytes(url: str, **kwargs: Any) -> int:
    response = httpx.get(f"{url}/stats", timeout=TIMEOUT, **kwargs)
    return int(response.json()["bytes"])


def plan_query(plan: dict[str, Any]) -> dict[str, str]:
    return {"p": json.dumps(plan)}


def expected_body(files: Path, plan: dict[str, Any]) -> tuple[bytes, int]:
    """The body a plan must produce, and how many of its bytes are file bytes."""
    data = (files / plan["file"]).read_bytes()
    out, from_file, position = [], 0, 0
    for part in plan["parts"]:
        if part[0] == "body":
            out.append(body_bytes(part[1], part[2]))
            continue
        if part[0] == "path":
            chunk = data
        elif part[0] == "path-range":
            chunk = data[part[1] : part[1] + part[2]]
        else:
            _, offset, count, seek = part
            if seek is not None:
                position = seek
            start = position if offset is None else offset
            stop = len(data) if count is None else start + count
            chunk = data[start:stop]
            if offset is None:
                position = start + len(chunk)
        out.append(chunk)
        from_file += len(chunk)
    return b"".join(out), from_file


def run_plan(
    client: httpx.Client, server: Server, plan: dict[str, Any], method: str = "GET"
) -> tuple[httpx.Response, int]:
    before = sendfile_bytes(server.url)
    response = client.request(method, "/plan", params=plan_query(plan))
    return response, sendfile_bytes(server.url) - before


def check_plan(client: httpx.Client, server: Server, files: Path, plan: dict[str, Any]) -> None:
    body, from_file = expected_body(files, plan)
    if plan.get("content_length") == "auto":
        plan = {**plan, "content_length": len(body)}
    response, carried = run_plan(client, server, plan)
    assert response.status_code == 200
    assert response.content == body
    if plan.get("content_length") is None:
        assert response.headers["transfer-encoding"] == "chunked"
    else:
        assert int(response.headers["content-length"]) == len(body)
    assert carried == from_file


def wait_for_fds(server: Server, baseline: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = server.open_fds()
    while count != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
        count = server.open_fds()
    return count


def settled_fds(server: Server) -> int:
    """The server's descriptor count once no client connection is open."""
    httpx.get(f"{server.url}/stats", timeout=TIMEOUT)  # warm the loop's executor etc.
    previous, count = -1, server.open_fds()
    deadline = time.monotonic() + 5
    while count != previous and time.monotonic() < deadline:
        time.sleep(0.1)
        previous, count = count, server.open_fds()
    return count


class RawConnection:
    """One keep-alive connection, parsed with h11 as a client; pipelining allowed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=15)
        self.conn = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, target: bytes, method: bytes = b"GET") -> tuple[h11.Response, bytes]:
        # The request bytes were written raw; tell h11 about them so it can
        # parse the matching response (its own output is discarded).
        host = (b"host", b"127.0.0.1")
        self.conn.send(h11.Request(method=method, target=target, headers=[host]))
        self.conn.send(h11.EndOfMessage())
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(1 << 20))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
        self.conn.start_next_cycle()
        assert response is not None
        return response, b"".join(chunks)


def request_bytes(target: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def plan_target(plan: dict[str, Any]) -> bytes:
    return ("/plan?" + httpx.QueryParams(plan_query(plan)).__str__()).encode()


# --- the scope ----------------------------------------------------------------


ADVERTISED = {
    # A start marked with it waits until its pathsend's file is open; a pathsend may
    # carry a range of its file.
    "http.response.pathsend": {
        "zcmiddleware.opens_before_start": True,
        "zcmiddleware.pathsend_range": True,
    },
    # It aborts a response whose file ends early, so the middleware need not check.
    "http.response.zerocopysend": {"zcmiddleware.aborts_short_files": True},
}


def test_scope_advertises_both_extensions(client: httpx.Client) -> None:
    assert client.get("/ext").json() == ADVERTISED


# --- exact bytes: whole files, offsets and counts ------------------------------

SINGLE_SPANS = [
    # whole file: no offset (current position 0), no count (to EOF)
    pytest.param([["zc", None, None, None]], id="whole-file"),
    # explicit offset, to EOF
    pytest.param([["zc", 1000, None, None]], id="offset-to-eof"),
    # count smaller than the file, from the current position
    pytest.param([["zc", None, 5000, None]], id="count-only"),
    # offset + count across several sendfile chunks
    pytest.param([["zc", 123457, 2_500_000, None]], id="offset-and-count"),
    # current position set by the app's seek
    pytest.param([["zc", None, 777, 4242]], id="seek-then-count"),
    pytest.param([["zc", None, None, 2_000_000]], id="seek-to-eof"),
    # two sends without offset continue where the first stopped
    pytest.param([["zc", None, 100, 50], ["zc", None, 200, None]], id="position-advances"),
    # an empty span
    pytest.param([["zc", 10, 0, None]], id="count-zero"),
    pytest.param([["path"]], id="pathsend"),
]


MIXED = [
    # body first, file last
    pytest.param([["body", 10, 1], ["zc", 5, 1000, None]], id="body-then-file"),
    # file, body, file, body: the final message is a body
    pytest.param(
        [["zc", 0, 70000, None], ["body", 3, 2], ["zc", 3_000_000, None, None], ["body", 1, 3]],
        id="interleaved",
    ),
    # empty bodies in between do not disturb the framing
    pytest.param([["body", 0, 0], ["zc", None, 4096, None], ["body", 0, 0]], id="empty-bodies"),
    # a body, then pathsend finishes the response
    pytest.param([["body", 7, 4], ["path"]], id="body-then-pathsend"),
]


# Single spans, and body messages interleaved with file messages, under both framings.
@pytest.mark.parametrize("parts", [*SINGLE_SPANS, *MIXED])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_message_sequences_exact_bytes(
    client: httpx.Client, server: Server, files: Path, parts: list[Any], framing: str
) -> None:
    content_length = "auto" if framing == "content-length" else None
    plan = {"file": "medium.bin", "content_length": content_length, "parts": parts}
    check_plan(client, server, files, plan)


@pytest.mark.parametrize("kind", ["zc", "path"])
def test_empty_file(client: httpx.Client, server: Server, files: Path, kind: str) -> None:
    part = ["zc", None, None, None] if kind == "zc" else ["path"]
    for content_length in (0, None):
        plan = {"file": "empty.bin", "content_length": content_length, "parts": [part]}
        check_plan(client, server, files, plan)


@pytest.mark.parametrize(
    ("offset", "count"),
    [pytest.param(mark, 32, id=f"marker-at-{mark}") for mark in SPARSE_MARKS]
    + [pytest.param(SPARSE_SIZE - 100, None, id="last-100-bytes-to-eof")],
)
def test_sparse_5gb_file_past_32_bit_offsets(
    client: httpx.Client, server: Server, files: Path, offset: int, count: int | None
) -> None:
    with open(files / "sparse-5g.bin", "rb") as f:
        f.seek(offset)
        want = f.read(SPARSE_SIZE - offset if count is None else count)
    parts = [["zc", offset, count, None]]
    plan = {"file": "sparse-5g.bin", "content_length": len(want), "parts": parts}
    response, carried = run_plan(client, server, plan)
    assert response.content == want
    assert carried == len(want)
    if offset in SPARSE_MARKS:
        assert want == hashlib.sha256(str(offset).encode()).digest()


@pytest.mark.parametrize("kind", ["zc", "path"])
def test_head_sends_headers_only(client: httpx.Client, server: Server, kind: str) -> None:
    part = ["zc", None, None, None] if kind == "zc" else ["path"]
    plan = {"file": "medium.bin", "content_length": MEDIUM_SIZE, "parts": [part]}
    response, carried = run_plan(client, server, plan, method="HEAD")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(MEDIUM_SIZE)
    assert response.content == b""
    assert carried == 0
    # the connection is still good for the next request
    assert client.get("/ext").status_code == 200


# --- keep-alive and pipelining ------------------------------------------------


def test_five_responses_on_one_keep_alive_connection(
    client: httpx.Client, server: Server, files: Path
) -> None:
    ports = set()
    for index in range(5):
        parts = [["zc", index * 1000, 5000 + index, None], ["body", index, index]]
        plan = {"file": "medium.bin", "content_length": None if index % 2 else "auto"}
        plan["parts"] = parts
        body, _ = expected_body(files, plan)
        if plan["content_length"] == "auto":
            plan["content_length"] = len(body)
        response = client.get("/plan", params=plan_query(plan))
        assert response.content == body
        ports.add(response.headers["x-client-port"])
    assert len(ports) == 1  # the server saw one client socket


def test_five_pipelined_requests(server: Server, files: Path) -> None:
    plans = []
    for index in range(5):
        parts: list[Any] = [["zc", index * 7, 300_000 + index, None]]
        if index == 2:
            parts = [["path"]]
        plan = {"file": "medium.bin", "parts": parts}
        body, _ = expected_body(files, plan)
        plan["content_length"] = None if index % 2 else len(body)
        plans.append((plan, body))
    targets = [plan_target(plan) for plan, _ in plans]
    connection = RawConnection(server.port)
    try:
        connection.send_raw(b"".join(request_bytes(t) for t in targets))
        ports = set()
        for target, (_, body) in zip(targets, plans, strict=True):
            response, got = connection.read_response(target)
            assert response.status_code == 200
            assert got == body
            ports.add(dict(response.headers)[b"x-client-port"])
        assert len(ports) == 1
    finally:
        connection.close()


# --- failures: short files, disconnects ----------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_file_shorter_than_count_aborts_the_connection(
    client: httpx.Client, server: Server, framing: str
) -> None:
    # 1000 bytes are left after the offset, 5000 are promised.
    parts = [["zc", MEDIUM_SIZE - 1000, 5000, None]]
    content_length = 5000 if framing == "content-length" else None
    plan = {"file": "medium.bin", "content_length": content_length, "parts": parts}
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/plan", params=plan_query(plan))
    # the server is fine for the next client
    assert httpx.get(f"{server.url}/ext", timeout=TIMEOUT).status_code == 200


# --- a start held for its pathsend (OPENS_BEFORE_START) -------------------------


#: What makes a held start's file unsendable: (Content-Length, plan parts). "auto" is
#: the file's size.
HELD_CASES: dict[str, tuple[object, list[Any]]] = {
    "missing file": ("auto", [["path", "no-such.bin"]]),
    "a directory": ("auto", [["path", "."]]),
    "size is not the Content-Length": (-1, [["path"]]),  # the size + 1
    # A range planned from the app's headers for a file that has changed size since.
    "size is not the range's": (100, [["path-range", 10, 100, 999_999_999]]),
}


@pytest.mark.parametrize(
    ("case", "content_length", "parts"), [(k, *v) for k, v in HELD_CASES.items()]
)
def test_a_held_start_whose_file_fails_is_a_clean_500(
    server: Server, files: Path, case: str, content_length: object, parts: list[Any]
) -> None:
    """The file is opened before the start's headers are written, so a file that cannot
    be sent as announced is a whole 500 on a connection that stays usable -- not a 200
    cut off after its headers."""
    size = (files / "medium.bin").stat().st_size
    if content_length == "auto":
        content_length = size
    elif content_length == -1:
        content_length = size + 1
    plan = {"file": "medium.bin", "content_length": content_length, "parts": parts,
            "opens_first": True}  # fmt: skip
    before = sendfile_bytes(server.url)
    conn = RawConnection(server.port)
    try:
        conn.send_raw(request_bytes(plan_target(plan)))
        response, body = conn.read_response(plan_target(plan))
        assert response.status_code == 500, case
        assert body == b"Internal Server Error"
        assert b"medium" not in body and b"no-such" not in body
        # The same connection goes on: the 500 was a complete response.
        conn.send_raw(request_bytes(b"/ext"))
        again, _ = conn.read_response(b"/ext")
        assert again.status_code == 200
    finally:
        conn.close()
    assert sendfile_bytes(server.url) == before
    assert "pathsend: " in server.log()


@pytest.mark.parametrize("opens_first", [True, False])
@pytest.mark.parametrize(("offset", "count"), [(0, 1), (12345, 54321), (MEDIUM_SIZE - 7, 7)])
def test_a_pathsend_range_sends_that_range_by_sendfile(
    client: httpx.Client, server: Server, files: Path, offset: int, count: int, opens_first: bool
) -> None:
    # PATHSEND_RANGE: the slice of the file, after a held start or an ordinary one.
    parts = [["path-range", offset, count, MEDIUM_SIZE]]
    plan = {"file": "medium.bin", "content_length": "auto", "parts": parts,
            "opens_first": opens_first}  # fmt: skip
    check_plan(client, server, files, plan)


def test_a_malformed_pathsend_range_is_the_apps_error(client: httpx.Client, server: Server) -> None:
    for bad in ([10, 100, 50], [-1, 5, MEDIUM_SIZE], [0, "5", MEDIUM_SIZE]):
        plan = {"file": "medium.bin", "content_length": 5, "parts": [["path-range", *bad]],
                "opens_first": True}  # fmt: skip
        response, carried = run_plan(client, server, plan)
        assert response.status_code == 500, bad
        assert carried == 0
    assert "must be ints with 0 <= offset" in server.log()


def test_a_held_start_goes_out_with_its_file(
    client: httpx.Client, server: Server, files: Path
) -> None:
    plan = {"file": "medium.bin", "content_length": MEDIUM_SIZE, "parts": [["path"]],
            "opens_first": True}  # fmt: skip
    response, carried = run_plan(client, server, plan)
    assert response.status_code == 200
    assert response.content == (files / "medium.bin").read_bytes()
    assert carried == MEDIUM_SIZE


def test_a_held_start_followed_by_a_body_goes_out_as_sent(
    client: httpx.Client, server: Server, files: Path
) -> None:
    # Marked, but what follows is no pathsend: the start is sent unchanged, then the body.
    plan = {"file": "medium.bin", "content_length": 1000, "parts": [["body", 1000, 3]],
            "opens_first": True}  # fmt: skip
    response, carried = run_plan(client, server, plan)
    assert (response.status_code, response.content) == (200, body_bytes(1000, 3))
    assert carried == 0
    head, _ = run_plan(client, server, {**plan, "parts": [["path"]]}, method="HEAD")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == "1000"


@pytest.mark.parametrize("kind", ["zc", "path"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_mid_file_releases_descriptors(
    server: Server, files: Path, kind: str, how: str
) -> None:
    baseline = settled_fds(server)
    log_before = len(server.log())
    part = ["zc", None, None, None] if kind == "zc" else ["path"]
    plan = {"file": "sparse-64m.bin", "content_length": 64 * 2**20, "parts": [part]}
    for _ in range(3):
        sock = socket.create_connection((HOST, server.port), timeout=15)
        try:
            sock.sendall(request_bytes(plan_target(plan)))
            received = 0
            while received < 256 * 1024:
                received += len(sock.recv(65536))
            if how == "reset":
                # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()
    assert wait_for_fds(server, baseline) == baseline
    assert httpx.get(f"{server.url}/ext", timeout=TIMEOUT).status_code == 200
    new_log = server.log()[log_before:]
    assert "Traceback" not in new_log
    assert "ERROR" not in new_log


async def _download(port: int, target: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    return body


def test_200_concurrent_downloads(server: Server, files: Path) -> None:
    baseline = settled_fds(server)
    plan = {"file": "one-mib.bin", "content_length": 2**20, "parts": [["zc", None, None, None]]}
    target = plan_target(plan)
    want = hashlib.sha256((files / "one-mib.bin").read_bytes()).hexdigest()
    before = sendfile_bytes(server.url)

    async def main() -> list[bytes]:
        semaphore = asyncio.Semaphore(200)

        async def one() -> bytes:
            async with semaphore:
                return await _download(server.port, target)

        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(200))), 60)

    bodies = asyncio.run(main())
    assert all(hashlib.sha256(body).hexdigest() == want for body in bodies)
    assert sendfile_bytes(server.url) - before == 200 * 2**20
    assert wait_for_fds(server, baseline) == baseline


# --- a property: any mix of body and file messages -----------------------------

_part = st.one_of(
    st.tuples(st.just("body"), st.integers(0, 3000), st.integers(0, 250)).map(list),
    st.tuples(
        st.just("zc"),
        st.one_of(st.none(), st.integers(0, MEDIUM_SIZE)),
        st.one_of(st.none(), st.integers(0, 200_000)),
        st.one_of(st.none(), st.integers(0, MEDIUM_SIZE)),
    ).map(list),
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=st.lists(_part, min_size=1, max_size=5), chunked=st.booleans())
def test_any_mix_of_messages_gives_exact_bytes(
    client: httpx.Client, server: Server, files: Path, parts: list[Any], chunked: bool
) -> None:
    # keep every span inside the file: a short file is a separate test
    fixed = []
    position = 0
    for part in parts:
        if part[0] == "zc":
            _, offset, count, seek = part
            if seek is not None:
                position = seek
            start = position if offset is None else offset
            if count is not None:
                count = min(count, MEDIUM_SIZE - start)
            part = ["zc", offset, count, seek]
            if offset is None:
                position = start + (MEDIUM_SIZE - start if count is None else count)
        fixed.append(part)
    plan = {"file": "medium.bin", "content_length": None if chunked else "auto", "parts": fixed}
    check_plan(client, server, files, plan)


# --- TLS: nothing advertised, plain uvicorn behaviour ---------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("combo", [COMBOS[1], COMBOS[2]], ids=lambda c: f"{c[0]}-{c[1]}")
def test_tls_advertises_nothing_and_downloads_are_correct(
    files: Path, tls_files: tuple[Path, Path, Path], combo: tuple[str, str]
) -> None:
    ca_path, cert_path, key_path = tls_files
    port = free_port()
    argv = _uvicorn_argv(
        *combo, port, "--ssl-certfile", str(cert_path), "--ssl-keyfile", str(key_path)
    )
    context = ssl.create_default_context(cafile=str(ca_path))
    with (
        run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}) as srv,
        httpx.Client(base_url=f"https://{HOST}:{port}", verify=context, timeout=TIMEOUT) as c,
    ):
        assert not c.get("/ext").json()
        before = sendfile_bytes(f"https://{HOST}:{port}", verify=context)
        response = c.get("/auto", params={"file": "medium.bin"})
        assert response.content == (files / "medium.bin").read_bytes()
        assert sendfile_bytes(f"https://{HOST}:{port}", verify=context) == before
        assert "Traceback" not in srv.log()


# --- how uvicorn is told to use the protocol ------------------------------------


def test_workers_cli(files: Path) -> None:
    port = free_port()
    argv = _uvicorn_argv("AutoHTTPProtocol", "auto", port, "--workers", "2")
    want = (files / "medium.bin").read_bytes()
    with (
        run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}),
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=TIMEOUT) as c,
    ):
        pids = set()
        for _ in range(8):
            # a new connection each time, so both workers get a chance
            response = httpx.get(f"http://{HOST}:{port}/stats", timeout=TIMEOUT)
            pids.add(response.json()["pid"])
            assert c.get("/ext").json() == ADVERTISED
            assert c.get("/auto", params={"file": "medium.bin"}).content == want
        assert pids  # answered by worker processes


@pytest.fixture(scope="module")
def starlette_server(files: Path) -> Iterator[Server]:
    port = free_port()
    argv = python("-m", "apps.uvicorn_starlette_app", str(port))
    with run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}) as srv:
        yield srv


def test_starlette_file_response_goes_by_pathsend_and_sendfile(
    starlette_server: Server, files: Path
) -> None:
    # started with uvicorn.run(app, http="zcmiddleware.uvicorn:AutoHTTPProtocol")
    url = starlette_server.url
    before = sendfile_bytes(url)
    response = httpx.get(f"{url}/files/medium.bin", timeout=TIMEOUT)
    assert response.content == (files / "medium.bin").read_bytes()
    assert sendfile_bytes(url) - before == MEDIUM_SIZE


def test_starlette_range_request_still_correct(starlette_server: Server, files: Path) -> None:
    # Starlette turns pathsend off for a Range and reads the file itself.
    url = starlette_server.url
    headers = {"range": "bytes=100-1099"}
    response = httpx.get(f"{url}/files/medium.bin", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 206
    assert response.content == (files / "medium.bin").read_bytes()[100:1100]


def test_zerocopy_middleware_end_to_end(files: Path) -> None:
    # Starlette FileResponse behind zcmiddleware.ZeroCopyMiddleware on our protocol:
    # the whole file and a Range both leave the server process by sendfile.
    port = free_port()
    argv = python("-m", "apps.uvicorn_starlette_app", str(port), "middleware")
    with run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}) as srv:
        data = (files / "medium.bin").read_bytes()
        before = sendfile_bytes(srv.url)
        response = httpx.get(f"{srv.url}/files/medium.bin", timeout=TIMEOUT)
        assert response.content == data
        assert response.headers["x-zerocopy-path"] in ("pathsend", "zerocopysend")
        headers = {"range": "bytes=100-1099"}
        response = httpx.get(f"{srv.url}/files/medium.bin", headers=headers, timeout=TIMEOUT)
        assert response.status_code == 206
        assert response.content == data[100:1100]
        assert response.headers["x-zerocopy-path"] == "pathsend"  # PATHSEND_RANGE
        assert sendfile_bytes(srv.url) - before == len(data) + 1000


# --- import-time behaviour ------------------------------------------------------


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )


def test_auto_protocol_falls_back_to_h11_without_httptools() -> None:
    code = (
        "import sys; sys.modules['httptools'] = None\n"
        "import zcmiddleware.uvicorn as m\n"
        "assert m.AutoHTTPProtocol is m.H11Protocol\n"
        "try:\n    m.HttpToolsProtocol\nexcept AttributeError as e:\n    print(e)\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert "needs httptools" in result.stdout


# --- pathsend of something that is not a regular file ---------------------------


def test_pathsend_of_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    # A blocking open of a FIFO with no writer would hold a worker thread forever.
    from zcmiddleware._files import NotARegularFileError
    from zcmiddleware._uvicorn_sendfile import open_path

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = len(os.listdir("/proc/self/fd"))

    async def attempt() -> None:
        with pytest.raises(NotARegularFileError, match="is not a regular file"):
            await asyncio.wait_for(open_path(str(fifo)), timeout=5)

    asyncio.run(attempt())
    assert len(os.listdir("/proc/self/fd")) == before
