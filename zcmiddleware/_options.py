"""What both adapters share besides the planner: their options, validated once at
construction with the same names, defaults and messages; the delivery names; the
error answers; the ASGI extension names.

Nothing here does I/O but the construction-time check that configured roots exist.
"""

from __future__ import annotations

import enum
import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._accel import validate_accel_redirect

__all__ = [
    "ABORTS_SHORT_FILES",
    "DEFAULT_CHUNK_SIZE",
    "OPENS_BEFORE_START",
    "PATHSEND_RANGE",
    "PATHSEND",
    "PRECOMPRESSED_SUFFIXES",
    "ZEROCOPYSEND",
    "Configured",
    "Delivery",
    "Options",
    "error_answer",
]

#: The ASGI extension that sends a whole file by path (``{"type": PATHSEND, "path": ...}``).
PATHSEND = "http.response.pathsend"
#: The ASGI extension that sends ``count`` bytes of an open file from ``offset``.
ZEROCOPYSEND = "http.response.zerocopysend"
#: A key a server may put in its ``http.response.zerocopysend`` extension dict (value
#: True) to say that it aborts the connection itself when a file ends before ``count``
#: bytes were sent, as ``zcmiddleware.uvicorn`` does. The ASGI middleware then skips
#: its own after-send size check. Servers without it keep the check.
ABORTS_SHORT_FILES = "zcmiddleware.aborts_short_files"
#: A key a server may put in its ``http.response.pathsend`` extension dict (value True)
#: to say: a ``http.response.start`` carrying this key (value True) is held until the
#: ``pathsend`` that follows it, whose file is opened first; a file that cannot be
#: opened, is not a regular file, or whose size is not the start's Content-Length is
#: answered by the server with a 500 before any header is written. As
#: ``zcmiddleware.uvicorn`` does. The ASGI middleware then sends whole files by path on
#: such a server, planned from the app's headers, without opening them itself.
OPENS_BEFORE_START = "zcmiddleware.opens_before_start"
#: A key a server that offers :data:`OPENS_BEFORE_START` may also put in its pathsend
#: extension dict (value True) to say: a pathsend message may carry this key with
#: ``(offset, count, size)``, ints, to send ``count`` bytes from ``offset`` of a file
#: whose size must be ``size`` (else, after a held start, the same 500). The ASGI
#: middleware then sends a lone Range of a file by path too, planned from the app's
#: headers, where it would otherwise open the file itself for its descriptor.
PATHSEND_RANGE = "zcmiddleware.pathsend_range"

#: Bytes per read on the paths that read the file in Python (see docs/asgi.md).
DEFAULT_CHUNK_SIZE = 256 * 1024

#: The content codings ``precompressed`` knows, and the file name suffix of each.
PRECOMPRESSED_SUFFIXES = {"br": ".br", "gzip": ".gz", "zstd": ".zst"}


class Delivery(str, enum.Enum):
    """How the body of a file response went out: the value of ``debug_header`` and
    of the DEBUG log line."""

    ZEROCOPYSEND = "zerocopysend"  #: ASGI ``http.response.zerocopysend``
    PATHSEND = "pathsend"  #: ASGI ``http.response.pathsend`` (whole files)
    FILE_WRAPPER = "file_wrapper"  #: gunicorn's own ``FileWrapper``: ``sendfile(2)``
    UWSGI_SENDFILE = "uwsgi.sendfile"  #: uWSGI's ``uwsgi.sendfile``
    FALLBACK = "fallback"  #: read by position, one chunk in memory at a time
    X_ACCEL_REDIRECT = "x-accel-redirect"  #: handed to nginx (``accel_redirect``)
    NONE = "none"  #: no body to send: HEAD, 304, 412, 416, an empty file

    def __str__(self) -> str:
        return self.value


# RFC 9110 §5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_name(option: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a header name (str) or None, not {value!r}")
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{option} must be a valid header name, not {value!r}")
    return value.lower()


def _items(option: str, value: object, single: tuple[type, ...], what: str) -> Iterable[object]:
    """One ``single`` value is one item -- a string is never iterated as characters --
    else an iterable of items (bytes never counts as one)."""
    if isinstance(value, single):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        return value
    raise TypeError(f"{option} must be {what} or a sequence of them, not {value!r}")


def _paths(option: str, value: object) -> tuple[str, ...]:
    paths = []
    for item in _items(option, value, (str, bytes, os.PathLike), "a path"):
        if not isinstance(item, (str, bytes, os.PathLike)):
            raise TypeError(f"{option} must hold paths (str or os.PathLike), not {item!r}")
        path = os.fsdecode(os.fspath(item))
        if not path:
            raise ValueError(f"{option} holds an empty path")
        if not os.path.isdir(path):
            raise ValueError(f"{option}: {path!r} is not an existing directory")
        paths.append(os.path.realpath(path))
    return tuple(paths)


def _prefixes(option: str, value: object) -> tuple[str, ...]:
    prefixes = []
    for item in _items(option, value, (str,), "a path prefix"):
        if not isinstance(item, str):
            raise TypeError(f"{option} must hold path prefixes (str), not {item!r}")
        if not item.startswith("/"):
            raise ValueError(f"{option}: a path prefix starts with '/', not {item!r}")
        prefixes.append(item)
    return tuple(prefixes)


def _codings(option: str, value: object) -> tuple[str, ...]:
    codings: list[str] = []
    for item in _items(option, value, (str,), "a content coding"):
        if not isinstance(item, str) or item.lower() not in PRECOMPRESSED_SUFFIXES:
            known = ", ".join(map(repr, PRECOMPRESSED_SUFFIXES))
            raise ValueError(f"{option}: {item!r} is not one of {known}")
        if item.lower() not in codings:
            codings.append(item.lower())
    return tuple(codings)


def _flag(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{option} must be True or False, not {value!r}")
    return value


def _positive(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{option} must be positive, not {value!r}")
    return value


@dataclass(frozen=True)
class Options:
    """The validated options of one middleware (see the middleware's docstring).

    Built from the keyword arguments by :meth:`build`, which normalises and checks
    every value: a single path or prefix where a sequence is expected is taken as one
    item, anything of the wrong type is a ``TypeError``, a bad value a ``ValueError``.
    """

    handle_ranges: bool = True
    exclude_paths: tuple[str, ...] = ()
    sendfile_header: str | None = None  # lower-case
    sendfile_roots: tuple[str, ...] = ()  # real paths
    chunk_size: int = DEFAULT_CHUNK_SIZE
    debug_header: str | None = None  # lower-case
    precompressed: tuple[str, ...] = ()
    accel_redirect: tuple[tuple[str, str], ...] = ()  # (real directory, prefix)

    @classmethod
    def build(
        cls,
        *,
        handle_ranges: object = True,
        exclude_paths: object = (),
        sendfile_header: object = None,
        sendfile_roots: object = (),
        chunk_size: object = DEFAULT_CHUNK_SIZE,
        debug_header: object = None,
        precompressed: object = (),
        accel_redirect: object = None,
    ) -> Options:
        header = _header_name("sendfile_header", sendfile_header)
        roots = _paths("sendfile_roots", sendfile_roots)
        if header is not None and not roots:
            raise ValueError("sendfile_header needs at least one directory in sendfile_roots")
        if roots and header is None:
            raise ValueError("sendfile_roots is only used with sendfile_header, which is not set")
        return cls(
            handle_ranges=_flag("handle_ranges", handle_ranges),
            exclude_paths=_prefixes("exclude_paths", exclude_paths),
            sendfile_header=header,
            sendfile_roots=roots,
            chunk_size=_positive("chunk_size", chunk_size),
            debug_header=_header_name("debug_header", debug_header),
            precompressed=_codings("precompressed", precompressed),
            accel_redirect=validate_accel_redirect(accel_redirect),
        )

    def handles(self, path: str) -> bool:
        """Whether Range and preconditions of this request are the middleware's to
        answer (``handle_ranges``, less ``exclude_paths``)."""
        return self.handle_ranges and not path.startswith(self.exclude_paths)

    @functools.cached_property
    def private_headers(self) -> frozenset[str]:
        """Response header names of the app that never reach the client (computed
        once: it is read for every file response)."""
        return frozenset(h for h in (self.sendfile_header, self.debug_header) if h)


_App = TypeVar("_App")


class Configured(Generic[_App]):
    """The constructor both middlewares share, so that their options cannot drift."""

    def __init__(
        self,
        app: _App,
        *,
        handle_ranges: bool = True,
        exclude_paths: str | Iterable[str] = (),
        sendfile_header: str | None = None,
        sendfile_roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        debug_header: str | None = None,
        precompressed: str | Iterable[str] = (),
        accel_redirect: Mapping[str | os.PathLike[str], str] | None = None,
    ) -> None:
        self.app = app
        self.options = Options.build(
            handle_ranges=handle_ranges,
            exclude_paths=exclude_paths,
            sendfile_header=sendfile_header,
            sendfile_roots=sendfile_roots,
            chunk_size=chunk_size,
            debug_header=debug_header,
            precompressed=precompressed,
            accel_redirect=accel_redirect,
        )


def error_answer(status: int) -> tuple[int, list[tuple[str, str]], bytes]:
    """The middleware's own answer when a ``sendfile_header`` path cannot be served:
    404 for a missing file, 500 otherwise. It names no path (the log line does)."""
    body = b"Not Found" if status == 404 else b"Internal Server Error"
    headers = [("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body)))]
    return status, headers, body
