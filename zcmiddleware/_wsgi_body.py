"""WSGI bodies: the file wrapper the app is given, and the bodies handed to the
server -- gunicorn's own ``FileWrapper`` (``sendfile(2)``), ``uwsgi.sendfile``, or a
bounded iterator. See docs/wsgi.md for what each server does with them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from stat import S_ISREG
from typing import TYPE_CHECKING, Protocol

from ._files import check_size, iter_segments, read_exactly, shrank
from ._http import FileSlice, Plan
from ._options import Delivery

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "GUNICORN_BODIES",
    "AppFileWrapper",
    "Body",
    "deliver",
    "deliver_slice",
    "file_in",
    "gunicorn_body",
    "regular_fd",
]

#: The module of gunicorn's ``FileWrapper``: checked by name, not by import (gunicorn
#: need not be installed).
GUNICORN_WSGI = "gunicorn.http.wsgi"


class _FileLike(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Response(Protocol):
    """A body handed to the server: iterable, and closed by it."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class AppFileWrapper:
    """What the app gets as ``environ["wsgi.file_wrapper"](file, blksize)``.

    Iterable like any file wrapper (read ``blksize`` at a time), so an app or an
    inner middleware that iterates it still works; the middleware recognises it by
    identity when the app returns it and sends the file its own way. ``fd``, ``size``
    and ``mtime_ns`` are those of the regular file inside (``fd`` None: not one).
    """

    __slots__ = ("filelike", "blksize", "fd", "size", "mtime_ns", "closed")

    def __init__(
        self,
        filelike: _FileLike,
        blksize: int = 8192,
        fd: int | None = None,
        size: int = 0,
        mtime_ns: int = 0,
    ) -> None:
        self.filelike = filelike
        self.blksize = blksize
        self.fd = fd
        self.size = size
        self.mtime_ns = mtime_ns
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        # Exactly once, whoever asks first (the server, the app's response object, or
        # the middleware): Django hangs ``response.close`` (which sends
        # ``request_finished``) on the file's ``close``.
        if self.closed:
            return
        self.closed = True
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class Body:
    """A response body the middleware built: ``close()`` runs ``closer`` once."""

    __slots__ = ("_chunks", "_closer")

    def __init__(self, chunks: Iterable[bytes], closer: Callable[[], None]) -> None:
        self._chunks = chunks
        self._closer: Callable[[], None] | None = closer

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()


class _SlicedFile:
    """``count`` bytes of a file from ``offset``, as gunicorn sends a body: its own
    ``FileWrapper`` and the file-like inside it in one object (see
    :func:`gunicorn_body`).

    gunicorn sendfiles ``Content-Length`` bytes from the descriptor's current position
    (``fileno`` + ``lseek``); when it cannot (TLS, ``--no-sendfile``) it iterates the
    wrapper, which calls ``read`` -- bounded here, and aborting if the file shrank.
    ``sendfile(2)`` cannot tell us it met the end of a shrunken file early, so
    ``close`` checks the size and raises: gunicorn then drops the connection instead
    of keeping alive one whose response came out short.
    """

    __slots__ = ("_fd", "_pos", "_end", "_chunk_size", "_closer")

    def __init__(
        self, fd: int, offset: int, count: int, chunk_size: int, closer: Callable[[], None]
    ) -> None:
        self._fd = fd
        self._pos = offset
        self._end = offset + count
        self._chunk_size = chunk_size
        self._closer: Callable[[], None] | None = closer

    @property
    def filelike(self) -> _SlicedFile:
        # What gunicorn reads from its FileWrapper: the file-like is the slice itself.
        return self

    @property
    def blksize(self) -> int:
        return self._chunk_size

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.read(self._chunk_size)
        if data:
            return data
        raise StopIteration

    def fileno(self) -> int:
        return self._fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # gunicorn hands this object to ``socket.sendfile``, which falls back to
        # seek + read when os.sendfile fails before sending anything (a client that
        # has just gone away, a file system without sendfile): positions are absolute
        # file offsets, as for the descriptor itself.
        if whence != os.SEEK_SET:
            raise OSError(f"seek whence={whence} is not supported")
        self._pos = offset
        return offset

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        n = min(self._end - self._pos, self._chunk_size if size < 0 else size)
        if n <= 0:
            return b""
        data = read_exactly(self._fd, self._pos, n)
        self._pos += n
        return data

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is None:
            return
        end = self._end
        try:
            # gunicorn has sent (and restored the offset): nothing reads by it now, so
            # the size is asked by lseek(SEEK_END), cheaper than fstat's stat_result.
            size = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            size = end  # the descriptor is unusable: there is nothing to check against
        finally:
            closer()
        if size < end:
            raise shrank(size, end)


#: The body class made for each gunicorn ``FileWrapper`` class met (gunicorn has one):
#: a server wrapper found here is gunicorn's, with no look at its module again.
GUNICORN_BODIES: dict[type, type[_SlicedFile]] = {}


def gunicorn_body(server_wrapper: object) -> type[_SlicedFile] | None:
    """The body for gunicorn when ``server_wrapper`` is gunicorn's ``FileWrapper`` class
    (checked by module, not by import: gunicorn need not be installed), else None.

    A :class:`_SlicedFile` that is an instance of gunicorn's ``FileWrapper`` too, since
    gunicorn sendfiles only an instance of the class in its environ (docs/wsgi.md,
    ``Response.sendfile``) -- one object per response instead of a wrapper around a
    slice. gunicorn's ``__init__`` is not run: ``filelike`` and ``blksize`` are the
    slice's own, ``close`` is the slice's."""
    if not isinstance(server_wrapper, type) or server_wrapper.__module__ != GUNICORN_WSGI:
        return None
    body = GUNICORN_BODIES.get(server_wrapper)
    if body is None:
        # Two threads may both make one: either serves.
        body = type("GunicornFileSlice", (_SlicedFile, server_wrapper), {"__slots__": ()})
        GUNICORN_BODIES[server_wrapper] = body
    return body


# uwsgi.sendfile parses its position and length as C ints.
_C_INT_MAX = 2**31 - 1


def _uwsgi_sendfile(environ: WSGIEnvironment) -> Callable[..., object] | None:
    """``uwsgi.sendfile`` when running under uWSGI, else None."""
    if "uwsgi.version" not in environ:
        return None
    module = sys.modules.get("uwsgi")
    sendfile = getattr(module, "sendfile", None)
    return sendfile if callable(sendfile) else None


def _uwsgi_body(
    sendfile: Callable[..., object], fd: int, offset: int, count: int
) -> Iterator[bytes]:
    """Send by ``uwsgi.sendfile(fd, chunk, pos, len)`` when the server iterates the body.

    uWSGI sends the headers and then ``len`` bytes from ``pos`` with sendfile(2)
    before it returns, and closes the descriptor it is given, so it gets a duplicate
    and the app's file is closed by the app's ``close`` (docs/wsgi.md, "Servers").
    Nothing tells us a shrunken file ended early, so the size is checked afterwards.
    """
    sendfile(os.dup(fd), 0, offset, count)
    check_size(fd, offset + count)
    yield from ()


def file_in(iterable: object, server_wrapper: object) -> object | None:
    """The file object inside a Werkzeug, wsgiref or server file wrapper, else None."""
    cls = type(iterable)
    if cls.__name__ == "FileWrapper":
        if cls.__module__ == "werkzeug.wsgi":
            return getattr(iterable, "file", None)
        if cls.__module__ in ("wsgiref.util", GUNICORN_WSGI):
            return getattr(iterable, "filelike", None)
    if isinstance(server_wrapper, type) and isinstance(iterable, server_wrapper):
        # PEP 3333's sample and gunicorn say ``filelike``; waitress says ``file``.
        return getattr(iterable, "filelike", None) or getattr(iterable, "file", None)
    return None


def regular_fd(filelike: object) -> tuple[int, os.stat_result] | None:
    """The descriptor and ``fstat`` of a file object over a regular file, else None (a
    BytesIO, a pipe, a socket: those stay the app's to send)."""
    fileno = getattr(filelike, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
        if not isinstance(fd, int):
            return None
        st = os.fstat(fd)
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return (fd, st) if S_ISREG(st.st_mode) else None


def deliver(
    plan: Plan, fd: int, closer: Callable[[], None], environ: WSGIEnvironment, chunk_size: int
) -> tuple[_Response, Delivery]:
    """The body for ``plan``, in the form this server sends fastest, and its name."""
    segments = plan.segments
    if len(segments) == 1 and isinstance(segments[0], FileSlice):
        only = segments[0]
        return deliver_slice(fd, only.offset, only.count, closer, environ, chunk_size)
    if not segments:
        # HEAD, 304, 412, 416, an empty file, a body handed to nginx: headers only.
        return Body((), closer), Delivery.NONE
    return Body(iter_segments(fd, segments, chunk_size), closer), Delivery.FALLBACK


def deliver_slice(
    fd: int,
    offset: int,
    count: int,
    closer: Callable[[], None],
    environ: WSGIEnvironment,
    chunk_size: int,
) -> tuple[_Response, Delivery]:
    """The body of ``count`` bytes of the file from ``offset`` (none when ``count`` is
    0), in the form this server sends fastest, and its name."""
    if not count:
        return Body((), closer), Delivery.NONE
    # gunicorn sendfiles Content-Length (= count) bytes from the current position, and
    # only for an instance of its own class (docs/wsgi.md, ``Response.sendfile``);
    # other servers' wrappers are not known to.
    body_type = gunicorn_body(environ.get("wsgi.file_wrapper"))
    if body_type is not None:
        os.lseek(fd, offset, os.SEEK_SET)
        return body_type(fd, offset, count, chunk_size, closer), Delivery.FILE_WRAPPER
    uwsgi_sendfile = _uwsgi_sendfile(environ)
    if uwsgi_sendfile is not None and offset <= _C_INT_MAX >= count:
        body = _uwsgi_body(uwsgi_sendfile, fd, offset, count)
        return Body(body, closer), Delivery.UWSGI_SENDFILE
    segments = (FileSlice(offset, count),)
    return Body(iter_segments(fd, segments, chunk_size), closer), Delivery.FALLBACK
