"""Behind nginx: hand a file response's body to nginx with ``X-Accel-Redirect``.

Shared by both adapters. With ``accel_redirect={"/srv/media": "/_zc/media/"}`` a file
response whose file lies under ``/srv/media`` goes to nginx as an empty 200 carrying
``X-Accel-Redirect: /_zc/media/<relative path>``; nginx then sends the file from its
``internal`` location. The policy, the nginx configuration it needs and what was
measured are in docs/deployment.md. In short:

* nginx re-evaluates the client's ``If-Match``, ``If-Unmodified-Since``, ``If-Range``
  and ``Range`` on the redirected request with its own validators and its own range
  parser, and gets some of them wrong (RFC 9110 §13.2.2). So the middleware plans
  every answer first, answers 304, 412 and 416 itself, and hands nginx only a GET
  whose answer nginx is known to produce identically (:func:`wants_offload`);
  everything else it serves as it would without nginx.
* nginx keeps only some of the app's headers on a redirect: a response whose
  ``Content-Encoding`` (or language, location) would be lost stays with the middleware.
* nginx cuts the redirect URI at a ``?`` and decodes ``%XX`` in it once: the relative
  path is percent-encoded, every byte but the unreserved ones and ``/``
  (:func:`redirect_uri`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._http import Plan

__all__ = [
    "ACCEL_DELIVERY",
    "ACCEL_HEADER",
    "AccelMapping",
    "offload_plan",
    "redirect_uri",
    "validate_accel_redirect",
    "wants_offload",
]

#: The response header nginx consumes (lower case, as the planner's headers are).
ACCEL_HEADER = "x-accel-redirect"
#: What ``debug_header`` says for a body handed to nginx.
ACCEL_DELIVERY: Final = "x-accel-redirect"

#: ``(real directory, internal location prefix)`` pairs, the longest directory first.
AccelMapping = tuple[tuple[str, str], ...]

# A prefix goes into the header verbatim and must name an nginx location: printable
# ASCII with no character nginx would decode, cut at or refuse.
_PREFIX = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]+/)*")

# Request fields nginx evaluates again on the redirected request, against its own
# validators or by its own rules: a request carrying one is answered by the middleware.
_REEVALUATED = ("if-match", "if-unmodified-since", "if-range")
# The one Range form nginx's parser and ours read alike: a single spec, no spaces, no
# number long enough to overflow nginx's off_t check.
_PLAIN_RANGE = re.compile(r"bytes=(?:[0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18})")
# Representation metadata (RFC 9110 §8.4-8.7) nginx drops on a redirect, without
# which the client would misread the body (a precompressed file, say).
_DROPPED_BY_NGINX = frozenset({"content-encoding", "content-language", "content-location"})


def validate_accel_redirect(value: Any) -> AccelMapping:
    """The ``accel_redirect`` option as ``(real directory, prefix)`` pairs.

    ``None`` or an empty mapping turns it off. Keys are existing directories (``str``
    or path-like; symlinks resolved), values internal location prefixes that start and
    end with ``/``. Anything else is a :class:`TypeError` or :class:`ValueError`
    naming the value.
    """
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise TypeError(
            f"accel_redirect must be a mapping of directory to location prefix, not {value!r}"
        )
    pairs: dict[str, str] = {}
    for directory, prefix in value.items():
        if not isinstance(directory, (str, os.PathLike)) or isinstance(os.fspath(directory), bytes):
            raise TypeError(f"accel_redirect directory must be a str path, not {directory!r}")
        real = os.path.realpath(directory)
        if not os.path.isdir(real):
            raise ValueError(f"accel_redirect directory {directory!r} is not a directory")
        if not isinstance(prefix, str):
            raise TypeError(f"accel_redirect prefix must be a str, not {prefix!r}")
        if _PREFIX.fullmatch(prefix) is None or "/../" in prefix or "/./" in prefix:
            raise ValueError(
                f"accel_redirect prefix {prefix!r} must start and end with '/' and hold "
                "only unreserved URI characters"
            )
        if real in pairs:
            raise ValueError(f"accel_redirect maps directory {real!r} twice")
        pairs[real] = prefix
    # The most specific directory wins when mapped directories nest.
    return tuple(sorted(pairs.items(), key=lambda item: len(item[0]), reverse=True))


def wants_offload(
    method: str,
    request_headers: Mapping[str, str],
    plan: Plan,
    response_headers: Iterable[tuple[str, str]],
) -> bool:
    """Whether nginx, given the redirect, answers this request exactly as ``plan``.

    ``request_headers`` are the client's (lower-case names), whatever the app saw;
    ``response_headers`` the app's. Only a GET with a body: a 200 for a request
    without Range, or a 206 for a plain single range. 304, 412 and 416 need no file;
    multipart, If-Range, ignored or unusual Range fields, If-Match and
    If-Unmodified-Since are answered differently by nginx; HEAD and other methods
    carry no file body (nginx turns a POST into a GET); a Content-Encoding would be
    lost on the way.
    """
    if method != "GET" or plan.body_length == 0:
        return False
    if any(name in request_headers for name in _REEVALUATED):
        return False
    if any(name.lower() in _DROPPED_BY_NGINX for name, _ in response_headers):
        return False
    range_value = request_headers.get("range")
    if plan.kind == "full":
        return range_value is None
    if plan.kind == "partial":
        return range_value is not None and _PLAIN_RANGE.fullmatch(range_value) is not None
    return False  # multipart; passthrough (nginx would answer 200, not the app's status)


def redirect_uri(fd: int, mapping: AccelMapping) -> str | None:
    """The ``X-Accel-Redirect`` value for the open file ``fd``, or None when the file
    lies outside every mapped directory (or is the directory itself).

    Blocking (``readlink``, ``stat``): call it off the event loop. The path is the one
    the kernel names for what was opened (``/proc/self/fd``, symlinks resolved), and
    it must still lead to that same file: a file renamed, deleted or shadowed by a
    swapped-in symlink since it was opened is served by the middleware instead.
    """
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
        same = os.path.samestat(os.stat(opened), os.fstat(fd))
    except OSError:
        return None  # no /proc, or the name leads nowhere now
    if not same:
        return None
    for directory, prefix in mapping:
        base = directory.rstrip("/") + "/"
        if not opened.startswith(base):
            continue
        relative = os.fsencode(opened[len(base) :])
        if not relative:
            return None
        return prefix + urllib.parse.quote(relative, safe="/")
    return None


def offload_plan(plan: Plan, uri: str) -> Plan:
    """``plan`` as the empty 200 handed to nginx: the app's headers and the planner's
    validators (the internal location restores them from ``$upstream_http_*``), no
    body, and ``X-Accel-Redirect``. nginx computes Content-Length and Content-Range,
    and adds ``Accept-Ranges`` itself to a 200 (not to a 206)."""
    own = {"content-length", "content-range"}
    if plan.kind == "full":
        own.add("accept-ranges")
    set_headers = tuple((name, value) for name, value in plan.set_headers if name not in own)
    return dataclasses.replace(
        plan,
        status=200,
        drop_headers=plan.drop_headers | own,
        set_headers=(*set_headers, ("content-length", "0"), (ACCEL_HEADER, uri)),
        segments=(),
        content_length=0,
    )
