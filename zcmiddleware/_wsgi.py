"""WSGI adapter: file responses of Flask, Django and Werkzeug apps on the server's
sendfile path, Range and conditional requests included.

The middleware learns which file the app is sending in one of three ways, asks the
planning core (:mod:`._http`) what to answer, and hands the planned bytes to the
server in the form that server sends fastest:

- it puts its own ``wsgi.file_wrapper`` into a *copy* of the environ given to the
  app (Flask's ``send_file`` and Django's WSGI handler call it), so the file object
  is known; it also recognises Werkzeug's ``FileWrapper`` and the server's own
  wrapper when an app builds them itself;
- opt-in, a response header naming a path (``X-Sendfile``), honoured only inside
  configured roots.

Delivery (see ``docs/wsgi.md`` for what was measured):

- gunicorn (sync, gthread): an instance of gunicorn's *own* ``FileWrapper`` class
  around the descriptor, ``lseek``-ed to the offset, with ``Content-Length`` = count.
  gunicorn checks ``isinstance(respiter, environ["wsgi.file_wrapper"])`` on the
  environ *it* built and then ``sendfile(2)``-s ``Content-Length`` bytes from the
  current position -- full responses and single ranges both go zero-copy;
- uWSGI: ``uwsgi.sendfile`` with an offset and a length (within its C ints). Its
  ``wsgi.file_wrapper`` is never given the file: it sends the whole file from byte 0
  whatever the position and Content-Length;
- every other server (waitress, Werkzeug's dev server, test clients), and
  multipart answers everywhere: a bounded iterator over exactly the planned bytes,
  read by position, one chunk in memory.
"""

from __future__ import annotations

import http
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from ._files import (
    DEFAULT_CHUNK_SIZE,
    FileChangedError,
    check_size,
    facts_of,
    iter_segments,
    open_file,
    read_exactly,
    resolve_in_roots,
)
from ._http import FileFacts, FileSlice, Plan, plan_response

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    _ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
    _OptExcInfo = _ExcInfo | tuple[None, None, None]

__all__ = ["ZeroCopyWSGIMiddleware"]

logger = logging.getLogger("zcmiddleware.wsgi")

# The request headers the planner reads, by their environ keys.
_PLANNER_KEYS = (
    ("HTTP_RANGE", "range"),
    ("HTTP_IF_RANGE", "if-range"),
    ("HTTP_IF_MATCH", "if-match"),
    ("HTTP_IF_NONE_MATCH", "if-none-match"),
    ("HTTP_IF_MODIFIED_SINCE", "if-modified-since"),
    ("HTTP_IF_UNMODIFIED_SINCE", "if-unmodified-since"),
)
# Hidden from the app on every GET/HEAD, before it runs: with them Werkzeug wraps the
# file in ``_RangeWrapper``, which no server can sendfile.
_RANGE_KEYS = ("HTTP_RANGE", "HTTP_IF_RANGE")
# Hidden only once the app hands a regular file to our ``wsgi.file_wrapper``: from
# then on the answer is the planner's, and Werkzeug's ``make_conditional`` (which runs
# after the file is wrapped) must not answer 304/412 first. Hiding them up front would
# also switch off conditional GET for every page that is not a file.
_CONDITIONAL_KEYS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)
# Statuses that carry no body (RFC 9110 §15.2, §15.3.5, §15.4.5), and the ones whose
# body is never the file (§15.5.13, §15.5.17) when an app answers them itself.
_BODILESS = frozenset({204, 304})
_NOT_THE_FILE = _BODILESS | {412, 416}


class _FileLike(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Response(Protocol):
    """A body handed to the server: iterable, and closed by it."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def _status_line(code: int) -> str:
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def _status_code(status: str) -> int:
    try:
        return int(status[:3])
    except ValueError:
        return 0


class _AppFileWrapper:
    """What the app gets as ``environ["wsgi.file_wrapper"](file, blksize)``.

    Iterable like any file wrapper (read ``blksize`` at a time), so an app or an
    inner middleware that iterates it still works; the middleware recognises it by
    identity when the app returns it and sends the file its own way.
    """

    __slots__ = ("filelike", "blksize", "fd", "facts", "closed")

    def __init__(self, filelike: _FileLike, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        self.fd: int | None = None
        self.facts: FileFacts | None = None
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


class _Body:
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
    """The file-like given to gunicorn's ``FileWrapper``: ``count`` bytes from ``offset``.

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
        error: FileChangedError | None = None
        try:
            check_size(self._fd, self._end)
        except FileChangedError as exc:
            error = exc
        except OSError:
            pass  # the descriptor is unusable: there is nothing to check against
        finally:
            closer()
        if error is not None:
            raise error


def _gunicorn_wrapper(environ: WSGIEnvironment) -> type | None:
    """gunicorn's ``FileWrapper`` class if this server is gunicorn, else None.

    Checked by module, not by import, so gunicorn need not be installed; only the
    wrapper of ``gunicorn.http.wsgi`` is known to honour the position and
    ``Content-Length`` (``Response.sendfile``).
    """
    wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(wrapper, type) and wrapper.__module__ == "gunicorn.http.wsgi":
        return wrapper
    return None


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

    Measured on pyuwsgi 2.0.30: it sends the headers and then ``len`` bytes from
    ``pos`` with sendfile(2) before it returns, and closes the descriptor it is given,
    so it gets a duplicate and the app's file is closed by the app's ``close``.
    (Its ``wsgi.file_wrapper``, by contrast, sends the whole file from byte 0.)
    Nothing tells us a shrunken file ended early, so the size is checked afterwards.
    """
    sendfile(os.dup(fd), 0, offset, count)
    check_size(fd, offset + count)
    yield from ()


def _wrapped_file(iterable: object, server_wrapper: object) -> object | None:
    """The file object inside a Werkzeug, wsgiref or server file wrapper, else None."""
    cls = type(iterable)
    if cls.__name__ == "FileWrapper":
        if cls.__module__ == "werkzeug.wsgi":
            return getattr(iterable, "file", None)
        if cls.__module__ in ("wsgiref.util", "gunicorn.http.wsgi"):
            return getattr(iterable, "filelike", None)
    if isinstance(server_wrapper, type) and isinstance(iterable, server_wrapper):
        # PEP 3333's sample and gunicorn say ``filelike``; waitress says ``file``.
        return getattr(iterable, "filelike", None) or getattr(iterable, "file", None)
    return None


def _regular_fd(filelike: object) -> tuple[int, FileFacts] | None:
    """The descriptor and facts of a file object over a regular file, else None (a
    BytesIO, a pipe, a socket: those stay the app's to send)."""
    fileno = getattr(filelike, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
        if not isinstance(fd, int):
            return None
        return fd, facts_of(fd)
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


class ZeroCopyWSGIMiddleware:
    """Serve a WSGI app's file responses -- and their Range requests -- zero-copy.

    ``app.wsgi_app = ZeroCopyWSGIMiddleware(app.wsgi_app)`` (Flask) or
    ``application = ZeroCopyWSGIMiddleware(get_wsgi_application())`` (Django).

    :param sendfile_header: a response header (e.g. ``"X-Sendfile"``) naming a file to
        send instead of the body; honoured only for paths inside ``sendfile_roots``,
        and never sent to the client. Off by default.
    :param sendfile_roots: directories the ``sendfile_header`` path must lie in,
        symlinks resolved.
    :param handle_ranges: answer Range and conditional requests for file responses
        (``docs/http.md``). With ``False`` the app sees every header and only its
        whole-file 200s are sent zero-copy.
    :param exclude_paths: path prefixes (``SCRIPT_NAME + PATH_INFO``) treated as if
        ``handle_ranges`` were off, for apps that answer Range themselves there;
        their whole-file responses still go zero-copy.
    :param debug_header: a response header that names the delivery path taken
        (``file_wrapper``, ``uwsgi.sendfile``, ``fallback``, ``none``), for
        troubleshooting; also logged at DEBUG on the ``zcmiddleware.wsgi`` logger.
    :param chunk_size: bytes per read when the server has no sendfile path.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        sendfile_header: str | None = None,
        sendfile_roots: Sequence[str | os.PathLike[str]] = (),
        handle_ranges: bool = True,
        exclude_paths: Sequence[str] = (),
        debug_header: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if sendfile_header is not None and not sendfile_roots:
            raise ValueError("sendfile_header needs at least one directory in sendfile_roots")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
        self.app = app
        self.sendfile_header = sendfile_header.lower() if sendfile_header else None
        self.sendfile_roots = tuple(sendfile_roots)
        self.handle_ranges = handle_ranges
        self.exclude_paths = tuple(exclude_paths)
        self.debug_header = debug_header
        self.chunk_size = chunk_size

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        handles = self.handle_ranges
        if handles and self.exclude_paths:
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            handles = not path.startswith(self.exclude_paths)
        return _Exchange(self, environ, start_response, handles).run()


class _Exchange:
    """One request through the middleware."""

    def __init__(
        self,
        middleware: ZeroCopyWSGIMiddleware,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        handle_ranges: bool,
    ) -> None:
        self.mw = middleware
        self.handle_ranges = handle_ranges
        self.server_environ = environ
        self.server_start_response = start_response
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        # The planner sees the request as the client sent it, whatever the app saw.
        self.request_headers = {name: environ[key] for key, name in _PLANNER_KEYS if key in environ}
        # A copy: gunicorn reads ``wsgi.file_wrapper`` back from *its* dict for its
        # isinstance check, and the server's environ is not ours to change.
        app_environ = dict(environ)
        app_environ["wsgi.file_wrapper"] = self.wrap_file
        self.hidden: dict[str, str] = {}
        if handle_ranges and self.method in ("GET", "HEAD"):
            for key in _RANGE_KEYS:
                if key in app_environ:
                    self.hidden[key] = app_environ.pop(key)
        self.app_environ = app_environ
        self.wrappers: list[_AppFileWrapper] = []
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.server_write: Callable[[bytes], object] | None = None
        self.app_closed = False

    # ------------------------------------------------------------------ app side

    def wrap_file(self, filelike: _FileLike, blksize: int = 8192) -> _AppFileWrapper:
        wrapper = _AppFileWrapper(filelike, blksize)
        found = _regular_fd(filelike)
        if found is None:
            # Not a file we can send (BytesIO, a pipe): the app keeps the response,
            # so it gets its Range back and answers it itself.
            self.app_environ.update(self.hidden)
        else:
            wrapper.fd, wrapper.facts = found
            if self.handle_ranges:
                for key in _CONDITIONAL_KEYS:
                    self.app_environ.pop(key, None)
        self.wrappers.append(wrapper)
        return wrapper

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: _OptExcInfo | None = None,
    ) -> Callable[[bytes], object]:
        if self.server_write is not None:
            # Headers already went to the server: it decides (PEP 3333: re-raise
            # if they were sent, else replace them).
            return self.server_start_response(status, headers, exc_info)
        if self.status is not None and not exc_info:
            raise AssertionError("start_response called a second time without exc_info")
        # Not sent yet: an error handler may replace status and headers.
        self.status = status
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        # PEP 3333's legacy write(): the body is the app's own bytes, not a file, so
        # the response is committed as the app set it.
        if self.server_write is None:
            self.commit(self.status_or_fail(), self.strip_private(self.headers))
        assert self.server_write is not None
        self.server_write(data)

    def commit(self, status: str, headers: list[tuple[str, str]]) -> Callable[[bytes], object]:
        self.server_write = self.server_start_response(status, headers)
        return self.server_write

    def status_or_fail(self) -> str:
        if self.status is None:
            raise RuntimeError("the application did not call start_response")
        return self.status

    def strip_private(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # HTTP.md: a header that carries a file path never reaches the client.
        name = self.mw.sendfile_header
        if name is None:
            return headers
        return [(k, v) for k, v in headers if k.lower() != name]

    # -------------------------------------------------------------------- flow

    def run(self) -> Iterable[bytes]:
        try:
            result = self.mw.app(self.app_environ, self.start_response)
        except BaseException:
            self.close_wrappers()
            raise
        try:
            return self.respond(result)
        except BaseException:
            self.close_app(result)
            raise

    def respond(self, result: Iterable[bytes]) -> Iterable[bytes]:
        if self.server_write is not None:
            # The app used write(): its response is already under way.
            return result if not self.wrappers else _Body(result, self.closer(result))
        if self.status is None:
            # PEP 3333 allows start_response on the first iteration (generators).
            # Such a body is never a file object, but it can still carry X-Sendfile.
            return self.respond_lazy(result)

        code = _status_code(self.status)
        source = self.file_source(result)
        if self.mw.sendfile_header is not None and any(
            k.lower() == self.mw.sendfile_header for k, _ in self.headers
        ):
            return self.respond_sendfile_header(result, code)
        if source is None:
            self.commit(self.status, self.headers)
            return result if not self.wrappers else _Body(result, self.closer(result))
        fd, facts = source
        if code in _BODILESS or code < 200:
            self.commit(self.status, self.headers)
            self.close_app(result)
            return _Body((), _noop)
        return self.send_file(fd, facts, code, self.headers, self.closer(result))

    def respond_lazy(self, result: Iterable[bytes]) -> Iterable[bytes]:
        iterator = iter(result)
        first: list[bytes] = []
        for chunk in iterator:
            if chunk:
                first.append(chunk)
                break
        status = self.status_or_fail()
        if self.server_write is not None:
            pass  # it used write() from inside the generator
        elif self.mw.sendfile_header is not None and any(
            k.lower() == self.mw.sendfile_header for k, _ in self.headers
        ):
            return self.respond_sendfile_header(result, _status_code(status))
        else:
            self.commit(status, self.headers)
        return _Body(_chain(first, iterator), self.closer(result))

    def respond_sendfile_header(self, result: Iterable[bytes], code: int) -> Iterable[bytes]:
        name = self.mw.sendfile_header
        path = next(v for k, v in self.headers if k.lower() == name)
        headers = self.strip_private(self.headers)
        # The app's own body (empty for Flask) is replaced by the file.
        self.close_app(result)
        if code in _NOT_THE_FILE or code < 200:
            # The app already answered 304/412/...: nothing of the file goes out.
            self.commit(self.status_or_fail(), headers)
            return _Body((), _noop)
        try:
            real = resolve_in_roots(path, self.mw.sendfile_roots)
            file, facts = open_file(real)
        except OSError as exc:  # outside the roots, missing, not a regular file, EACCES
            # Logged with the path; answered without it.
            logger.error("%s header refused: %s", name, exc)
            missing = isinstance(exc, FileNotFoundError)
            return self.error_response(404 if missing else 500)
        return self.send_file(file.fileno(), facts, code, headers, file.close)

    def error_response(self, code: int) -> Iterable[bytes]:
        body = b"Not Found" if code == 404 else b"Internal Server Error"
        self.commit(
            _status_line(code),
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def file_source(self, result: Iterable[bytes]) -> tuple[int, FileFacts] | None:
        for wrapper in self.wrappers:
            if result is wrapper:
                if wrapper.fd is None or wrapper.facts is None:
                    return None
                return wrapper.fd, wrapper.facts
        server_wrapper = self.server_environ.get("wsgi.file_wrapper")
        filelike = _wrapped_file(result, server_wrapper)
        if filelike is not None:
            return _regular_fd(filelike)
        # Werkzeug answers HEAD with an empty ``ClosingIterator`` whose ``close``
        # closes the wrapper it built: that wrapper is this response's file.
        if self.method == "HEAD" and len(self.wrappers) == 1:
            wrapper = self.wrappers[0]
            if not wrapper.closed and wrapper.fd is not None and wrapper.facts is not None:
                return wrapper.fd, wrapper.facts
        return None

    # ------------------------------------------------------------------ delivery

    def send_file(
        self,
        fd: int,
        facts: FileFacts,
        code: int,
        app_headers: list[tuple[str, str]],
        closer: Callable[[], None],
    ) -> Iterable[bytes]:
        try:
            request_headers = self.request_headers if self.handle_ranges else {}
            plan = plan_response(self.method, request_headers, code, facts, app_headers)
            headers = plan.apply(app_headers)
            if not self.handle_ranges and not any(
                k.lower() == "accept-ranges" for k, _ in app_headers
            ):
                # The app answers Range itself here; do not promise what it may not do.
                headers = [(k, v) for k, v in headers if k != "accept-ranges"]
            body, path = self.deliver(plan, fd, closer)
        except BaseException:
            closer()
            raise
        if self.mw.debug_header:
            headers.append((self.mw.debug_header, path))
        status = self.status if plan.status == code and self.status else None
        logger.debug("%s %s -> %s via %s", self.method, self.path(), plan.status, path)
        try:
            self.commit(status or _status_line(plan.status), headers)
        except BaseException:
            body.close()
            raise
        return body

    def deliver(self, plan: Plan, fd: int, closer: Callable[[], None]) -> tuple[_Response, str]:
        segments = plan.segments
        if not segments:
            # HEAD, 304, 412, 416, an empty file: headers only.
            return _Body((), closer), "none"
        wrapper = _gunicorn_wrapper(self.server_environ)
        if wrapper is not None and len(segments) == 1 and isinstance(segments[0], FileSlice):
            # gunicorn sendfiles Content-Length (= count) bytes from the current
            # position, and only for an instance of its own class (SERVERS.md).
            piece = segments[0]
            os.lseek(fd, piece.offset, os.SEEK_SET)
            filelike = _SlicedFile(fd, piece.offset, piece.count, self.mw.chunk_size, closer)
            response: _Response = wrapper(filelike, self.mw.chunk_size)
            return response, "file_wrapper"
        uwsgi_sendfile = _uwsgi_sendfile(self.server_environ)
        if uwsgi_sendfile is not None and len(segments) == 1:
            only = segments[0]
            if isinstance(only, FileSlice) and only.offset <= _C_INT_MAX >= only.count:
                body = _uwsgi_body(uwsgi_sendfile, fd, only.offset, only.count)
                return _Body(body, closer), "uwsgi.sendfile"
        return _Body(iter_segments(fd, segments, self.mw.chunk_size), closer), "fallback"

    # ------------------------------------------------------------------- closing

    def closer(self, result: Iterable[bytes]) -> Callable[[], None]:
        def close() -> None:
            self.close_app(result)

        return close

    def close_app(self, result: Iterable[bytes]) -> None:
        """PEP 3333: the app's iterable is closed, once; then any file it wrapped but
        did not return, so nothing leaks (each wrapper closes its file once)."""
        if self.app_closed:
            return
        self.app_closed = True
        try:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        finally:
            self.close_wrappers()

    def close_wrappers(self) -> None:
        for wrapper in self.wrappers:
            wrapper.close()

    def path(self) -> str:
        env = self.server_environ
        return str(env.get("SCRIPT_NAME", "")) + str(env.get("PATH_INFO", ""))


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _noop() -> None:
    pass
