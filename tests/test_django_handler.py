"""``zcmiddleware.django`` without a server: which file objects go by path."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from apps import wsgi_django_app  # configures Django as the WSGI tests do
from apps.asgi_support import parse_byteranges
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage
from django.core.signals import request_finished

from zcmiddleware import ZeroCopyMiddleware, _asgi
from zcmiddleware.django import ZeroCopyASGIHandler, regular_file_path


def test_importing_zcmiddleware_imports_no_django() -> None:
    code = "import sys, zcmiddleware; print('django' in sys.modules, 'twisted' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_a_binary_file_goes_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    monkeypatch.chdir(tmp_path)
    with open("a.bin", "rb") as f:
        assert regular_file_path(f) == str(tmp_path / "a.bin")
    with io.FileIO("a.bin") as raw:
        assert regular_file_path(raw) == str(tmp_path / "a.bin")


def test_a_django_file_goes_by_the_path_of_the_file_it_wraps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "b.bin").write_bytes(b"y" * 10)
    monkeypatch.chdir(tmp_path)  # the outer name, "b.bin", names nothing here
    storage = FileSystemStorage(location=tmp_path / "media")
    # A FieldFile's name is relative to its storage, as here.
    with File(storage.open("b.bin"), name="b.bin") as f:
        assert regular_file_path(f) == str(tmp_path / "media" / "b.bin")


def test_a_renamed_file_goes_by_where_it_is_now(tmp_path: Path) -> None:
    (tmp_path / "old.bin").write_bytes(b"z")
    with open(tmp_path / "old.bin", "rb") as f:
        (tmp_path / "old.bin").rename(tmp_path / "new.bin")
        (tmp_path / "old.bin").write_bytes(b"another file")
        assert regular_file_path(f) == str(tmp_path / "new.bin")


def test_files_whose_bytes_django_must_send_itself(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_bytes(b"a\r\nb" * 10)
    with gzip.open(tmp_path / "c.gz", "wb") as g:
        g.write(b"compressed")
    with open(tmp_path / "c.txt", "rb") as f:
        f.seek(1)  # Django sends from the current position
        assert regular_file_path(f) is None
    with open(tmp_path / "c.txt") as text:  # newline translation: other bytes
        assert regular_file_path(text) is None
    with gzip.open(tmp_path / "c.gz", "rb") as g:  # has fileno() and name, reads others
        assert regular_file_path(g) is None
    assert regular_file_path(io.BytesIO(b"in memory")) is None
    r, w = os.pipe()
    with open(r, "rb") as pipe, open(w, "wb"):
        assert regular_file_path(pipe) is None
    f = open(tmp_path / "c.txt", "rb")  # noqa: SIM115
    f.close()
    assert regular_file_path(f) is None


def test_a_deleted_file_is_left_to_django(tmp_path: Path) -> None:
    (tmp_path / "d.bin").write_bytes(b"d")
    with open(tmp_path / "d.bin", "rb") as f:
        (tmp_path / "d.bin").unlink()
        assert regular_file_path(f) is None


# --- in process, through the middleware's public protocol only ----------------------


def _serve(method: str, handle_ranges: bool, **headers: str) -> httpx.Response:
    """One request to ``ZeroCopyMiddleware(ZeroCopyASGIHandler())`` over httpx's ASGI
    transport (a server that offers neither pathsend nor zerocopysend)."""
    app = ZeroCopyMiddleware(
        ZeroCopyASGIHandler(), handle_ranges=handle_ranges, debug_header="X-ZC-Path"
    )

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, "/file/data.bin", headers=headers)

    return asyncio.run(main())


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(wsgi_django_app, "DATA_DIR", str(tmp_path))
    content = os.urandom(300_000)
    (tmp_path / "data.bin").write_bytes(content)
    return content


def test_ranges_in_process(tmp_path: Path, data: bytes) -> None:
    response = _serve("GET", True, range="bytes=10-19,-5")
    assert response.status_code == 206
    parts = parse_byteranges(response.headers["content-type"], response.content)
    assert [body for _, body in parts] == [data[10:20], data[-5:]]
    assert response.headers["x-zc-path"] == "fallback"


def test_head_and_validators_reaching_django_unhidden(tmp_path: Path, data: bytes) -> None:
    # handle_ranges=False: HEAD reaches Django as HEAD, the validators and Range as
    # sent. The file still goes by path, and the HEAD is still answered without a body.
    head = _serve("HEAD", False, if_none_match='"x"')
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["x-zc-path"] == "none"
    whole = _serve("GET", False, range="bytes=0-9")
    assert (whole.status_code, whole.content) == (200, data)  # the app chose 200


def _count_closes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the WSGI test app's view open counting files; the list grows by one per
    file really closed."""
    closes: list[int] = []

    class CountingFile(io.BufferedReader):
        def close(self) -> None:
            if not self.closed:
                closes.append(1)
            super().close()

    def counting_open(path: str, mode: str) -> CountingFile:
        return CountingFile(io.FileIO(path))

    monkeypatch.setattr(wsgi_django_app, "open", counting_open, raising=False)
    return closes


def test_a_file_gone_before_the_middleware_opens_it_is_closed_once(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def vanished(path: str) -> Any:
        raise FileNotFoundError(path)

    finished = []
    monkeypatch.setattr(_asgi, "open_fd", vanished)
    closes = _count_closes(monkeypatch)
    request_finished.connect(receiver := lambda **kw: finished.append(1), weak=False)
    try:
        with pytest.raises(FileNotFoundError):
            _serve("GET", True)
    finally:
        request_finished.disconnect(receiver)
    assert finished == [1]
    assert closes == [1]
