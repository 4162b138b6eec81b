"""ZeroCopyMiddleware on real servers on 127.0.0.1, with proof of the path taken.

Each server runs ``apps.asgi_app:app``: a recording layer, then the middleware, then a
Starlette app. The recording layer sits between the server and the middleware and
keeps the ASGI message types that went to the server, per ``x-test-id``; the tests
read them back from ``/__record__`` and assert them, next to the exact bytes.
The ``-h2`` setups run every test over HTTP/2 (cleartext, prior knowledge; with
``-tls``, over TLS by ALPN), and the client checks that each response came by the
HTTP version it asked for.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import httpx
import pytest
from _asgi_argv import asgi_argv
from _servers import HOST, Server, free_port, run_server
from _tls import TLSFiles, write_tls_files
from apps.asgi_support import parse_byteranges

pytestmark = pytest.mark.integration

SIZE = 3 * 1024 * 1024 + 17  # several fallback chunks, an odd tail
DATA = os.urandom(SIZE)
PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"
START = "http.response.start"
BODY = "http.response.body"


#: server -> (path a whole file takes, path a range takes)
SERVERS = {
    "uvicorn": ("fallback", "fallback"),
    "granian": ("pathsend", "fallback"),
    "anycorn": ("zerocopysend", "zerocopysend"),
    "hypercorn": ("fallback", "fallback"),
    "gunicorn-asgi": ("fallback", "fallback"),
    # zcmiddleware.gunicorn.ASGIWorker: it opens a pathsend's file before the start
    # (OPENS_BEFORE_START), so a whole file goes by path; a range by zerocopysend.
    "gunicorn-zc": ("pathsend", "zerocopysend"),
    "daphne": ("fallback", "fallback"),
    # HTTP/2 over cleartext, prior knowledge: the client speaks nothing else.
    "uvicorn-zttp-h2": ("fallback", "fallback"),
    "granian-h2": ("pathsend", "fallback"),
    "anycorn-h2": ("pathsend", "fallback"),  # zerocopysend is HTTP/1.x only
    "hypercorn-h2": ("fallback", "fallback"),
    "gunicorn-asgi-h2": ("fallback", "fallback"),
    "gunicorn-zc-h2": ("fallback", "fallback"),  # the worker offers nothing over HTTP/2
    # HTTP/2 over TLS, negotiated by ALPN: what browsers speak.
    "uvicorn-zttp-h2-tls": ("fallback", "fallback"),
    "granian-h2-tls": ("pathsend", "fallback"),
    "anycorn-h2-tls": ("pathsend", "fallback"),
    "hypercorn-h2-tls": ("fallback", "fallback"),
    "gunicorn-zc-h2-tls": ("fallback", "fallback"),
}
#: servers that take a range of a pathsend's file (PATHSEND_RANGE): a single range goes
#: by path there, several by zerocopysend
SINGLE_RANGE_BY_PATH = {"gunicorn-zc"}
#: servers that run the app in a worker process (count that one's descriptors)
WORKER_PROCESS = {n for n in SERVERS if n.startswith(("granian", "gunicorn"))}


def _is_h2(name: str) -> bool:
    return "-h2" in name


def _is_tls(name: str) -> bool:
    return name.endswith("-tls")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("asgi-files")
    (directory / "data.bin").write_bytes(DATA)
    (directory / "public").mkdir()
    return directory


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, files: Path) -> Iterator[tuple[str, Server]]:
    name = str(request.param)
    if name.startswith("uvicorn-zttp") and importlib.util.find_spec("zttp") is None:
        pytest.skip("zttp (uvicorn's HTTP/2) needs Python 3.11")
    tls = request.getfixturevalue("tls") if _is_tls(name) else None
    port = free_port()
    argv = asgi_argv(name, port, tls=tls)
    with run_server(argv, port=port, env={"ZC_DIR": str(files)}) as srv:
        yield name, srv


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return write_tls_files(tmp_path_factory.mktemp("asgi-tls"))


def _client_tls(name: str, request: pytest.FixtureRequest) -> ssl.SSLContext | None:
    if not _is_tls(name):
        return None
    context = ssl.create_default_context(cafile=str(request.getfixturevalue("tls").ca))
    if _is_h2(name):
        context.set_alpn_protocols(["h2"])
    return context


@pytest.fixture
def client(server: tuple[str, Server], request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    name, srv = server
    h2 = _is_h2(name)
    version = "HTTP/2" if h2 else "HTTP/1.1"
    context = _client_tls(name, request)

    def check_version(response: httpx.Response) -> None:
        assert response.http_version == version

    with httpx.Client(
        base_url=f"https://{HOST}:{srv.port}" if context else srv.url,
        verify=context or True,
        timeout=20,
        http1=not h2,
        http2=h2,
        event_hooks={"response": [check_version]},
    ) as c:
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
    path = "pathsend" if server[0] in SINGLE_RANGE_BY_PATH else SERVERS[server[0]][1]
    assert response.headers["x-zerocopy-path"] == path
    if path == "zerocopysend":
        assert record == [START, ZEROCOPYSEND, BODY]
    elif path == "pathsend":
        assert record == [START, PATHSEND]
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
    server: tuple[str, Server], client: httpx.Client, request: pytest.FixtureRequest
) -> None:
    name, srv = server
    pid = srv.children()[0] if name in WORKER_PROCESS else srv.pid
    client.get("/download")  # warm up: lazily opened descriptors are opened now
    before = srv.open_fds(pid)
    requests = [
        b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /download HTTP/1.1\r\nHost: x\r\nRange: bytes=10-\r\n\r\n",  # fallback too
    ]
    context = _client_tls(name, request)
    for raw in (_h2_requests() if _is_h2(name) else requests) * 2:
        with socket.create_connection((HOST, srv.port)) as tcp:
            sock = context.wrap_socket(tcp, server_hostname=HOST) if context else tcp
            sock.sendall(raw)
            sock.recv(65536)  # the headers and the start of the body, then hang up
            sock.close()
    deadline = time.monotonic() + 5
    while srv.open_fds(pid) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.open_fds(pid) <= before
    assert client.get("/download").content == DATA  # still serving


def _h2_requests() -> list[bytes]:
    """The same two requests, each as the bytes that open an HTTP/2 connection."""
    requests = []
    for extra in ([], [("range", "bytes=10-")]):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "GET"), (":path", "/download"), (":scheme", "http")]
        conn.send_headers(1, [*headers, (":authority", "x"), *extra], end_stream=True)
        requests.append(conn.data_to_send())
    return requests


# -------------------------------------------------- every line of docs/http.md, per server

S = SIZE
FULL = (200, DATA)
# (request headers, status, body: bytes, or the (start, stop) parts of a multipart answer)
# "{etag}" and "{lm}" stand for the file's ETag and Last-Modified.
POLICY: dict[str, tuple[dict[str, str], int, bytes | list[tuple[int, int]]]] = {
    # Range (§14): ignored, satisfied, unsatisfiable
    "other unit ignored": ({"range": "items=0-5"}, *FULL),
    "invalid syntax ignored": ({"range": "bytes=abc"}, *FULL),
    "empty range set ignored": ({"range": "bytes="}, *FULL),
    "last before first ignored": ({"range": "bytes=5-2"}, *FULL),
    "three numbers ignored": ({"range": "bytes=1-2-3"}, *FULL),
    "last past the end clipped": ({"range": f"bytes=10-{S + 100}"}, 206, DATA[10:]),
    "open ended": ({"range": f"bytes={S - 100}-"}, 206, DATA[-100:]),
    "suffix": ({"range": "bytes=-100"}, 206, DATA[-100:]),
    "suffix longer than the file": ({"range": f"bytes=-{S + 5}"}, 206, DATA),
    "suffix of zero": ({"range": "bytes=-0"}, 416, b""),
    "first at the end": ({"range": f"bytes={S}-{S + 10}"}, 416, b""),
    "only the satisfiable served": ({"range": f"bytes={S}-,0-9"}, 206, DATA[:10]),
    "overlapping coalesced": ({"range": "bytes=0-9,5-19"}, 206, DATA[:20]),
    "touching coalesced": ({"range": "bytes=0-9,10-19"}, 206, DATA[:20]),
    "parts keep request order": ({"range": "bytes=100-199,0-9"}, 206, [(100, 200), (0, 10)]),
    "more than 100 ranges ignored": (
        {"range": "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(101))},
        *FULL,
    ),
    "total beyond the size ignored": ({"range": "bytes=0-,0-"}, *FULL),
    # If-Range (§13.1.5)
    "if-range strong etag matches": ({"range": "bytes=0-9", "if-range": "{etag}"}, 206, DATA[:10]),
    "if-range other etag": ({"range": "bytes=0-9", "if-range": '"other"'}, *FULL),
    "if-range weak etag never matches": ({"range": "bytes=0-9", "if-range": "W/{etag}"}, *FULL),
    "if-range equal date matches": ({"range": "bytes=0-9", "if-range": "{lm}"}, 206, DATA[:10]),
    # Preconditions, in the order of §13.2.2
    "if-match star": ({"if-match": "*"}, *FULL),
    "if-match matches": ({"if-match": "{etag}"}, *FULL),
    "if-match fails": ({"if-match": '"other"'}, 412, b""),
    "if-match weak fails": ({"if-match": "W/{etag}"}, 412, b""),
    "if-unmodified-since fails": (
        {"if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"},
        412,
        b"",
    ),
    "if-unmodified-since ignored with if-match": (
        {"if-match": "{etag}", "if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT"},
        *FULL,
    ),
    "if-none-match matches": ({"if-none-match": "{etag}"}, 304, b""),
    "if-none-match weak matches": ({"if-none-match": "W/{etag}"}, 304, b""),
    "if-none-match star": ({"if-none-match": "*"}, 304, b""),
    "if-match before if-none-match": (
        {"if-match": '"other"', "if-none-match": "{etag}"},
        412,
        b"",
    ),
    "if-modified-since not modified": ({"if-modified-since": "{lm}"}, 304, b""),
    "if-modified-since modified": ({"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"}, *FULL),
    "if-modified-since ignored with if-none-match": (
        {"if-none-match": '"other"', "if-modified-since": "{lm}"},
        *FULL,
    ),
    "304 before range": ({"if-none-match": "{etag}", "range": "bytes=0-9"}, 304, b""),
}


@pytest.mark.parametrize("case", list(POLICY))
def test_http_policy(server: tuple[str, Server], client: httpx.Client, case: str) -> None:
    head = client.head("/download").headers
    etag, last_modified = head["etag"], head["last-modified"]
    headers, status, expected = POLICY[case]
    headers = {k: v.format(etag=etag, lm=last_modified) for k, v in headers.items()}
    response = client.get("/download", headers=headers)
    assert response.status_code == status
    if status in (200, 206, 304):
        assert response.headers["etag"] == etag
        assert response.headers["last-modified"] == last_modified
        assert response.headers["accept-ranges"] == "bytes"
    if status == 304:
        assert "content-length" not in response.headers
        assert "content-range" not in response.headers
    if isinstance(expected, list):
        parts = parse_byteranges(response.headers["content-type"], response.content)
        assert parts == [(f"bytes {a}-{b - 1}/{S}", DATA[a:b]) for a, b in expected]
    else:
        assert response.content == expected
        if status == 206:
            start = DATA.find(expected)
            want = f"bytes {start}-{start + len(expected) - 1}/{S}"
            assert response.headers["content-range"] == want
    if status != 304:
        assert response.headers["content-length"] == str(len(response.content))
    # HEAD answers with the same status and headers, without a body.
    head_response = client.head("/download", headers=headers)
    assert head_response.status_code == status
    assert head_response.content == b""
    if not isinstance(expected, list):  # a multipart boundary is random per response
        assert head_response.headers.get("content-length") == response.headers.get("content-length")


def test_empty_file_with_a_range_is_200(
    server: tuple[str, Server], client: httpx.Client, files: Path
) -> None:
    (files / "empty.bin").touch()
    response = client.get("/static/empty.bin", headers={"range": "bytes=0-5"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


def test_directory_in_static_files_is_not_a_hang(
    server: tuple[str, Server], client: httpx.Client
) -> None:
    assert client.get("/static/public").status_code == 404
