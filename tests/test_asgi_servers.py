"""ZeroCopyMiddleware on real servers on 127.0.0.1, with proof of the path taken.

Each server runs ``apps.asgi_app:app``: a recording layer, then the middleware, then a
Starlette app. The recording layer sits between the server and the middleware and
keeps the ASGI message types that went to the server, per ``x-test-id``; the tests
read them back from ``/__record__`` and assert them, next to the exact bytes.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _servers import HOST, Server, free_port, python, run_server
from apps.asgi_support import parse_byteranges

pytestmark = pytest.mark.integration

SIZE = 3 * 1024 * 1024 + 17  # several fallback chunks, an odd tail
DATA = os.urandom(SIZE)
PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"
START = "http.response.start"
BODY = "http.response.body"


def _argv(name: str, port: int) -> list[str]:
    target = "apps.asgi_app:app"
    if name == "uvicorn":
        return python("-m", "uvicorn", target, "--host", HOST, "--port", str(port))
    if name == "granian":
        granian = shutil.which("granian", path=os.path.dirname(python()[0]))
        assert granian is not None
        return [granian, "--interface", "asgi", "--host", HOST, "--port", str(port), target]
    if name == "anycorn":
        return python("-m", "anycorn", "-k", "trio", "-b", f"{HOST}:{port}", target)
    if name == "hypercorn":
        return python("-m", "hypercorn", "-b", f"{HOST}:{port}", target)
    raise AssertionError(name)


#: server -> (path a whole file takes, path a range takes)
SERVERS = {
    "uvicorn": ("fallback", "fallback"),
    "granian": ("pathsend", "fallback"),
    "anycorn": ("zerocopysend", "zerocopysend"),
    "hypercorn": ("fallback", "fallback"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("asgi-files")
    (directory / "data.bin").write_bytes(DATA)
    (directory / "public").mkdir()
    return directory


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, files: Path) -> Iterator[tuple[str, Server]]:
    name = str(request.param)
    port = free_port()
    with run_server(_argv(name, port), port=port, env={"ZC_DIR": str(files)}) as srv:
        yield name, srv


@pytest.fixture
def client(server: tuple[str, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[1].url, timeout=20) as c:
        yield c


def fetch(
    client: httpx.Client, method: str = "GET", **headers: str
) -> tuple[httpx.Response, list[str]]:
    test_id = uuid.uuid4().hex
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    response = client.request(method, "/download", headers={**headers, "x-test-id": test_id})
    record = client.get("/__record__", params={"id": test_id}).json()
    return response, record


def test_full_get(server: tuple[str, Server], client: httpx.Client) -> None:
    response, record = fetch(client)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(SIZE)
    path = SERVERS[server[0]][0]
    assert response.headers["x-zerocopy-path"] == path
    if path == "zerocopysend":
        assert record == [START, ZEROCOPYSEND, BODY]
    elif path == "pathsend":
        assert record == [START, PATHSEND]
    else:
        assert record[0] == START
        assert set(record[1:]) == {BODY}
        assert ZEROCOPYSEND not in record and PATHSEND not in record


def test_single_range(server: tuple[str, Server], client: httpx.Client) -> None:
    response, record = fetch(client, range="bytes=1000-1000999")
    assert response.status_code == 206
    assert response.content == DATA[1000:1001000]
    assert response.headers["content-range"] == f"bytes 1000-1000999/{SIZE}"
    path = SERVERS[server[0]][1]
    assert response.headers["x-zerocopy-path"] == path
    if path == "zerocopysend":
        assert record == [START, ZEROCOPYSEND, BODY]
    else:
        assert record[0] == START and set(record[1:]) == {BODY}


def test_multipart_ranges(server: tuple[str, Server], client: httpx.Client) -> None:
    response, record = fetch(client, range="bytes=0-99,2000000-2999999,-10")
    assert response.status_code == 206
    assert response.headers["content-length"] == str(len(response.content))
    parts = parse_byteranges(response.headers["content-type"], response.content)
    assert parts == [
        (f"bytes 0-99/{SIZE}", DATA[:100]),
        (f"bytes 2000000-2999999/{SIZE}", DATA[2000000:3000000]),
        (f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}", DATA[-10:]),
    ]
    if SERVERS[server[0]][1] == "zerocopysend":
        assert record == [START] + [BODY, ZEROCOPYSEND] * 3 + [BODY]
    else:
        assert record[0] == START and set(record[1:]) == {BODY}


def test_head(server: tuple[str, Server], client: httpx.Client) -> None:
    response, record = fetch(client, "HEAD", range="bytes=0-9")
    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-length"] == "10"
    assert response.headers["content-range"] == f"bytes 0-9/{SIZE}"
    assert response.headers["x-zerocopy-path"] == "none"
    assert record == [START, BODY]


def test_not_modified(server: tuple[str, Server], client: httpx.Client) -> None:
    etag = client.head("/download").headers["etag"]
    response, record = fetch(client, if_none_match=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert "last-modified" in response.headers
    assert record == [START, BODY]


def test_precondition_failed(server: tuple[str, Server], client: httpx.Client) -> None:
    response, record = fetch(client, if_match='"not-this-one"')
    assert response.status_code == 412
    assert response.content == b""
    assert record == [START, BODY]


def test_range_not_satisfiable(server: tuple[str, Server], client: httpx.Client) -> None:
    response, record = fetch(client, range=f"bytes={SIZE}-")
    assert response.status_code == 416
    assert response.content == b""
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert record == [START, BODY]


def test_non_file_response_passes_through(server: tuple[str, Server], client: httpx.Client) -> None:
    response = client.get("/stream")
    assert response.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert "x-zerocopy-path" not in response.headers


def test_disconnect_mid_file_leaks_no_descriptor(
    server: tuple[str, Server], client: httpx.Client
) -> None:
    name, srv = server
    if name == "granian":
        pytest.skip("granian's workers are separate processes; pathsend is the server's own")
    client.get("/download")  # warm up: lazily opened descriptors are opened now
    before = srv.open_fds()
    for _ in range(3):
        with socket.create_connection((HOST, srv.port)) as sock:
            sock.sendall(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)  # the headers and the start of the body, then hang up
    deadline = time.monotonic() + 5
    while srv.open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.open_fds() <= before
    assert client.get("/download").content == DATA  # still serving
