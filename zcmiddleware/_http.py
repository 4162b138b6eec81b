"""The planning core: request headers + file facts -> what to send (RFC 9110).

Pure: no ``os``, no sockets, no event loop. Every adapter (ASGI, WSGI, the uvicorn
protocol classes) asks this module the same question -- given a request, the status
and headers the application chose, and the size and mtime of the file -- and gets
back a :class:`Plan`: the final status, the headers to set and to drop, and an
ordered list of segments, each a slice of the file or literal bytes (multipart
framing). The policy is ``HTTP.md``; section numbers below are RFC 9110's.

Ranges are half-open ``[start, stop)`` internally; ``- 1`` only happens when a
``Content-Range`` value is formatted.
"""

from __future__ import annotations

import calendar
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, Union

__all__ = [
    "MAX_RANGES",
    "EntityTag",
    "FileFacts",
    "FileSlice",
    "Plan",
    "Segment",
    "format_http_date",
    "header_map",
    "make_etag",
    "parse_entity_tags",
    "parse_http_date",
    "parse_range",
    "plan_response",
]

#: More ranges than this in one request and the Range is ignored (DoS guard, as nginx/Go).
MAX_RANGES = 100

# Digits beyond this many cannot name a byte of any real file; they are capped so that
# ``int()`` never meets Python's int-max-str-digits limit on hostile input.
_MAX_DIGITS = 30
_HUGE = 10**_MAX_DIGITS

_OWS = " \t"


@dataclass(frozen=True)
class FileFacts:
    """What the planner needs to know about the file: from one ``fstat``."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FileSlice:
    """``count`` bytes of the file starting at ``offset``."""

    offset: int
    count: int


Segment: TypeAlias = Union[FileSlice, bytes]  # noqa: UP007 (runtime alias on 3.10)

PlanKind = Literal[
    "full",  # 200, whole file
    "partial",  # 206, one range
    "multipart",  # 206, multipart/byteranges
    "not_modified",  # 304
    "precondition_failed",  # 412
    "unsatisfiable",  # 416
    "passthrough",  # the app's non-200 status, whole file, headers kept
]


@dataclass(frozen=True)
class Plan:
    """The answer to one file request.

    ``segments`` are the body in order (empty for HEAD and for bodiless answers);
    ``content_length`` is the length of the body a GET would carry, and is what the
    ``Content-Length`` header says (``None`` only for 304, which sends none).
    """

    kind: PlanKind
    status: int
    set_headers: tuple[tuple[str, str], ...]
    drop_headers: frozenset[str]
    segments: tuple[Segment, ...]
    content_length: int | None
    ranges: tuple[tuple[int, int], ...] = field(default=())

    def apply(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The final header list: the app's headers less the dropped and the set
        names, then the planner's own headers."""
        replaced = self.drop_headers | {name.lower() for name, _ in self.set_headers}
        kept = [(name, value) for name, value in headers if name.lower() not in replaced]
        return kept + list(self.set_headers)

    @property
    def body_length(self) -> int:
        """Bytes in ``segments`` (equals ``content_length`` for a GET with a body)."""
        return sum(s.count if isinstance(s, FileSlice) else len(s) for s in self.segments)


# --------------------------------------------------------------------------- headers


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; repeated fields joined with ``", "`` (§5.3)."""
    result: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


# ------------------------------------------------------------------------ HTTP dates

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
# §5.6.7: IMF-fixdate, then the two obsolete formats a recipient MUST accept.
_IMF_FIXDATE = re.compile(
    rf"([A-Za-z]{{3}}), ([0-9]{{2}}) ([A-Za-z]{{3}}) ([0-9]{{4}}) {_TIME} GMT"
)
_RFC850 = re.compile(rf"([A-Za-z]{{6,9}}), ([0-9]{{2}})-([A-Za-z]{{3}})-([0-9]{{2}}) {_TIME} GMT")
_ASCTIME = re.compile(rf"([A-Za-z]{{3}}) ([A-Za-z]{{3}}) ([ 0-9][0-9]) {_TIME} ([0-9]{{4}})")


def parse_http_date(value: str, *, now: float | None = None) -> int | None:
    """Seconds since the epoch for an HTTP-date in any of its three formats, else None.

    ``now`` (epoch seconds) resolves rfc850's two-digit year (§5.6.7: a year more than
    50 years in the future is the most recent past year with those digits).
    """
    value = value.strip(_OWS)
    if m := _IMF_FIXDATE.fullmatch(value):
        wkday, day, mon, year, hh, mm, ss = m.groups()
        if wkday not in _WEEKDAYS:
            return None
        return _epoch(int(year), mon, day, hh, mm, ss)
    if m := _RFC850.fullmatch(value):
        wkday, day, mon, yy, hh, mm, ss = m.groups()
        if wkday not in _LONG_WEEKDAYS:
            return None
        this_year = time.gmtime(time.time() if now is None else now).tm_year
        year = this_year - this_year % 100 + int(yy)
        if year > this_year + 50:
            year -= 100
        return _epoch(year, mon, day, hh, mm, ss)
    if m := _ASCTIME.fullmatch(value):
        wkday, mon, day, hh, mm, ss, year = m.groups()
        if wkday not in _WEEKDAYS:
            return None
        return _epoch(int(year), mon, day.lstrip(" "), hh, mm, ss)
    return None


def _epoch(year: int, mon: str, day: str, hh: str, mm: str, ss: str) -> int | None:
    if mon not in _MONTHS or year < 1:
        return None
    month = _MONTHS.index(mon) + 1
    d, h, m, s = int(day), int(hh), int(mm), int(ss)
    # §5.6.7 allows a leap second (60); it compares as the next second.
    if not (1 <= d <= calendar.monthrange(year, month)[1] and h < 24 and m < 60 and s <= 60):
        return None
    return calendar.timegm((year, month, d, h, m, s, 0, 0, 0))


def format_http_date(epoch_seconds: int) -> str:
    """IMF-fixdate (§5.6.7), the only format a sender may generate."""
    t = time.gmtime(epoch_seconds)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


# ---------------------------------------------------------------------- entity tags


@dataclass(frozen=True)
class EntityTag:
    opaque: str  # between the quotes
    weak: bool

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


# §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
_ETAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_LIST_SEP = re.compile(r"[ \t]*,[ \t]*")


def parse_entity_tags(value: str) -> list[EntityTag] | Literal["*"] | None:
    """A field value of If-Match / If-None-Match: ``"*"``, a list of tags, or None
    when it is not valid syntax."""
    value = value.strip(_OWS)
    if value == "*":
        return "*"
    tags: list[EntityTag] = []
    pos = 0
    while pos < len(value):
        m = _ETAG.match(value, pos)
        if m is None:
            return None
        tags.append(EntityTag(m.group(2), m.group(1) is not None))
        pos = m.end()
        if pos == len(value):
            break
        sep = _LIST_SEP.match(value, pos)
        if sep is None:
            return None
        pos = sep.end()
        # §5.6.1.2: empty list elements are tolerated.
        while (sep := _LIST_SEP.match(value, pos)) is not None:
            pos = sep.end()
    return tags or None


def parse_entity_tag(value: str) -> EntityTag | None:
    m = _ETAG.fullmatch(value.strip(_OWS))
    return EntityTag(m.group(2), m.group(1) is not None) if m else None


def _strong_match(a: EntityTag, b: EntityTag) -> bool:
    # §8.8.3.2: strong comparison -- both strong and character-by-character equal.
    return not a.weak and not b.weak and a.opaque == b.opaque


def _weak_match(a: EntityTag, b: EntityTag) -> bool:
    # §8.8.3.2: weak comparison -- opaque-tags equal, either may be weak.
    return a.opaque == b.opaque


def make_etag(facts: FileFacts) -> str:
    """A strong ETag from size and mtime (ns): the same for the same file on every
    worker and machine, since no inode or device number goes into it (§8.8.3)."""
    return f'"{facts.mtime_ns:x}-{facts.size:x}"'


# ---------------------------------------------------------------------------- Range

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


def _int(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def parse_range(value: str) -> list[tuple[int | None, int | None]] | None:
    """The specs of a ``bytes`` Range field as ``(first, last)`` pairs (inclusive, as
    written; ``(None, n)`` is a suffix), or None when the field is to be ignored:
    another unit (§14.2 MUST ignore) or invalid syntax (we ignore rather than 400)."""
    unit, eq, range_set = value.partition("=")
    # §14.1: range units are case-insensitive.
    if not eq or unit.strip(_OWS).lower() != "bytes":
        return None
    specs: list[tuple[int | None, int | None]] = []
    for element in range_set.split(","):
        element = element.strip(_OWS)
        if not element:
            continue  # §5.6.1.2: empty list elements are tolerated
        m = _RANGE_SPEC.fullmatch(element)
        if m is None:
            return None
        first, last = m.groups()
        if first:
            last_pos = _int(last) if last else None
            first_pos = _int(first)
            if last_pos is not None and last_pos < first_pos:
                return None  # §14.1.1: invalid if last-pos < first-pos
            specs.append((first_pos, last_pos))
        elif last:
            specs.append((None, _int(last)))
        else:
            return None  # a lone "-"
    return specs or None


def _satisfiable(
    specs: Sequence[tuple[int | None, int | None]], size: int
) -> list[tuple[int, int]]:
    """Half-open ranges clipped to the file, unsatisfiable specs left out (§14.1.1)."""
    ranges = []
    for first, last in specs:
        if first is None:
            assert last is not None
            if last > 0:  # "-0" is unsatisfiable
                ranges.append((max(0, size - last), size))
        elif first < size:
            ranges.append((first, size if last is None else min(last + 1, size)))
    return ranges


def _coalesce(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge ranges that overlap or touch; a merged part stands where the first of
    its members was requested, the others keep the request's order (§15.3.7.2)."""
    parts: list[tuple[int, int]] = []
    for start, stop in ranges:
        touching = [i for i, (s, e) in enumerate(parts) if s <= stop and start <= e]
        if not touching:
            parts.append((start, stop))
            continue
        merged = (
            min(start, *(parts[i][0] for i in touching)),
            max(stop, *(parts[i][1] for i in touching)),
        )
        parts[touching[0]] = merged
        for i in reversed(touching[1:]):
            del parts[i]
    return parts


# ----------------------------------------------------------------------- the planner

# §15.4.5: what a 304 keeps is everything but the representation's content metadata.
_CONTENT_HEADERS_KEPT_ON_304 = frozenset({"content-location"})
_CONDITIONAL_FIELDS = (
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
)
_PLANNED_FIELDS = ("range", *_CONDITIONAL_FIELDS)
_ALWAYS_DROPPED = frozenset({"content-length", "content-range", "transfer-encoding"})


def _content_header_names(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    names = {name.lower() for name, _ in headers}
    return frozenset(
        n for n in names if n.startswith("content-") and n not in _CONTENT_HEADERS_KEPT_ON_304
    )


def _new_boundary() -> str:
    return secrets.token_hex(16)


def plan_response(
    method: str,
    request_headers: Mapping[str, str],
    status: int,
    facts: FileFacts,
    response_headers: Sequence[tuple[str, str]],
    *,
    boundary: str | None = None,
    now: float | None = None,
) -> Plan:
    """Plan the answer to a request for a file.

    ``request_headers`` has lower-case names (see :func:`header_map`);
    ``response_headers`` are the application's, as it would have sent them.
    """
    is_get = method == "GET"
    is_head = method == "HEAD"
    size = facts.size
    # Only a 200 from the app is a representation we may answer conditionally or in
    # part; any other status (404 page, 500 page, ...) goes out as the app chose.
    if status != 200:
        return _body_plan("passthrough", status, facts, (), [(0, size)], is_head, (), "")
    if not any(name in request_headers for name in _PLANNED_FIELDS):
        return _unconditional_full(facts, response_headers, is_head)

    app = header_map(response_headers)
    validators: list[tuple[str, str]] = []
    etag_value = app.get("etag")
    if etag_value is None:
        etag_value = make_etag(facts)
        validators.append(("etag", etag_value))
    last_modified_value = app.get("last-modified")
    if last_modified_value is None:
        last_modified_value = format_http_date(facts.mtime_ns // 1_000_000_000)
        validators.append(("last-modified", last_modified_value))
    # The validators are parsed only when the request has something to compare them
    # with: most requests carry no conditional field, and small files feel the cost.
    etag: EntityTag | None = None
    last_modified: int | None = None
    if any(name in request_headers for name in _CONDITIONAL_FIELDS):
        etag = parse_entity_tag(etag_value)
        last_modified = parse_http_date(last_modified_value, now=now)
    validators.append(("accept-ranges", "bytes"))  # §14.3

    # §13.2.2 step 1: If-Match, strong comparison; "*" matches the existing file.
    if_match = request_headers.get("if-match")
    if if_match is not None:
        tags = parse_entity_tags(if_match)
        if tags != "*" and not (
            etag is not None and tags is not None and any(_strong_match(t, etag) for t in tags)
        ):
            return _bodiless("precondition_failed", 412, response_headers)
    else:
        # Step 2: If-Unmodified-Since, only without If-Match; an invalid date is ignored.
        ius = request_headers.get("if-unmodified-since")
        since = None if ius is None else parse_http_date(ius, now=now)
        if since is not None and last_modified is not None and last_modified > since:
            return _bodiless("precondition_failed", 412, response_headers)

    # Step 3: If-None-Match, weak comparison.
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        tags = parse_entity_tags(if_none_match)
        if tags == "*" or (
            etag is not None and tags is not None and any(_weak_match(t, etag) for t in tags)
        ):
            if is_get or is_head:
                return _not_modified(response_headers, validators)
            # §13.1.2: for other methods a matching If-None-Match fails the request.
            return _bodiless("precondition_failed", 412, response_headers)
    elif is_get or is_head:
        # Step 4: If-Modified-Since, only for GET/HEAD and only without If-None-Match.
        ims = request_headers.get("if-modified-since")
        since = None if ims is None else parse_http_date(ims, now=now)
        if since is not None and last_modified is not None and last_modified <= since:
            return _not_modified(response_headers, validators)

    full = [(0, size)]
    range_value = request_headers.get("range")
    # §14.2: GET is the method Range is defined for; HEAD mirrors GET (same status and
    # headers, no body); every other method ignores it.
    if range_value is None or not (is_get or is_head) or size == 0:
        # An empty file has no byte to range over: 200, like Go (never a 206 of nothing).
        return _body_plan("full", 200, facts, validators, full, is_head, (), "")
    # Step 5: If-Range that does not match -> the whole, current representation.
    if_range = request_headers.get("if-range")
    if if_range is not None and not _if_range_matches(if_range, etag, last_modified, now):
        return _body_plan("full", 200, facts, validators, full, is_head, (), "")

    specs = parse_range(range_value)
    if specs is None or len(specs) > MAX_RANGES:
        return _body_plan("full", 200, facts, validators, full, is_head, (), "")
    ranges = _satisfiable(specs, size)
    if not ranges:
        # §15.5.17: 416 with the current length.
        headers = (*validators, ("content-range", f"bytes */{size}"), ("content-length", "0"))
        return _bodiless("unsatisfiable", 416, response_headers, headers)
    if sum(stop - start for start, stop in ranges) > size:
        # DoS guard: asking for more than the file in total is refused by serving it once.
        return _body_plan("full", 200, facts, validators, full, is_head, (), "")
    parts = _coalesce(ranges)
    if len(parts) == 1:
        (start, stop) = parts[0]
        headers = (*validators, ("content-range", _content_range(start, stop, size)))
        return _body_plan("partial", 206, facts, headers, parts, is_head, tuple(parts), "")
    content_type = app.get("content-type", "application/octet-stream")
    return _body_plan(
        "multipart",
        206,
        facts,
        validators,
        parts,
        is_head,
        tuple(parts),
        boundary or _new_boundary(),
        content_type,
    )


def _unconditional_full(
    facts: FileFacts, response_headers: Sequence[tuple[str, str]], is_head: bool
) -> Plan:
    """The plan of most requests -- no Range, no conditional field: 200 with the whole
    file, the validators the app did not set, and its length. The same plan as the
    general path gives, without building its header map or its part list (a small
    file's request feels that cost)."""
    names = {name.lower() for name, _ in response_headers}
    headers = []
    if "etag" not in names:
        headers.append(("etag", make_etag(facts)))
    if "last-modified" not in names:
        headers.append(("last-modified", format_http_date(facts.mtime_ns // 1_000_000_000)))
    headers += [("accept-ranges", "bytes"), ("content-length", str(facts.size))]
    segments = () if is_head or not facts.size else (FileSlice(0, facts.size),)
    return Plan("full", 200, tuple(headers), _ALWAYS_DROPPED, segments, facts.size)


def _if_range_matches(
    value: str, etag: EntityTag | None, last_modified: int | None, now: float | None
) -> bool:
    value = value.strip(_OWS)
    if value.startswith(('"', "W/")):
        # §13.1.5: only a strong, exactly equal entity-tag; a weak tag never matches.
        tag = parse_entity_tag(value)
        return tag is not None and etag is not None and _strong_match(tag, etag)
    # §13.1.5: a date matches only when exactly equal to Last-Modified.
    date = parse_http_date(value, now=now)
    return date is not None and last_modified is not None and date == last_modified


def _content_range(start: int, stop: int, size: int) -> str:
    return f"bytes {start}-{stop - 1}/{size}"


def _body_plan(
    kind: PlanKind,
    status: int,
    facts: FileFacts,
    headers: Sequence[tuple[str, str]],
    parts: Sequence[tuple[int, int]],
    is_head: bool,
    ranges: tuple[tuple[int, int], ...],
    boundary: str,
    content_type: str = "",
) -> Plan:
    segments: list[Segment] = []
    set_headers = list(headers)
    if boundary:
        # §14.6: multipart/byteranges, CRLF framing, each part with its own
        # Content-Type and Content-Range.
        for i, (start, stop) in enumerate(parts):
            # The CRLF before each delimiter after the first belongs to the delimiter.
            head = (
                ("\r\n" if i else "") + f"--{boundary}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Range: {_content_range(start, stop, facts.size)}\r\n\r\n"
            )
            segments += [head.encode("latin-1", "replace"), FileSlice(start, stop - start)]
        segments.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
        set_headers.append(("content-type", f"multipart/byteranges; boundary={boundary}"))
    else:
        segments += [FileSlice(start, stop - start) for start, stop in parts if stop > start]
    length = sum(s.count if isinstance(s, FileSlice) else len(s) for s in segments)
    set_headers.append(("content-length", str(length)))
    return Plan(
        kind=kind,
        status=status,
        set_headers=tuple(set_headers),
        drop_headers=_ALWAYS_DROPPED,
        segments=() if is_head else tuple(segments),
        content_length=length,
        ranges=ranges,
    )


def _bodiless(
    kind: PlanKind,
    status: int,
    response_headers: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]] = (("content-length", "0"),),
) -> Plan:
    # 412 and 416 carry no part of the file: the app's content metadata does not apply.
    drop = _ALWAYS_DROPPED | _content_header_names(response_headers)
    if kind == "precondition_failed":
        drop |= {"etag", "last-modified", "accept-ranges"}
    return Plan(kind, status, tuple(headers), frozenset(drop), (), 0)


def _not_modified(
    response_headers: Sequence[tuple[str, str]], validators: Sequence[tuple[str, str]]
) -> Plan:
    # §15.4.5: a 304 has the 200's ETag, Last-Modified, Cache-Control, Vary, ... but no
    # Content-Length of the body, no Content-Range and no body.
    drop = _ALWAYS_DROPPED | _content_header_names(response_headers)
    return Plan("not_modified", 304, tuple(validators), frozenset(drop), (), None)
