"""One file response, decided once for both adapters.

Given the app's status and headers and the opened file, :func:`answer_file` picks the
bytes to send (the file, or a precompressed variant of it) and asks the planner what
to answer. The adapters only translate the result into their protocol. Blocking (it
may open a variant): the ASGI side calls it off the event loop.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._accel import offload_plan, redirect_uri, wants_offload
from ._files import open_variant
from ._http import (
    REQUEST_FIELDS,
    FileFacts,
    FileSlice,
    Plan,
    choose_coding,
    plan_response,
    unconditional_headers,
    variant_headers,
)
from ._options import PRECOMPRESSED_SUFFIXES, Options

__all__ = [
    "FileAnswer",
    "answer_file",
    "bodiless_headers",
    "request_fields",
    "whole_file_answer",
]

# The request fields an answer depends on: the planner's, and the codings accepted.
_READ_FIELDS = frozenset({*REQUEST_FIELDS, "accept-encoding"})


def request_fields(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request fields a file answer reads, by lower-case name; repeated fields are
    joined with ``", "`` (RFC 9110 §5.3)."""
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in _READ_FIELDS:
            result[key] = f"{result[key]}, {value}" if key in result else value
    return result


@dataclass(slots=True)
class FileAnswer:
    """What to send: the plan, its final headers, and the bytes' descriptor.

    ``fd``/``facts``/``path`` are those of the bytes sent -- a variant's when one was
    chosen, in which case ``variant_fd`` is that descriptor (the adapter closes it;
    the original stays the app's or the adapter's, as before).
    """

    plan: Plan
    headers: list[tuple[str, str]]
    fd: int
    facts: FileFacts
    path: str | None
    variant_fd: int | None = None
    #: Handed to nginx (``accel_redirect``): headers only, nginx sends the body.
    accel: bool = False
    #: The server may be handed ``path`` to open itself (pathsend). Not for a
    #: ``sendfile_header`` path: a directory swapped for a symlink after our check
    #: of what we opened would send a file outside the roots.
    by_path: bool = True
    #: The whole body, read in the same worker-thread hop that opened the file, when
    #: it is small and would be read anyway (the adapter's fallback): one hop, one
    #: body message.
    body: bytes | None = None

    @property
    def whole_file(self) -> bool:
        """The body is the whole file, in one piece (what pathsend can carry)."""
        return self.plan.segments == (FileSlice(0, self.facts.size),)

    def close_variant(self) -> None:
        if self.variant_fd is not None:
            fd, self.variant_fd = self.variant_fd, None
            os.close(fd)


def answer_file(
    method: str,
    request: Mapping[str, str],
    status: int,
    app_headers: Sequence[tuple[str, str]],
    fd: int,
    facts: FileFacts,
    path: str | None,
    options: Options,
    handles: bool,
) -> FileAnswer:
    """Plan the answer to ``request`` (see :func:`request_fields`) for a file the app
    sent with ``status`` and ``app_headers`` (the private headers already removed)."""
    headers: Sequence[tuple[str, str]] = app_headers
    variant: tuple[int, FileFacts, str] | None = None
    if options.precompressed and path is not None and status == 200:
        found = _variant(request.get("accept-encoding"), app_headers, facts, path, options)
        if found is not None:
            coding, variant = found
            headers = variant_headers(app_headers, coding, variant[1] if variant else facts)
    if variant is not None:
        fd, facts, path = variant
    plan = plan_response(
        method, request if handles else {}, status, facts, headers, handle_ranges=handles
    )
    accel = False
    # Judged on the client's own request, whatever the app was shown: nginx sees it.
    if options.accel_redirect and wants_offload(method, request, plan, headers):
        uri = redirect_uri(fd, options.accel_redirect)
        if uri is not None:
            plan, accel = offload_plan(plan, uri), True
    answer = FileAnswer(plan, plan.apply(headers), fd, facts, path, accel=accel)
    if variant is not None:
        answer.variant_fd = fd
    return answer


def whole_file_answer(
    status: int,
    app_headers: Sequence[tuple[str, str]],
    size: int,
    mtime_ns: int,
    path: str | None,
    options: Options,
    handles: bool,
) -> list[tuple[str, str]] | None:
    """The headers of :func:`answer_file`'s answer when it is the whole file with the
    app's 200 -- for a request the caller found without any of the planner's fields
    (or with ``handles`` off) -- planned without a :class:`Plan`. None where
    :func:`answer_file` has more to decide: another status, a precompressed variant,
    nginx's offload."""
    if status != 200 or options.accel_redirect or (options.precompressed and path is not None):
        return None
    return unconditional_headers(size, mtime_ns, app_headers, handles)


def bodiless_headers(status: int, app_headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of a file response whose status sends no file (see
    :func:`._http.sends_no_file`): planned without opening the file."""
    return plan_response("GET", {}, status, FileFacts(0, 0), app_headers).apply(app_headers)


def _variant(
    accept: str | None,
    app_headers: Sequence[tuple[str, str]],
    facts: FileFacts,
    path: str,
    options: Options,
) -> tuple[str | None, tuple[int, FileFacts, str] | None] | None:
    """None when no variant of the file exists (the answer does not vary); else the
    coding chosen (None: identity) and the opened variant."""
    if any(name.lower() == "content-encoding" for name, _ in app_headers):
        return None  # the app coded the content itself
    available = [c for c in options.precompressed if _exists(path, c, facts)]
    if not available:
        return None
    while (coding := choose_coding(accept, available)) is not None:
        opened = open_variant(path, coding, facts)
        if opened is not None:
            return coding, (*opened, path + PRECOMPRESSED_SUFFIXES[coding])
        available.remove(coding)  # gone since it was looked at
    return None, None


def _exists(path: str, coding: str, original: FileFacts) -> bool:
    try:
        st = os.stat(path + PRECOMPRESSED_SUFFIXES[coding])
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_mtime_ns >= original.mtime_ns
