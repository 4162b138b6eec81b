"""ZeroCopyWSGIMiddleware on real servers on 127.0.0.1: gunicorn (sync, gthread),
waitress, Werkzeug's dev server and uWSGI, each with a Flask and a Django app.

Exact bytes for every line of docs/http.md that a client can see, a 5 GiB sparse file
read past 2**32, a file that shrinks mid-send, and -- on gunicorn -- proof that the
body went through ``sendfile(2)`` in the worker and through no read loop.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _multipart import parse_spans
from _servers import HOST, Server, fetch, free_port, python, run_server

pytestmark = pytest.mark.integration

SIZE = 2 * 1024 * 1024 + 12345  # not a multiple of any chunk size
SPARSE_SIZE = 5 * 2**30
SPARSE_MARKS = {2**32 + 7: b"past-4G", 2**32 + 2**20: b"one more", SPARSE_SIZE - 10: b"the end!!!"}

APPS = {"flask": "apps.wsgi_flask_app:application", "django": "apps.wsgi_django_app:application"}
UWSGI = Path(sys.executable).with_name("uwsgi")


def _argv(server: str, app: str, port: int) -> list[str]:
    bind = f"{HOST}:{port}"
    gunicorn = [*python("-m", "gunicorn", "-c", "apps/wsgi_gunicorn_conf.py", "-b", bind)]
    if server == "gunicorn-sync":
        return [*gunicorn, "-w", "1", "-k", "sync", app]
    if server == "gunicorn-gthread":
        return [*gunicorn, "-w", "1", "-k", "gthread", "--threads", "4", app]
    if server == "waitress":
        return python("-m", "waitress", f"--listen={bind}", app)
    if server == "werkzeug":
        return python("-m", "apps.wsgi_werkzeug_serve", app, str(port))
    if server == "uwsgi":
        tests = str(Path(__file__).parent)
        return [
            str(UWSGI),
            "--http-socket", bind,
            "--module", app,
            "--pythonpath", str(Path(tests).parent),
            "--pythonpath", tests,
            "--master", "--processes", "1", "--die-on-term", "--need-app",
            "--disable-logging",
        ]  # fmt: skip
    raise AssertionError(server)


SERVERS = ["gunicorn-sync", "gunicorn-gthread", "waitress", "werkzeug", "uwsgi"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wsgi-data")
    (directory / "data.bin").write_bytes(os.urandom(SIZE))
    (directory / "empty.bin").write_bytes(b"")
    with open(directory / "sparse.bin", "wb") as f:
        os.truncate(f.fileno(), SPARSE_SIZE)  # sparse: no disk used
        for offset, mark in SPARSE_MARKS.items():
            os.pwrite(f.fileno(), mark, offset)
    return directory


@pytest.fixture(scope="module", params=[(s, a) for s in SERVERS for a in APPS])
def server(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[tuple[Server, str, str]]:
    name, app = request.param
    if name == "uwsgi" and not UWSGI.exists():
        pytest.skip("uWSGI (pip install pyuwsgi) is not installed")
    port = free_port()
    with run_server(
        _argv(name, APPS[app], port), port=port, env={"ZC_DATA_DIR": str(data_dir)}
    ) as s:
        yield s, name, app


def expected_path(server_name: str, end: int = 0) -> str:
    # gunicorn gets its own FileWrapper and sendfiles; uWSGI gets uwsgi.sendfile while
    # offset and length fit its C ints; waitress and Werkzeug have no sendfile path.
    if server_name.startswith("gunicorn"):
        return "file_wrapper"
    if server_name == "uwsgi" and end < 2**31:
        return "uwsgi.sendfile"
    return "fallback"


# ------------------------------------------------------------- docs/http.md lines


def test_full(server: tuple[Server, str, str], data_dir: Path) -> None:
    s, name, _ = server
    status, headers, body = fetch(s, "/file/data.bin")
    assert status == 200, s.log()
    assert body == (data_dir / "data.bin").read_bytes()
    assert headers["content-length"] == str(SIZE)
    assert headers["accept-ranges"] == "bytes"
    assert "etag" in headers and "last-modified" in headers
    assert headers["x-zc-path"] == expected_path(name)


def test_single_range(server: tuple[Server, str, str], data_dir: Path) -> None:
    s, name, _ = server
    data = (data_dir / "data.bin").read_bytes()
    status, headers, body = fetch(s, "/file/data.bin", {"Range": "bytes=1000-1300999"})
    assert status == 206, s.log()
    assert body == data[1000:1301000]
    assert headers["content-range"] == f"bytes 1000-1300999/{SIZE}"
    assert headers["content-length"] == str(len(body))
    assert headers["x-zc-path"] == expected_path(name)
    # A suffix range, clipped to the file.
    status, headers, body = fetch(s, "/file/data.bin", {"Range": "bytes=-100"})
    assert (status, body) == (206, data[-100:])


def test_multipart(server: tuple[Server, str, str], data_dir: Path) -> None:
    s, _, _ = server
    data = (data_dir / "data.bin").read_bytes()
    status, headers, body = fetch(s, "/file/data.bin", {"Range": "bytes=0-9, 500000-999999, -7"})
    assert status == 206, s.log()
    assert headers["content-length"] == str(len(body))
    parts = parse_spans(headers["content-type"], body)
    assert [(a, b) for a, b, _ in parts] == [(0, 10), (500000, 1000000), (SIZE - 7, SIZE)]
    for start, stop, chunk in parts:
        assert chunk == data[start:stop]


def test_a_pages_own_304_is_kept(server: tuple[Server, str, str]) -> None:
    # Not a file: the app's own conditional GET answers, as without the middleware.
    s, _, _ = server
    status, headers, body = fetch(s, "/page")
    assert (status, body, headers["etag"]) == (200, b"a page, not a file", '"page-v1"')
    status, headers, body = fetch(s, "/page", {"If-None-Match": '"page-v1"'})
    assert (status, body) == (304, b"")
    status, _, _ = fetch(s, "/page", {"If-None-Match": '"other"'})
    assert status == 200


def test_head(server: tuple[Server, str, str]) -> None:
    s, _, _ = server
    status, headers, body = fetch(s, "/file/data.bin", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(SIZE)
    status, headers, body = fetch(s, "/file/data.bin", {"Range": "bytes=5-9"}, method="HEAD")
    assert (status, body, headers["content-length"]) == (206, b"", "5")


def test_not_modified(server: tuple[Server, str, str]) -> None:
    s, _, _ = server
    _, headers, _ = fetch(s, "/file/data.bin", method="HEAD")
    etag, last_modified = headers["etag"], headers["last-modified"]
    status, headers, body = fetch(s, "/file/data.bin", {"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag
    assert "content-range" not in headers
    status, _, body = fetch(s, "/file/data.bin", {"If-Modified-Since": last_modified})
    assert (status, body) == (304, b"")


def test_precondition_failed(server: tuple[Server, str, str]) -> None:
    s, _, _ = server
    status, _, body = fetch(s, "/file/data.bin", {"If-Match": '"not-this-one"'})
    assert (status, body) == (412, b"")
    status, _, body = fetch(
        s, "/file/data.bin", {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
    )
    assert (status, body) == (412, b"")


def test_unsatisfiable(server: tuple[Server, str, str]) -> None:
    s, _, _ = server
    status, headers, body = fetch(s, "/file/data.bin", {"Range": f"bytes={SIZE}-"})
    assert (status, body) == (416, b"")
    assert headers["content-range"] == f"bytes */{SIZE}"


def test_if_range_mismatch_sends_the_whole_file(
    server: tuple[Server, str, str], data_dir: Path
) -> None:
    s, _, _ = server
    status, _, body = fetch(s, "/file/data.bin", {"Range": "bytes=0-9", "If-Range": '"old"'})
    assert (status, body) == (200, (data_dir / "data.bin").read_bytes())


def test_ignored_ranges_send_the_whole_file(
    server: tuple[Server, str, str], data_dir: Path
) -> None:
    s, _, _ = server
    data = (data_dir / "data.bin").read_bytes()
    many = "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(101))
    for value in ("items=0-5", "bytes=abc", "bytes=5-2", many):
        status, _, body = fetch(s, "/file/data.bin", {"Range": value})
        assert (status, body) == (200, data), value


def test_other_methods_ignore_range_but_not_preconditions(
    server: tuple[Server, str, str], data_dir: Path
) -> None:
    s, _, app = server
    path = "/file-post/data.bin" if app == "flask" else "/file/data.bin"
    status, _, body = fetch(s, path, {"Range": "bytes=0-9"}, method="POST")
    assert (status, body) == (200, (data_dir / "data.bin").read_bytes())
    status, _, body = fetch(s, path, {"If-Match": '"nope"'}, method="POST")
    assert (status, body) == (412, b"")


def test_empty_file(server: tuple[Server, str, str]) -> None:
    s, _, _ = server
    status, headers, body = fetch(s, "/file/empty.bin", {"Range": "bytes=0-"})
    assert (status, body, headers["content-length"]) == (200, b"", "0")


def test_sparse_file_past_4_gib(server: tuple[Server, str, str]) -> None:
    s, name, _ = server
    status, headers, _ = fetch(s, "/file/sparse.bin", method="HEAD")
    assert (status, headers["content-length"]) == (200, str(SPARSE_SIZE))
    for offset, mark in SPARSE_MARKS.items():
        last = offset + len(mark) + 99
        status, headers, body = fetch(
            s, "/file/sparse.bin", {"Range": f"bytes={offset - 100}-{last}"}
        )
        assert status == 206, s.log()
        assert (
            headers["content-range"]
            == f"bytes {offset - 100}-{min(last, SPARSE_SIZE - 1)}/{SPARSE_SIZE}"
        )
        expected = (bytes(100) + mark + bytes(100))[: min(last, SPARSE_SIZE - 1) - offset + 101]
        assert body == expected
        assert headers["x-zc-path"] == expected_path(name, offset)


def test_other_responses_pass_through(server: tuple[Server, str, str]) -> None:
    s, _, _ = server
    status, headers, body = fetch(s, "/hello", {"Range": "bytes=0-1"})
    assert (status, body) == (200, b"hello")
    assert "x-zc-path" not in headers
    status, _, _ = fetch(s, "/file/missing.bin")
    assert status == 404


def test_x_sendfile(server: tuple[Server, str, str], data_dir: Path) -> None:
    s, name, app = server
    if app != "flask":
        pytest.skip("X-Sendfile is exercised with Flask's use_x_sendfile")
    data = (data_dir / "data.bin").read_bytes()
    status, headers, body = fetch(s, "/xsendfile/data.bin", {"Range": "bytes=10-20"})
    assert (status, body) == (206, data[10:21])
    assert "x-sendfile" not in headers
    assert headers["x-zc-path"] == expected_path(name)
    status, headers, body = fetch(s, "/xsendfile/data.bin")
    assert (status, body) == (200, data)
    assert "x-sendfile" not in headers


def test_file_that_shrinks_is_aborted(server: tuple[Server, str, str], data_dir: Path) -> None:
    s, _, app = server
    if app != "flask":
        pytest.skip("the shrinking layer lives in the Flask test app")
    for headers in ({}, {"Range": "bytes=100-2000099"}):
        shutil.copy(data_dir / "data.bin", data_dir / "victim.bin")
        # Never a complete-looking short body: the connection ends early.
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            fetch(s, "/shrink/victim.bin", headers)


# ------------------------------------------------------------ proof on gunicorn


def stats(s: Server, reset: bool = False) -> dict[str, int]:
    _, _, body = fetch(s, "/__zc_stats?reset" if reset else "/__zc_stats")
    result: dict[str, int] = json.loads(body)
    return result


@pytest.mark.parametrize(
    ("range_header", "length"),
    [
        (None, SIZE),
        ("bytes=1000-1300999", 1_300_000),
        (f"bytes={2**32}-{2**32 + 999_999}", 1_000_000),
    ],
)
def test_gunicorn_body_goes_through_sendfile(
    server: tuple[Server, str, str], range_header: str | None, length: int
) -> None:
    s, name, _ = server
    if not name.startswith("gunicorn"):
        pytest.skip("the sendfile counter is a gunicorn server hook")
    path = "/file/sparse.bin" if range_header and "4294967296" in range_header else "/file/data.bin"
    stats(s, reset=True)
    status, headers, body = fetch(s, path, {"Range": range_header} if range_header else {})
    assert len(body) == length and status in (200, 206)
    deadline = time.monotonic() + 5
    while (counted := stats(s))["sendfile"] < length and time.monotonic() < deadline:
        time.sleep(0.02)  # gthread: the worker may still be returning from sendfile
    assert counted["sendfile"] == length
    assert counted["pread"] == 0  # the middleware's fallback did not read the file
    # Python's socket writes carried the headers (and the stats answers), not the body.
    assert counted["sendall"] < 4096
