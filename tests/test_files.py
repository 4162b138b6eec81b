"""File handling shared by the adapters: open once, fstat, roots, reads that notice shrinking."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import BinaryIO

import pytest

from zcmiddleware._errors import FileShrankError, NotARegularFileError, SendfileRootError
from zcmiddleware._files import (
    check_size,
    facts_of,
    iter_segments,
    open_fd,
    read_exactly,
    resolve_in_roots,
)
from zcmiddleware._http import FileFacts, FileSlice

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


def open_file(path: str | os.PathLike[str]) -> tuple[BinaryIO, FileFacts]:
    """:func:`open_fd`'s descriptor as a file object that owns it."""
    fd, facts = open_fd(path)
    return os.fdopen(fd, "rb", buffering=0), facts


def test_open_fd_facts_come_from_the_open_descriptor(data_file: Path) -> None:
    file, facts = open_file(data_file)
    with file:
        st = os.fstat(file.fileno())
        assert (facts.size, facts.mtime_ns) == (len(DATA), st.st_mtime_ns)
        # The descriptor is what was measured: replacing the path does not change it.
        data_file.unlink()
        data_file.write_bytes(b"other")
        assert facts_of(file.fileno()).size == len(DATA)
        assert file.read() == DATA


def test_open_fd_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotARegularFileError, match="is not a regular file"):
        open_file(tmp_path)


def test_open_fd_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    with pytest.raises(NotARegularFileError, match=repr(str(fifo))):
        open_file(fifo)


def test_open_fd_refuses_a_device() -> None:
    with pytest.raises(NotARegularFileError):
        open_file("/dev/null")


def test_open_fd_refuses_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(OSError):  # ENXIO on open, before fstat ever sees it
            open_file(path)


def test_open_fd_missing_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_file(tmp_path / "missing")


def test_open_fd_does_not_leak_the_descriptor_on_refusal(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(NotARegularFileError):
            open_file(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_facts_of_refuses_a_pipe() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(NotARegularFileError, match=f"descriptor {r} "):
            facts_of(r)
    finally:
        os.close(r)
        os.close(w)


def test_resolve_in_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    inside = root / "sub" / "a.txt"
    inside.write_text("a")
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    escape = root / "escape.txt"
    escape.symlink_to(outside)
    sibling = tmp_path / "root-evil"  # shares the prefix "root" but is not inside it
    sibling.mkdir()
    (sibling / "b.txt").write_text("b")

    real_root = os.path.realpath(root)  # roots come resolved, as Options stores them
    assert resolve_in_roots(str(inside), [real_root]) == str(inside)
    assert resolve_in_roots(str(root / "sub" / ".." / "sub" / "a.txt"), [real_root]) == str(inside)
    assert resolve_in_roots(str(inside), [str(tmp_path / "nope"), real_root]) == str(inside)
    for bad in (outside, escape, sibling / "b.txt", root / ".." / "secret.txt"):
        with pytest.raises(SendfileRootError, match="outside the configured sendfile roots"):
            resolve_in_roots(str(bad), [real_root])
    with pytest.raises(SendfileRootError):
        resolve_in_roots(str(inside), [])


def test_a_symlinked_root_is_resolved_once_when_the_middleware_is_built(
    tmp_path: Path,
) -> None:
    from zcmiddleware._options import Options

    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("f")
    link = tmp_path / "link"
    link.symlink_to(real)
    roots = Options.build(sendfile_header="X-Sendfile", sendfile_roots=link).sendfile_roots
    assert roots == (os.path.realpath(real),)
    assert resolve_in_roots(str(link / "f"), roots) == os.path.realpath(real / "f")
    # Pointing the link elsewhere later does not move the root.
    other = tmp_path / "other"
    other.mkdir()
    (other / "g").write_text("g")
    link.unlink()
    link.symlink_to(other)
    with pytest.raises(SendfileRootError):
        resolve_in_roots(str(link / "g"), roots)


def test_read_exactly_and_shrinking(data_file: Path) -> None:
    file, _ = open_file(data_file)
    with file:
        fd = file.fileno()
        assert read_exactly(fd, 100, 50) == DATA[100:150]
        assert read_exactly(fd, 0, 0) == b""
        os.truncate(data_file, 120)
        with pytest.raises(FileShrankError, match="ended at byte 120 .* announced 150"):
            read_exactly(fd, 100, 50)


def test_read_exactly_continues_after_a_short_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # pread may return fewer bytes than asked without the file having ended.
    calls: list[tuple[int, int]] = []

    def short_pread(fd: int, n: int, offset: int) -> bytes:
        calls.append((n, offset))
        return DATA[offset : offset + min(n, 7)]

    monkeypatch.setattr(os, "pread", short_pread)
    assert read_exactly(3, 10, 20) == DATA[10:30]
    assert calls == [(20, 10), (13, 17), (6, 24)]


def test_iter_segments_bounded_chunks(data_file: Path) -> None:
    file, _ = open_file(data_file)
    with file:
        segments = [b"head", FileSlice(1000, 5000), b"", FileSlice(0, 1), b"tail"]
        chunks = list(iter_segments(file.fileno(), segments, chunk_size=1024))
        assert b"".join(chunks) == b"head" + DATA[1000:6000] + DATA[0:1] + b"tail"
        assert max(len(c) for c in chunks) == 1024
        assert b"" not in chunks


def test_iter_segments_aborts_when_the_file_shrinks(data_file: Path) -> None:
    file, _ = open_file(data_file)
    with file:
        chunks = iter_segments(file.fileno(), [FileSlice(0, len(DATA))], chunk_size=4096)
        assert next(chunks) == DATA[:4096]
        os.truncate(data_file, 5000)
        with pytest.raises(FileShrankError):
            list(chunks)


def test_open_file_closes_the_descriptor_when_fstat_fails(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zcmiddleware._files as files

    def failing_facts(fd: int) -> object:
        raise OSError("fstat failed")

    monkeypatch.setattr(files, "facts_of", failing_facts)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="fstat failed"):
        open_file(data_file)
    assert len(os.listdir("/proc/self/fd")) == before


def test_check_size(data_file: Path) -> None:
    file, _ = open_file(data_file)
    with file:
        check_size(file.fileno(), len(DATA))  # the whole file is still there
        os.truncate(data_file, 100)
        check_size(file.fileno(), 100)
        with pytest.raises(FileShrankError, match="file is 100 bytes, .* up to 101"):
            check_size(file.fileno(), 101)


def test_a_path_with_a_nul_byte_is_outside_every_root(tmp_path: Path) -> None:
    with pytest.raises(SendfileRootError):
        resolve_in_roots(f"{tmp_path}/a\0b", [str(tmp_path)])
