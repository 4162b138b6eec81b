"""gunicorn workers that give ASGI apps zero-copy: ``zcmiddleware.gunicorn.ASGIWorker``
(gunicorn's native ``-k asgi`` worker plus zerocopysend and pathsend) and
``zcmiddleware.uvicorn.UvicornWorker`` (uvicorn-worker's, with our protocol classes).

The app is ``tests/apps/uvicorn_starlette_app.py``: Starlette ``FileResponse`` with or
without ``ZeroCopyMiddleware``; importing it installs an ``os.sendfile`` byte counter
in the worker process (``GET /stats``), which is how the path is proven. The raw
app and its plan runner are those of tests/test_uvicorn_protocol.py.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import test_uvicorn_protocol
from _servers import HOST, Server, free_port, python, run_server
from _tls import write_tls_files
from apps.asgi_support import parse_byteranges
from test_uvicorn_protocol import HELD_CASES, check_plan, plan_query

pytestmark = pytest.mark.integration

SIZE = 3 * 2**20 + 17
TIMEOUT = httpx.Timeout(20.0)
ZC_WORKER = "zcmiddleware.gunicorn.ASGIWorker"
UVICORN_WORKER = "zcmiddleware.uvicorn.UvicornWorker"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gunicorn-files")
    (root / "medium.bin").write_bytes(os.urandom(SIZE))
    return root


def _gunicorn(worker: str, port: int, app: str, *extra: str) -> list[str]:
    target = f"apps.uvicorn_starlette_app:{app}"
    return python("-m", "gunicorn", "-k", worker, "-b", f"{HOST}:{port}", *extra, target)


@pytest.fixture(scope="module", params=[ZC_WORKER, UVICORN_WORKER])
def server(request: pytest.FixtureRequest, files: Path) -> Iterator[Server]:
    port = free_port()
    argv = _gunicorn(str(request.param), port, "wrapped")
    with run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}) as srv:
        yield srv


def sendfile_bytes(url: str, **kwargs: object) -> int:
    return int(httpx.get(f"{url}/stats", timeout=TIMEOUT, **kwargs).json()["bytes"])  # type: ignore[arg-type]


def test_middleware_downloads_go_by_sendfile(server: Server, files: Path) -> None:
    data = (files / "medium.bin").read_bytes()
    url = f"{server.url}/files/medium.bin"
    before = sendfile_bytes(server.url)
    with httpx.Client(timeout=TIMEOUT) as c:
        whole = c.get(url)
        assert whole.status_code == 200 and whole.content == data
        one = c.get(url, headers={"range": "bytes=100-1099"})
        assert one.status_code == 206 and one.content == data[100:1100]
        many = c.get(url, headers={"range": "bytes=0-9,2000000-2999999,-7"})
        assert many.status_code == 206
    assert parse_byteranges(many.headers["content-type"], many.content) == [
        (f"bytes 0-9/{SIZE}", data[:10]),
        (f"bytes 2000000-2999999/{SIZE}", data[2000000:3000000]),
        (f"bytes {SIZE - 7}-{SIZE - 1}/{SIZE}", data[-7:]),
    ]
    # Both workers open a pathsend's file before the start (OPENS_BEFORE_START) and take
    # a range of it (PATHSEND_RANGE), so a whole file and a lone range go by path,
    # planned from the app's headers; several ranges by zerocopysend. All sendfile(2).
    assert whole.headers["x-zerocopy-path"] == "pathsend"
    assert one.headers["x-zerocopy-path"] == "pathsend"
    assert many.headers["x-zerocopy-path"] == "zerocopysend"
    assert sendfile_bytes(server.url) - before == SIZE + 1000 + 10 + 1000000 + 7


def test_head_304_and_416_send_no_file_bytes(server: Server) -> None:
    url = f"{server.url}/files/medium.bin"
    before = sendfile_bytes(server.url)
    with httpx.Client(timeout=TIMEOUT) as c:
        head = c.head(url, headers={"range": "bytes=0-9"})
        assert (head.status_code, head.content, head.headers["content-length"]) == (206, b"", "10")
        etag = head.headers["etag"]
        not_modified = c.get(url, headers={"if-none-match": etag})
        assert (not_modified.status_code, not_modified.content) == (304, b"")
        unsatisfiable = c.get(url, headers={"range": f"bytes={SIZE}-"})
        assert (unsatisfiable.status_code, unsatisfiable.content) == (416, b"")
    assert sendfile_bytes(server.url) == before


def test_file_responses_keep_the_connection_alive(server: Server, files: Path) -> None:
    # gunicorn closes a connection whose body fell short of its Content-Length:
    # the file bytes must count as the body for it to keep this one open.
    data = (files / "medium.bin").read_bytes()
    conn = http.client.HTTPConnection(HOST, server.port, timeout=20)
    try:
        sockets = set()
        for start in range(0, 5000, 1000):
            conn.request("GET", "/files/medium.bin", headers={"range": f"bytes={start}-"})
            response = conn.getresponse()
            assert response.status == 206
            assert response.read() == data[start:]
            assert not response.will_close
            sockets.add(id(conn.sock))
        assert len(sockets) == 1
    finally:
        conn.close()


def test_plain_file_response_goes_by_pathsend_and_sendfile(files: Path) -> None:
    # No middleware: Starlette sees pathsend offered and sends the path.
    port = free_port()
    argv = _gunicorn(ZC_WORKER, port, "app")
    with run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}) as srv:
        before = sendfile_bytes(srv.url)
        response = httpx.get(f"{srv.url}/files/medium.bin", timeout=TIMEOUT)
        assert response.content == (files / "medium.bin").read_bytes()
        assert sendfile_bytes(srv.url) - before == SIZE


def test_disconnect_mid_file_leaks_no_descriptor(server: Server) -> None:
    worker = server.children()[0]
    httpx.get(f"{server.url}/files/medium.bin", timeout=TIMEOUT)  # warm up
    before = server.open_fds(worker)
    for extra in (b"", b"Range: bytes=10-\r\n") * 2:
        with socket.create_connection((HOST, server.port)) as sock:
            sock.sendall(b"GET /files/medium.bin HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
            sock.recv(65536)  # the headers and the start of the body, then hang up
    deadline = time.monotonic() + 10
    while server.open_fds(worker) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.open_fds(worker) <= before
    response = httpx.get(f"{server.url}/files/medium.bin", timeout=TIMEOUT)
    assert len(response.content) == SIZE  # still serving


def test_tls_offers_nothing_and_downloads_are_correct(files: Path, tmp_path: Path) -> None:
    ca_path, cert_path, key_path = write_tls_files(tmp_path)
    port = free_port()
    tls = ("--certfile", str(cert_path), "--keyfile", str(key_path))
    argv = _gunicorn(ZC_WORKER, port, "wrapped", *tls)
    with run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}):
        url = f"https://{HOST}:{port}"
        context = ssl.create_default_context(cafile=str(ca_path))
        before = sendfile_bytes(url, verify=context)
        with httpx.Client(verify=context, timeout=TIMEOUT) as c:
            response = c.get(f"{url}/files/medium.bin", headers={"range": "bytes=5-"})
        assert response.status_code == 206
        assert response.content == (files / "medium.bin").read_bytes()[5:]
        assert response.headers["x-zerocopy-path"] == "fallback"
        assert sendfile_bytes(url, verify=context) == before


# --- any mix of messages, from a raw ASGI app -------------------------------------

PLANS = {
    "body and spans, Content-Length": {
        "content_length": "auto",
        "parts": [["body", 100, 1], ["zc", 10, 5000, None], ["body", 7, 2], ["zc", None, None, 9]],
    },
    "body and spans, chunked": {
        "content_length": None,
        "parts": [["zc", 0, 0, None], ["zc", 3, 70000, None], ["body", 5, 3], ["zc", 1, 9, None]],
    },
    "pathsend": {"content_length": "auto", "parts": [["path"]]},
}


@pytest.fixture(scope="module")
def raw_server(files: Path) -> Iterator[Server]:
    port = free_port()
    argv = python(
        "-m", "gunicorn", "-k", ZC_WORKER, "-b", f"{HOST}:{port}", "apps.uvicorn_raw_app:app"
    )
    with run_server(argv, port=port, env={"ZC_TEST_FILES": str(files)}) as srv:
        yield srv


@pytest.mark.parametrize("name", list(PLANS))
def test_message_mix_exact_bytes(raw_server: Server, files: Path, name: str) -> None:
    with httpx.Client(base_url=raw_server.url, timeout=TIMEOUT) as c:
        check_plan(c, raw_server, files, {"file": "medium.bin", **PLANS[name]})


def test_file_shorter_than_count_aborts_the_connection(raw_server: Server, files: Path) -> None:
    plan = {"file": "medium.bin", "content_length": SIZE + 10, "parts": [["zc", 0, SIZE + 10, 0]]}
    with (
        httpx.Client(base_url=raw_server.url, timeout=TIMEOUT) as c,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        c.get("/plan", params=plan_query(plan))
    assert len(httpx.get(f"{raw_server.url}/auto?file=medium.bin", timeout=TIMEOUT).content) == SIZE


@pytest.mark.parametrize("case", list(HELD_CASES))
def test_a_held_start_whose_file_fails_is_a_clean_500(
    raw_server: Server, files: Path, case: str
) -> None:
    # The uvicorn test, on gunicorn's worker: the file is opened before the start's
    # headers are written; one that cannot be sent as announced is a whole 500.
    content_length, parts = HELD_CASES[case]
    test_uvicorn_protocol.test_a_held_start_whose_file_fails_is_a_clean_500(
        raw_server, files, case, content_length, parts
    )


def test_a_held_start_goes_out_with_its_file(raw_server: Server, files: Path) -> None:
    plan = {"file": "medium.bin", "content_length": "auto", "parts": [["path"]],
            "opens_first": True}  # fmt: skip
    with httpx.Client(base_url=raw_server.url, timeout=TIMEOUT) as c:
        check_plan(c, raw_server, files, plan)


@pytest.mark.parametrize("opens_first", [True, False])
def test_a_pathsend_range_sends_that_range_by_sendfile(
    raw_server: Server, files: Path, opens_first: bool
) -> None:
    size = (files / "medium.bin").stat().st_size
    plan = {"file": "medium.bin", "content_length": "auto", "opens_first": opens_first,
            "parts": [["path-range", 12345, 54321, size]]}  # fmt: skip
    with httpx.Client(base_url=raw_server.url, timeout=TIMEOUT) as c:
        check_plan(c, raw_server, files, plan)


def test_five_pipelined_requests(raw_server: Server, files: Path) -> None:
    # The uvicorn test, on gunicorn: spans, pathsend, Content-Length and chunked
    # responses to requests written all at once, read back in order on one connection.
    test_uvicorn_protocol.test_five_pipelined_requests(raw_server, files)
