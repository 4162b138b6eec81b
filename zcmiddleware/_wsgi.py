"""WSGI adapter: file responses of Flask, Django and Werkzeug apps on the server's
sendfile path, Range and conditional requests included.

The middleware learns which file the app is sending in one of three ways, asks
:func:`._serve.answer_file` what to answer, and hands the planned bytes to the server
in the form that server sends fastest (:mod:`._wsgi_body`):

- it puts its own ``wsgi.file_wrapper`` into the environ while the app runs (the
  server's own dict, not a copy; the server's wrapper is back before anything is
  answered). Flask's ``send_file`` and Django's WSGI handler call it, so the file
  object is known; it also recognises Werkzeug's ``FileWrapper`` and the server's own
  wrapper when an app builds them itself;
- opt-in, a response header naming a path (``X-Sendfile``), honoured only inside
  configured roots.

What the app sees (docs/wsgi.md, "What changes in your app"): on GET and HEAD the
request's ``Range`` and ``If-Range`` are hidden before it runs (with them Werkzeug
wraps the file in ``_RangeWrapper``, which no server can sendfile); the conditional
fields are hidden only once the app hands a regular file to our wrapper -- from then
on the answer is the planner's -- so every other page keeps its own 304s.
"""

from __future__ import annotations

import functools
import http
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from stat import S_ISREG
from types import MappingProxyType
from typing import TYPE_CHECKING

from ._files import open_in_roots
from ._http import CONDITIONAL_FIELDS, RANGE_FIELDS, FileFacts, sends_no_file
from ._options import Configured, Delivery, Options, error_answer
from ._serve import answer_file, bodiless_headers, request_fields, whole_file_answer
from ._wsgi_body import (
    GUNICORN_BODIES,
    AppFileWrapper,
    Body,
    deliver,
    deliver_slice,
    file_in,
    regular_fd,
)

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ._wsgi_body import _FileLike, _Response

    _ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
    _OptExcInfo = _ExcInfo | tuple[None, None, None]

__all__ = ["ZeroCopyWSGIMiddleware"]

logger = logging.getLogger("zcmiddleware.wsgi")


def _environ_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


_RANGE_KEYS = tuple(_environ_key(name) for name in RANGE_FIELDS)
_CONDITIONAL_KEYS = tuple(_environ_key(name) for name in CONDITIONAL_FIELDS)
_READ_KEYS = tuple(
    (_environ_key(name), name) for name in (*RANGE_FIELDS, *CONDITIONAL_FIELDS, "accept-encoding")
)


# On Python 3.11 ``Delivery.FILE_WRAPPER`` goes through EnumType's attribute hook
# (its ``__getattr__``), which the interpreter cannot specialise: hundreds of
# instructions on every response, where a global costs a few.
_FILE_WRAPPER = Delivery.FILE_WRAPPER
_ABSENT = object()  # an environ without a wsgi.file_wrapper
_new = object.__new__


def _status_line(code: int) -> str:
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


@functools.lru_cache(maxsize=256)  # an app's few status lines, parsed once each
def _status_code(status: str) -> int:
    try:
        return int(status[:3])
    except ValueError:
        return 0


class ZeroCopyWSGIMiddleware(Configured["WSGIApplication"]):
    """Serve a WSGI app's file responses -- and their Range requests -- zero-copy.

    ``app.wsgi_app = ZeroCopyWSGIMiddleware(app.wsgi_app)`` (Flask) or
    ``application = ZeroCopyWSGIMiddleware(get_wsgi_application())`` (Django).

    The options are those of ``ZeroCopyMiddleware``, with the same names, defaults and
    checks: ``handle_ranges``, ``exclude_paths`` (prefixes of ``SCRIPT_NAME +
    PATH_INFO``), ``sendfile_header``, ``sendfile_roots``, ``chunk_size``,
    ``debug_header`` (naming ``file_wrapper``, ``uwsgi.sendfile``, ``fallback`` or
    ``none``, ``x-accel-redirect``; also logged at DEBUG on the ``zcmiddleware.wsgi``
    logger), ``precompressed`` and ``accel_redirect`` (behind nginx, see
    docs/deployment.md).
    """

    app: WSGIApplication

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        handles = self.options.handle_ranges
        if handles and self.options.exclude_paths:
            handles = self.options.handles(
                environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            )
        return _Exchange().run(self, environ, start_response, handles)


class _AppSide:
    """What the app is given: the server's environ with our ``wsgi.file_wrapper`` in
    it while the app runs, and a ``start_response`` that holds the status and headers
    until we know whether the body is a file."""

    # Until the app calls start_response / its response is committed / closed. The
    # three read on every response are set by _Exchange.run: Python 3.11 does not
    # specialise reading a class's default through an instance (about 250
    # instructions a read).
    status: str | None
    server_write: Callable[[bytes], object] | None
    app_closed = False
    result: Iterable[bytes] = ()
    #: The Range fields hidden from the app: put back if its file is not one we send.
    hidden: Mapping[str, str] = MappingProxyType({})
    #: The conditional fields hidden once the app wrapped a regular file.
    taken: dict[str, str]
    #: The app's headers, as it gave them to start_response (never changed here).
    headers: list[tuple[str, str]] = []
    #: The files the app wrapped, in order (most apps: one; many pages: none).
    wrappers: tuple[AppFileWrapper, ...]

    # Set by _Exchange.run, which starts every exchange (there is no __init__: one
    # call fewer per request).
    options: Options
    server_environ: WSGIEnvironment
    #: The server's own ``wsgi.file_wrapper`` (_ABSENT: it has none).
    server_wrapper: object
    server_start_response: StartResponse
    #: Range and preconditions are ours to answer (handle_ranges, exclude_paths).
    handles: bool
    method: str
    #: The request has a field the planner answers (Range, a precondition).
    asks: bool
    #: The environ while the app runs, held only when the request asks: then
    #: wrap_file edits it (an empty dict once the server's fields are back).
    environ: WSGIEnvironment

    def wrap_file(self, filelike: _FileLike, blksize: int = 8192) -> Iterable[bytes]:
        # What regular_fd tells, without the call: the descriptor and fstat of a
        # regular file, else st stays None.
        st = None
        fileno = getattr(filelike, "fileno", None)
        if fileno is not None:
            try:
                fd = fileno()
                if isinstance(fd, int):
                    st = os.fstat(fd)
            except (OSError, ValueError):  # io.UnsupportedOperation is both
                pass
        if st is None or not S_ISREG(st.st_mode):
            # Not a file we can send (a BytesIO, a pipe, /dev/zero): the app keeps the
            # response, with its Range back and the server's own wrapper, exactly as
            # without us (gunicorn's stops at Content-Length; iterating to the end of
            # /dev/zero would never stop).
            if self.hidden:
                self.environ.update(self.hidden)
            server_wrapper = self.server_wrapper
            if callable(server_wrapper):
                return server_wrapper(filelike, blksize)  # type: ignore[no-any-return]
            wrapper = AppFileWrapper(filelike, blksize)
        else:
            # AppFileWrapper(filelike, blksize, fd, size, mtime_ns), without the call to
            # its __init__ (~0.8 k instructions of every file response).
            wrapper = _new(AppFileWrapper)
            wrapper.filelike, wrapper.blksize, wrapper.fd = filelike, blksize, fd
            wrapper.size, wrapper.mtime_ns, wrapper.closed = st.st_size, st.st_mtime_ns, False
            if self.asks:
                environ, taken = self.environ, self.taken
                for key in _CONDITIONAL_KEYS:
                    if key in environ:
                        taken[key] = environ.pop(key)
        self.wrappers += (wrapper,)
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
        # Not sent yet: an error handler may replace status and headers. The app's own
        # list, not a copy, as servers keep it (wsgiref, Werkzeug): a response passed
        # on goes out with the very list the app gave; a file answer's is a new one.
        self.status = status
        self.headers = headers
        return self.write

    def status_or_fail(self) -> str:
        if self.status is None:
            raise RuntimeError("the application did not call start_response")
        return self.status

    def write(self, data: bytes) -> None:
        # PEP 3333's legacy write(): the body is the app's own bytes, not a file, so
        # the response is committed as the app set it.
        if self.server_write is None:
            self.commit(self.status_or_fail(), self.strip_private(self.headers))
        assert self.server_write is not None
        self.server_write(data)

    def commit(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.server_write = self.server_start_response(status, headers)

    def strip_private(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # docs/http.md: a header that carries a file path never reaches the client.
        name = self.options.sendfile_header
        if name is None:
            return headers
        return [(k, v) for k, v in headers if k.lower() != name]

    def sendfile_path(self) -> str | None:
        name = self.options.sendfile_header
        if name is None:
            return None
        return next((v for k, v in self.headers if k.lower() == name), None)

    def close(self) -> None:
        """PEP 3333: the app's iterable is closed, once; then any file it wrapped but
        did not return, so nothing leaks (each wrapper closes its file once)."""
        if self.app_closed:
            return
        self.app_closed = True
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.close_wrappers()

    def close_wrappers(self) -> None:
        # Each one once (a closed one is skipped), all of them even if one's close raises.
        for wrapper in self.wrappers:
            if not wrapper.closed:
                try:
                    wrapper.close()
                except BaseException:
                    self.close_wrappers()
                    raise


class _Exchange(_AppSide):
    """One request through the middleware: run the app, then answer from its file or
    pass its response on."""

    # -------------------------------------------------------------------- flow

    def run(
        self,
        middleware: ZeroCopyWSGIMiddleware,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        handles: bool,
    ) -> Iterable[bytes]:
        self.options = middleware.options
        self.server_environ = environ
        self.server_start_response = start_response
        self.handles = handles
        self.status = self.server_write = None
        self.wrappers = ()
        self.method = method = environ.get("REQUEST_METHOD", "GET")
        # The environ keys of REQUEST_FIELDS, spelled out (six look-ups cost less
        # than keys().isdisjoint of them). Without any, a file answer is the whole
        # file (or the app's own status): planned without a plan.
        self.asks = asks = handles and (
            "HTTP_RANGE" in environ
            or "HTTP_IF_RANGE" in environ
            or "HTTP_IF_MATCH" in environ
            or "HTTP_IF_NONE_MATCH" in environ
            or "HTTP_IF_MODIFIED_SINCE" in environ
            or "HTTP_IF_UNMODIFIED_SINCE" in environ
        )
        # The app runs with the server's own environ, as without us (what it stores
        # there, the server and any outer middleware see), with our wrapper and the
        # hidden fields swapped in for the call only, not a copy of every key: the
        # server's fields are back before anything is answered (gunicorn reads its
        # ``wsgi.file_wrapper`` back from the environ for its isinstance check, its
        # access log reads the request's fields, the planner the client's).
        self.server_wrapper = server_wrapper = environ.get("wsgi.file_wrapper", _ABSENT)
        environ["wsgi.file_wrapper"] = self.wrap_file
        if asks:
            # wrap_file puts the Range back or hides the conditionals.
            if method in ("GET", "HEAD"):
                self.hidden = {key: environ.pop(key) for key in _RANGE_KEYS if key in environ}
            self.taken = {}
            self.environ = environ
        try:
            result = middleware.app(environ, self.start_response)
        except BaseException:
            self.close_wrappers()
            raise
        finally:
            # The server's fields back (and our wrap_file out of its environ: no
            # cycle through it). A wrap_file called later edits nothing.
            if server_wrapper is _ABSENT:
                environ.pop("wsgi.file_wrapper", None)
            else:
                environ["wsgi.file_wrapper"] = server_wrapper
            if asks:
                environ.update(self.hidden)
                environ.update(self.taken)
                self.environ = {}
        self.result = result
        # What to answer, in the same call (one call fewer per response): a file of
        # the app's sent our way, or its response passed on.
        try:
            status = self.status
            if self.server_write is not None:
                # The app used write(): its response is already under way.
                return self.passed_on(result)
            if status is None:
                # PEP 3333 allows start_response on the first iteration (generators).
                # Such a body is never a file object, but it can still carry X-Sendfile.
                return self.respond_lazy(result)
            if self.options.sendfile_header is not None:
                path = self.sendfile_path()
                if path is not None:
                    return self.respond_sendfile_header(path)
            wrappers = self.wrappers
            if wrappers and result is wrappers[0]:
                # As Flask and Django hand it back: the app's first wrapper.
                wrapper = wrappers[0]
                fd = wrapper.fd
                if fd is not None:
                    path = _name(wrapper.filelike) if self.options.precompressed else None
                    # The app's iterable is that wrapper: closing the wrappers closes it
                    # first (what close() would do, with one call fewer per response).
                    # The one file most apps wrap is closed by its own close: there is
                    # no other to close.
                    closer = wrapper.close if len(wrappers) == 1 else self.close_wrappers
                    return self.send_file(
                        status, fd, wrapper.size, wrapper.mtime_ns, path, self.headers, closer
                    )
            source = self.file_source(result)
            if source is None:
                self.commit(status, self.headers)
                return self.passed_on(result)
            fd, size, mtime_ns, filelike = source
            path = _name(filelike) if self.options.precompressed else None
            return self.send_file(status, fd, size, mtime_ns, path, self.headers, self.close)
        except BaseException:
            self.close()
            raise

    def respond_lazy(self, result: Iterable[bytes]) -> Iterable[bytes]:
        iterator = iter(result)
        first: list[bytes] = []
        for chunk in iterator:
            if chunk:
                first.append(chunk)
                break
        status = self.status_or_fail()
        if self.server_write is None:
            path = self.sendfile_path()
            if path is not None:
                return self.respond_sendfile_header(path)
            self.commit(status, self.headers)
        return Body(_chain(first, iterator), self.close)

    def respond_sendfile_header(self, path: str) -> Iterable[bytes]:
        # The app's own body (empty for Flask) is replaced by the file.
        self.close()
        headers = self.strip_private(self.headers)
        status = self.status_or_fail()
        code = _status_code(status)
        if sends_no_file(code):
            # The app answered 304, 412, ... itself: the file is not even opened.
            self.commit(status, bodiless_headers(code, headers))
            return Body((), _noop)
        try:
            real, fd, facts = open_in_roots(path, self.options.sendfile_roots)
        except OSError as exc:  # outside the roots, missing, not a regular file, EACCES
            # Logged with the path; answered without it.
            logger.error("%s header refused: %s", self.options.sendfile_header, exc)
            error, error_headers, body = error_answer(
                404 if isinstance(exc, FileNotFoundError) else 500
            )
            self.commit(_status_line(error), error_headers)
            return [body]
        return self.send_file(status, fd, facts.size, facts.mtime_ns, real, headers, _closing(fd))

    def passed_on(self, result: Iterable[bytes]) -> Iterable[bytes]:
        if not self.wrappers:
            return result
        return Body(result, self.close)

    def file_source(self, result: Iterable[bytes]) -> tuple[int, int, int, object] | None:
        """The regular file the app's response sends -- its descriptor, size, mtime
        (ns) and file object -- or None."""
        for wrapper in self.wrappers:
            if result is wrapper:
                return _described(wrapper)
        filelike = file_in(result, self.server_wrapper)
        if filelike is not None:
            found = regular_fd(filelike)
            if found is None:
                return None
            fd, st = found
            return fd, st.st_size, st.st_mtime_ns, filelike
        # Werkzeug answers HEAD with an empty ``ClosingIterator`` whose ``close``
        # closes the wrapper it built: that wrapper is this response's file.
        if self.method == "HEAD" and len(self.wrappers) == 1:
            wrapper = self.wrappers[0]
            if not wrapper.closed:
                return _described(wrapper)
        return None

    # ------------------------------------------------------------------ delivery

    def send_file(
        self,
        app_status: str,
        fd: int,
        size: int,
        mtime_ns: int,
        path: str | None,
        app_headers: list[tuple[str, str]],
        closer: Callable[[], None],
    ) -> Iterable[bytes]:
        options = self.options
        try:
            # Django and Flask build their status line anew per response: their usual
            # one is compared, not hashed afresh for the cache.
            code = 200 if app_status == "200 OK" else _status_code(app_status)
            headers = None
            body: _Response
            if not self.asks:
                # Most requests: no Range, no conditional field.
                headers = whole_file_answer(
                    code, app_headers, size, mtime_ns, path, options, self.handles
                )
            if headers is not None:
                status, count = code, 0 if self.method == "HEAD" else size
                server_wrapper = self.server_wrapper
                # deliver_slice's first case, without the call (most responses): the
                # body of a gunicorn met before, sent from the descriptor's position.
                body_type = (
                    GUNICORN_BODIES.get(server_wrapper)
                    if count and isinstance(server_wrapper, type)
                    else None
                )
                if body_type is not None:
                    os.lseek(fd, 0, os.SEEK_SET)
                    how = _FILE_WRAPPER
                    body = body_type(fd, 0, count, options.chunk_size, closer)
                else:
                    body, how = deliver_slice(
                        fd, 0, count, closer, self.server_environ, options.chunk_size
                    )
            else:
                status, headers, body, how = self.planned(
                    code, fd, FileFacts(size, mtime_ns), path, app_headers, closer
                )
        except BaseException:
            closer()
            raise
        if options.debug_header:
            headers.append((options.debug_header, how.value))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s via %s", self.method, self.path(), status, how.value)
        try:
            self.server_write = self.server_start_response(
                app_status if status == code else _status_line(status), headers
            )
        except BaseException:
            body.close()
            raise
        return body

    def planned(
        self,
        code: int,
        fd: int,
        facts: FileFacts,
        path: str | None,
        app_headers: list[tuple[str, str]],
        closer: Callable[[], None],
    ) -> tuple[int, list[tuple[str, str]], _Response, Delivery]:
        """The status, headers and body of the planner's file answer, and how the
        body is sent."""
        environ, options = self.server_environ, self.options
        answer = answer_file(
            self.method, _request(environ), code, app_headers, fd, facts, path,
            options, self.handles,
        )  # fmt: skip
        if answer.variant_fd is not None:
            closer = _and_then(_closing(answer.variant_fd), closer)
        try:
            body, how = deliver(answer.plan, answer.fd, closer, environ, options.chunk_size)
        except BaseException:
            answer.close_variant()  # the caller closes the rest
            raise
        if answer.accel:
            how = Delivery.X_ACCEL_REDIRECT
        return answer.plan.status, answer.headers, body, how

    def path(self) -> str:
        env = self.server_environ
        return str(env.get("SCRIPT_NAME", "")) + str(env.get("PATH_INFO", ""))


def _request(environ: WSGIEnvironment) -> dict[str, str]:
    """The request fields a file answer reads, as the client sent them."""
    return request_fields((name, environ[key]) for key, name in _READ_KEYS if key in environ)


def _described(wrapper: AppFileWrapper) -> tuple[int, int, int, object] | None:
    fd = wrapper.fd
    return None if fd is None else (fd, wrapper.size, wrapper.mtime_ns, wrapper.filelike)


def _name(filelike: object) -> str | None:
    name = getattr(filelike, "name", None)
    return name if isinstance(name, str) else None


def _closing(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)


def _and_then(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        try:
            first()
        finally:
            then()

    return both


def _noop() -> None:
    pass


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest
