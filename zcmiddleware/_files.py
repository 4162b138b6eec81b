"""File handling shared by the adapters: open once, fstat that descriptor, check it.

Blocking calls live here and nowhere near an event loop: the ASGI side calls these
functions through :func:`._aio.off_loop`; the WSGI side calls them directly.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence

from ._errors import FileShrankError, NotARegularFileError, SendfileRootError
from ._http import FileFacts, FileSlice, Segment
from ._options import DEFAULT_CHUNK_SIZE, PRECOMPRESSED_SUFFIXES

__all__ = [
    "OPEN_FLAGS",
    "check_size",
    "facts_of",
    "iter_segments",
    "open_fd",
    "open_in_roots",
    "open_variant",
    "read_exactly",
    "regular_stat",
    "resolve_in_roots",
    "shrank",
]


def facts_of(fd: int) -> FileFacts:
    """Size and mtime of an open descriptor; refuses anything but a regular file."""
    st = regular_stat(fd)
    return FileFacts(size=st.st_size, mtime_ns=st.st_mtime_ns)


def regular_stat(fd: int) -> os.stat_result:
    """``fstat`` of an open descriptor; refuses anything but a regular file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFileError(f"file descriptor {fd} is not a regular file")
    return st


#: How every file sent is opened (see :func:`open_fd`).
OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def open_fd(path: str | os.PathLike[str]) -> tuple[int, FileFacts]:
    """Open ``path`` for reading and ``fstat`` the descriptor that will be sent.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; it is refused right after by
    the regular-file check (and has no effect on reads of a regular file).
    """
    fd = os.open(path, OPEN_FLAGS)
    try:
        facts = facts_of(fd)
    except NotARegularFileError:
        os.close(fd)
        raise NotARegularFileError(f"{os.fspath(path)!r} is not a regular file") from None
    except BaseException:
        os.close(fd)
        raise
    return fd, facts


def resolve_in_roots(path: str, roots: Sequence[str]) -> str:
    """The real path of ``path`` (symlinks resolved) if it lies inside one of ``roots``
    -- real paths, as :class:`._options.Options` stores them, resolved once when the
    middleware was built -- else :class:`SendfileRootError`."""
    if "\0" in path:  # no file has one; realpath would raise ValueError
        raise SendfileRootError("a path with a NUL byte is outside every root")
    real = os.path.realpath(path)
    for root in roots:
        if os.path.commonpath([real, root]) == root:
            return real
    raise SendfileRootError(f"{path!r} is outside the configured sendfile roots")


def open_in_roots(path: str, roots: Sequence[str]) -> tuple[str, int, FileFacts]:
    """Open a ``sendfile_header`` path that must lie inside ``roots`` (real paths):
    its real path, the descriptor and its facts; :class:`SendfileRootError` if it is
    outside every root, before or after the open."""
    real = resolve_in_roots(path, roots)
    fd, facts = open_fd(real)
    # A directory on the resolved path could be swapped for a symlink between the check
    # and the open: check again what was actually opened (Linux names it in /proc).
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return real, fd, facts  # no /proc: the check above is what we have
    try:
        resolve_in_roots(opened, roots)
    except BaseException:
        os.close(fd)
        raise
    return real, fd, facts


def open_variant(path: str, coding: str, original: FileFacts) -> tuple[int, FileFacts] | None:
    """The precompressed variant of ``path`` for ``coding`` (``path + ".br"`` ...):
    its descriptor and facts, or None when there is none that may be served -- missing,
    not a regular file, or older than the original (a stale compression)."""
    try:
        fd, facts = open_fd(path + PRECOMPRESSED_SUFFIXES[coding])
    except OSError:
        return None
    if facts.mtime_ns < original.mtime_ns:
        os.close(fd)
        return None
    return fd, facts


def check_size(fd: int, end: int) -> None:
    """:class:`FileShrankError` unless the file still reaches byte ``end``.

    For bytes sent by ``sendfile(2)``, which stops quietly at the end of a file that
    shrank: checked after the send, before the response is completed.
    """
    size = os.fstat(fd).st_size
    if size < end:
        raise shrank(size, end)


def shrank(size: int, end: int) -> FileShrankError:
    """The error for a file found ``size`` bytes long after the send of a response that
    announced bytes up to ``end``."""
    return FileShrankError(
        f"file is {size} bytes, the response announced bytes up to {end}: "
        "it shrank while being sent"
    )


def read_exactly(fd: int, offset: int, count: int) -> bytes:
    """``count`` bytes at ``offset``, or :class:`FileShrankError` if the file ends first."""
    data = os.pread(fd, count, offset)
    while len(data) < count:
        more = os.pread(fd, count - len(data), offset + len(data))
        if not more:
            raise FileShrankError(
                f"file ended at byte {offset + len(data)} of a response that announced "
                f"{offset + count}: it shrank while being sent"
            )
        data += more
    return data


def iter_segments(
    fd: int, segments: Iterable[Segment], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes]:
    """The planned body as chunks of at most ``chunk_size`` bytes, read by position
    (``pread``) so the descriptor's offset is never relied on. Memory: one chunk."""
    for segment in segments:
        if isinstance(segment, FileSlice):
            offset, end = segment.offset, segment.offset + segment.count
            while offset < end:
                n = min(chunk_size, end - offset)
                yield read_exactly(fd, offset, n)
                offset += n
        elif segment:
            yield segment
