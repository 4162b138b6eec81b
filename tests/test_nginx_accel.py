"""Behind a real nginx: ``accel_redirect`` hands file bodies to nginx, and the client
gets exactly what the middleware alone would answer.

nginx (Debian's nginx-light) runs the configuration of docs/deployment.md, read out
of that page, in front of Starlette on uvicorn and Flask on gunicorn. One request
table goes through nginx -> app (offload on) and directly to the app (middleware
alone); status, body bytes and the headers the middleware controls must be equal,
the rows nginx answers must have been answered by nginx, and the Python server must
have sent no body byte for them.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import trustme
from _nginx import error_log, nginx_binary, run_nginx
from _servers import HOST, Server, free_port, python, run_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed"),
]

SIZE = 200_003
DATA = random.Random("zcmiddleware-accel").randbytes(SIZE)

# The headers the middleware sets or keeps, compared between the two paths.
CONTROLLED = (
    "content-type",
    "content-length",
    "content-range",
    "etag",
    "last-modified",
    "accept-ranges",
    "cache-control",
    "content-disposition",
    "set-cookie",
    "vary",
    "expires",
)
OFFLOADED = "x-accel-redirect"

# File names in the mapped directory, all handed to nginx percent-encoded (nginx cuts
# the redirect URI at a literal '?' and decodes %XX once).
HOSTILE_NAMES = (
    "a b.bin",
    "hash#frag.bin",
    "semi;colon&amp=x.bin",
    "plus+tilde~.bin",
    "quote'\"dq.bin",
    "..dots.bin",
    "uni-\u00e9\u6f22.bin",
    "back\\slash.bin",
    "tab\tctl\x7f.bin",
    "q?x=1.bin",
    "pct%41.bin",
    "pct%2e%2e%2fetc.bin",
    "pct%.bin",
)


@dataclass
class Stack:
    name: str
    app: Server
    nginx: Server
    #: The same nginx configuration, TLS terminated at nginx (docs/deployment.md).
    tls: Server
    tls_context: ssl.SSLContext
    workdir: Path

    def url(self, scheme: str) -> str:
        return self.nginx.url if scheme == "http" else f"https://{HOST}:{self.tls.port}"

    def stats(self, reset: bool = False) -> dict[str, int]:
        url = f"{self.app.url}/__zc_stats" + ("?reset" if reset else "")
        data: dict[str, int] = httpx.get(url, timeout=30).json()
        return data


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("accel")
    media, other = root / "media", root / "other"
    (media / "sub" / "dir").mkdir(parents=True)
    other.mkdir()
    (media / "data.bin").write_bytes(DATA)
    (media / "empty.bin").write_bytes(b"")
    (media / "sub" / "dir" / "deep.bin").write_bytes(DATA[:5000])
    (other / "outside.bin").write_bytes(DATA[:7000])
    for name in HOSTILE_NAMES:
        (media / name).write_bytes(name.encode() + DATA[:3000])
    # A symlink out of the mapped directory, and one that stays inside it.
    (media / "link-out.bin").symlink_to(other / "outside.bin")
    (media / "link-in.bin").symlink_to(media / "sub" / "dir" / "deep.bin")
    return media, other


def _app_argv(name: str, port: int) -> list[str]:
    if name == "starlette-uvicorn":
        return python("-m", "apps.accel_starlette_app", str(port))
    bind = f"127.0.0.1:{port}"
    conf = "apps/wsgi_gunicorn_conf.py"
    gunicorn = python("-m", "gunicorn", "-c", conf, "-b", bind, "-w", "1")
    return [*gunicorn, "-k", "gthread", "--threads", "4", "apps.accel_flask_app:application"]


@pytest.fixture(scope="module", params=["starlette-uvicorn", "flask-gunicorn"])
def stack(
    request: pytest.FixtureRequest,
    dirs: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    media, other = dirs
    env = {"ZC_MEDIA_DIR": str(media), "ZC_OTHER_DIR": str(other)}
    port = free_port()
    workdir = tmp_path_factory.mktemp(f"nginx-{request.param}")
    ca = trustme.CA()
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    issued = ca.issue_cert(HOST)
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with (
        run_server(_app_argv(request.param, port), port=port, env=env) as app,
        run_nginx(workdir / "plain", app_port=port, media=media) as nginx,
        run_nginx(workdir / "tls", app_port=port, media=media, tls=(cert, key)) as tls,
    ):
        yield Stack(request.param, app, nginx, tls, context, workdir)
    for kind in ("plain", "tls"):
        log = error_log(workdir / kind)
        assert not re.search(r"\[(error|crit|alert|emerg)\]", log), log


def _get(
    base: str,
    path: str,
    headers: dict[str, str],
    method: str = "GET",
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    with httpx.Client(timeout=60, verify=verify) as client:
        return client.request(method, base + path, headers=headers)


def _normalized(response: httpx.Response) -> tuple[int, bytes, dict[str, list[str]]]:
    """Status, body and controlled headers, with a multipart boundary replaced."""
    body = response.content
    headers = {name: response.headers.get_list(name) for name in CONTROLLED}
    match = re.search(r"boundary=(\w+)", response.headers.get("content-type", ""))
    if match:
        boundary = match.group(1)
        body = body.replace(boundary.encode(), b"BOUNDARY")
        headers["content-type"] = [v.replace(boundary, "BOUNDARY") for v in headers["content-type"]]
    return response.status_code, body, headers


PAST = "Sun, 06 Nov 1994 08:49:37 GMT"
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"

# id, method, request headers ({etag}/{lm}: the file's validators), status, nginx sends it
TABLE = [
    # nginx sends these: a plain 200, and a plain single range
    ("full", "GET", {}, 200, True),
    ("inm-other", "GET", {"If-None-Match": '"other"'}, 200, True),
    ("ims-past", "GET", {"If-Modified-Since": PAST}, 200, True),
    ("ims-not-a-date", "GET", {"If-Modified-Since": "not-a-date"}, 200, True),
    # nginx's own ETag format (mtime-size, hex) matches nothing here: `etag off`
    ("inm-nginx-etag", "GET", {"If-None-Match": "{nginx_etag}"}, 200, True),
    (
        "range-inm-nginx-etag",
        "GET",
        {"Range": "bytes=0-9", "If-None-Match": "{nginx_etag}"},
        206,
        True,
    ),
    ("range", "GET", {"Range": "bytes=0-99"}, 206, True),
    ("range-open", "GET", {"Range": "bytes=199000-"}, 206, True),
    ("range-suffix", "GET", {"Range": "bytes=-100"}, 206, True),
    ("range-suffix-all", "GET", {"Range": "bytes=-999999999"}, 206, True),
    ("range-clipped", "GET", {"Range": "bytes=5000-999999999999"}, 206, True),
    ("range-last-byte", "GET", {"Range": f"bytes={SIZE - 1}-{SIZE - 1}"}, 206, True),
    ("range-inm-other", "GET", {"Range": "bytes=10-19", "If-None-Match": '"x"'}, 206, True),
    # the middleware answers these itself: no file body
    ("head", "HEAD", {}, 200, False),
    ("head-range", "HEAD", {"Range": "bytes=0-9"}, 206, False),
    ("inm", "GET", {"If-None-Match": "{etag}"}, 304, False),
    ("inm-star", "GET", {"If-None-Match": "*"}, 304, False),
    ("ims-future", "GET", {"If-Modified-Since": FUTURE}, 304, False),
    ("im-other", "GET", {"If-Match": '"other"'}, 412, False),
    ("ius-past", "GET", {"If-Unmodified-Since": PAST}, 412, False),
    ("unsatisfiable", "GET", {"Range": f"bytes={SIZE}-"}, 416, False),
    ("suffix-zero", "GET", {"Range": "bytes=-0"}, 416, False),
    # ... and these, which nginx would answer differently (RFC 9110 §13.2.2, §14)
    ("im", "GET", {"If-Match": "{etag}"}, 200, False),
    ("im-star", "GET", {"If-Match": "*"}, 200, False),
    ("im-ius-past", "GET", {"If-Match": "{etag}", "If-Unmodified-Since": PAST}, 200, False),
    ("ius-not-a-date", "GET", {"If-Unmodified-Since": "not-a-date"}, 200, False),
    ("ius-future", "GET", {"If-Unmodified-Since": FUTURE}, 200, False),
    ("inm-ims-past", "GET", {"If-None-Match": "{etag}", "If-Modified-Since": PAST}, 304, False),
    ("if-range", "GET", {"Range": "bytes=0-9", "If-Range": "{etag}"}, 206, False),
    ("if-range-date", "GET", {"Range": "bytes=0-9", "If-Range": "{lm}"}, 206, False),
    ("if-range-other", "GET", {"Range": "bytes=0-9", "If-Range": '"other"'}, 200, False),
    ("multipart", "GET", {"Range": "bytes=0-9,100-199,-5"}, 206, False),
    ("coalesced", "GET", {"Range": "bytes=0-5,3-9"}, 206, False),
    ("spaces", "GET", {"Range": "bytes = 0-9"}, 206, False),
    ("empty-element", "GET", {"Range": "bytes=0-9,,"}, 206, False),
    ("upper-unit", "GET", {"Range": "Bytes=0-9"}, 206, False),
    ("invalid", "GET", {"Range": "bytes=abc"}, 200, False),
    ("reversed", "GET", {"Range": "bytes=9-2"}, 200, False),
    ("other-unit", "GET", {"Range": "items=0-5"}, 200, False),
    ("too-much", "GET", {"Range": "bytes=0-,0-"}, 200, False),
]


def _headers(template: dict[str, str], validators: dict[str, str]) -> dict[str, str]:
    return {k: v.format(**validators) for k, v in template.items()}


@pytest.fixture(scope="module")
def validators(stack: Stack, dirs: tuple[Path, Path]) -> dict[str, str]:
    response = _get(stack.app.url, "/direct/files/data.bin", {})
    st = (dirs[0] / "data.bin").stat()
    return {
        "etag": response.headers["etag"],
        "lm": response.headers["last-modified"],
        "nginx_etag": f'"{int(st.st_mtime):x}-{st.st_size:x}"',
    }


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize(("row", "method", "template", "status", "by_nginx"), TABLE)
def test_same_answer_through_nginx_as_from_the_middleware_alone(
    stack: Stack,
    validators: dict[str, str],
    scheme: str,
    row: str,
    method: str,
    template: dict[str, str],
    status: int,
    by_nginx: bool,
) -> None:
    headers = _headers(template, validators)
    direct = _get(stack.app.url, "/direct/files/data.bin", headers, method)
    stack.stats(reset=True)
    through = _get(stack.url(scheme), "/files/data.bin", headers, method, stack.tls_context)
    sent = stack.stats()
    assert direct.status_code == status
    assert _normalized(through) == _normalized(direct)
    # The bytes themselves, against the file.
    if status == 200 and method == "GET":
        assert hashlib.sha256(through.content).digest() == hashlib.sha256(DATA).digest()
    if status == 206 and method == "GET" and "multipart" not in direct.headers["content-type"]:
        first, last = map(int, re.findall(r"\d+", through.headers["content-range"])[:2])
        assert through.content == DATA[first : last + 1]
    if method == "HEAD" or status in (304, 412, 416):
        assert through.content == b""
    path = through.headers.get("x-zerocopy-path")
    if by_nginx:
        assert path == OFFLOADED
        _assert_no_body_from_python(stack, sent)
    else:
        assert path != OFFLOADED
        assert "x-accel-redirect" not in through.headers


def _assert_no_body_from_python(stack: Stack, sent: dict[str, int]) -> None:
    if stack.name == "starlette-uvicorn":
        # The messages the middleware handed uvicorn carried no byte, and uvicorn
        # sendfiled none.
        assert (sent["body"], sent["file"], sent["sendfile"]) == (0, 0, 0)
    else:
        # gunicorn's worker sendfiled and read nothing; it wrote only headers.
        assert (sent["sendfile"], sent["pread"]) == (0, 0)
        assert sent["sendall"] < 2048


# ------------------------------------------------------------------ hostile paths

PATHS = [
    *((name, name.encode() + DATA[:3000], True) for name in HOSTILE_NAMES),
    ("sub/dir/deep.bin", DATA[:5000], True),
    # A symlink inside the mapped directory is handed over by its resolved name ...
    ("link-in.bin", DATA[:5000], True),
    # ... and one leading out of it is served by the middleware.
    ("link-out.bin", DATA[:7000], False),
    ("empty.bin", b"", False),
]


@pytest.mark.parametrize(("name", "content", "by_nginx"), PATHS)
def test_file_names_reach_nginx_percent_encoded(
    stack: Stack, name: str, content: bytes, by_nginx: bool
) -> None:
    target = "/files/" + quote(name, safe="/")
    response = _get(stack.nginx.url, target, {})
    assert response.status_code == 200, response.text
    assert response.content == content
    assert (response.headers.get("x-zerocopy-path") == OFFLOADED) is by_nginx
    assert "x-accel-redirect" not in response.headers


def test_unmapped_directory_is_served_by_the_middleware(stack: Stack) -> None:
    response = _get(stack.nginx.url, "/other/outside.bin", {"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response.content == DATA[:100]
    assert response.headers["x-zerocopy-path"] != OFFLOADED


def test_representation_headers_nginx_would_drop_keep_the_file_with_the_middleware(
    stack: Stack,
) -> None:
    # nginx drops Content-Encoding on a redirect: a precompressed file would arrive
    # as bytes the client cannot read. (http.client: no decoding of the body.)
    conn = http.client.HTTPConnection(HOST, stack.nginx.port, timeout=60)
    try:
        conn.request("GET", "/encoded/data.bin", headers={"Range": "bytes=0-99"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 206
    assert response.getheader("Content-Encoding") == "gzip"
    assert body == DATA[:100]
    assert response.getheader("X-ZeroCopy-Path") != OFFLOADED


def test_without_nginx_the_redirect_reaches_the_client(stack: Stack) -> None:
    # The documented deployment bug: offload configured, no nginx in front. The
    # middleware cannot tell; the client gets the header and no body.
    response = _get(stack.app.url, "/files/data.bin", {})
    assert response.status_code == 200
    assert response.headers["x-accel-redirect"] == "/_zc/media/data.bin"
    assert response.content == b""
    # Without accel_redirect, never.
    direct = _get(stack.app.url, "/direct/files/data.bin", {})
    assert "x-accel-redirect" not in direct.headers
    assert direct.content == DATA


def test_offloaded_responses_leave_no_descriptor_open(stack: Stack) -> None:
    # The app's file is opened and planned for every offloaded response, then closed:
    # after warm-up (nginx's upstream keep-alive connection), the count stays put.
    pid = stack.app.children()[0] if stack.name == "flask-gunicorn" else stack.app.pid

    def burst(n: int) -> None:
        with httpx.Client(timeout=60) as client:
            for i in range(n):
                headers = {"Range": f"bytes={i}-{i + 99}"} if i % 2 else {}
                response = client.get(stack.nginx.url + "/files/data.bin", headers=headers)
                assert response.headers["x-zerocopy-path"] == OFFLOADED

    burst(10)
    before = stack.app.open_fds(pid)
    burst(60)
    # Never more than before (a gunicorn sync worker may have one connection fewer
    # open at the second count: the client side closes at its own pace).
    assert stack.app.open_fds(pid) <= before
