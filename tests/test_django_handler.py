"""``zcmiddleware.django`` without a server: which file objects go by path."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from apps import wsgi_django_app  # noqa: F401 (configures Django as the WSGI tests do)
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage

from zcmiddleware.django import regular_file_path


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
