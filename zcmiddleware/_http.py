"""The planning core: request headers + file facts -> what to send (RFC 9110).

Pure: no ``os``, no sockets, no event loop. Every adapter (ASGI, WSGI, the uvicorn
protocol classes) asks this module the same question -- given a request, the status
and headers the application chose, and the size and mtime of the file -- and gets
back a :class:`Plan`: the final status, the headers to set and to drop, and an
ordered list of segments, each a slice of the file or literal bytes (multipart
framing). The policy is docs/http.md; section numbers below are RFC 9110's.

Ranges are half-open ``[start, stop)`` internally; ``- 1`` only happens when a
``Content-Range`` value is formatted.
"""

from __future__ import annotations

import calendar
import functools
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, Union

__all__ = [
    "BODILESS_STATUSES",
    "CONDITIONAL_FIELDS",
    "MAX_RANGES",
    "RANGE_FIELDS",
    "REQUEST_FIELDS",
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
    "lone_range_headers",
    "plan_response",
    "sends_no_file",
    "choose_coding",
    "unconditional_headers",
    "variant_headers",
]

#: More ranges than this in one request and the Range is ignored (DoS guard, as nginx/Go).
MAX_RANGES = 100

# Digits beyond this many cannot name a byte of any real file; they are capped so that
# ``int()`` never meets Python's int-max-str-digits limit on hostile input.
_MAX_DIGITS = 30
_HUGE = 10**_MAX_DIGITS

_OWS = " \t"

#: The request fields the planner reads (lower-case names), in two groups. Both
#: adapters read exactly these for the planner and hide from the app only what must
#: be hidden for a framework to hand over a whole file (docs/http.md, "What the app
#: sees"): the ``RANGE_FIELDS`` on GET/HEAD. Conditional fields stay visible, so a
#: response that is not a file keeps the app's own 304 and 412.
RANGE_FIELDS = ("range", "if-range")
CONDITIONAL_FIELDS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
REQUEST_FIELDS = RANGE_FIELDS + CONDITIONAL_FIELDS

#: §15.2, §15.3.5, §15.4.5: these statuses never carry content, whatever the app
#: attached to them: a file response with one of them goes out without the file.
BODILESS_STATUSES = frozenset({*range(100, 200), 204, 304})
# §15.5.13, §15.5.17: an app that answered 412 or 416 itself did not send the file.
_NOT_THE_FILE = frozenset({412, 416})


def sends_no_file(status: int) -> bool:
    """Whether a file response with the app's ``status`` goes out without the file:
    a bodiless status, or a 412/416 the app chose itself. Such a response is planned
    without opening anything."""
    return status in BODILESS_STATUSES or status in _NOT_THE_FILE


# The planner's values are plain slotted dataclasses, not frozen ones: a frozen
# dataclass sets each field through object.__setattr__, and building a Plan that way
# cost 12 k instructions against 3 k (callgrind), on every file request. Nothing
# changes them once made (offload_plan makes a new Plan with dataclasses.replace).
@dataclass(slots=True)
class FileFacts:
    """What the planner needs to know about the file: from one ``fstat``."""

    size: int
    mtime_ns: int


@dataclass(slots=True)
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
    "bodiless",  # the app's 1xx/204/304/412/416: its headers, no file bytes
]


@dataclass(slots=True)
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


@functools.lru_cache(maxsize=1024)
def format_http_date(epoch_seconds: int) -> str:
    """IMF-fixdate (§5.6.7), the only format a sender may generate. Cached: the same
    few files' mtimes are formatted for every request."""
    t = time.gmtime(epoch_seconds)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


# ---------------------------------------------------------------------- entity tags


@dataclass(slots=True)
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


def make_etag(facts: FileFacts, coding: str | None = None) -> str:
    """A strong ETag from size and mtime (ns): the same for the same file on every
    worker and machine, since no inode or device number goes into it (§8.8.3). A
    precompressed variant's carries its coding too."""
    suffix = f"-{coding}" if coding else ""
    return f'"{facts.mtime_ns:x}-{facts.size:x}{suffix}"'


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


# ------------------------------------------------------------ content codings

_QVALUE = re.compile(r"[ \t]*;[ \t]*[qQ][ \t]*=[ \t]*(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)[ \t]*")
_CODING = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _accepted_codings(value: str) -> dict[str, float]:
    """Accept-Encoding as ``{coding: qvalue}`` (§12.5.3); malformed members are skipped."""
    accepted: dict[str, float] = {}
    for member in value.split(","):
        member = member.strip(_OWS)
        coding = _CODING.match(member)
        if coding is None:
            continue
        rest = member[coding.end() :]
        if not rest:
            q = 1.0
        elif (m := _QVALUE.fullmatch(rest)) is not None:
            q = float(m.group(1))
        else:
            continue
        accepted[coding.group().lower()] = q
    return accepted


def choose_coding(accept_encoding: str | None, offered: Sequence[str]) -> str | None:
    """Which of the ``offered`` content codings (in the server's order of preference)
    to send, or None for identity (§12.5.3).

    The highest qvalue wins and ties go to the server's order. Identity competes only
    where the client weighs it (``identity;q=``, or ``*``), and loses a tie. ``*``
    covers codings not named; ``q=0`` refuses. Without an
    Accept-Encoding field identity is sent (the RFC allows any coding, but a client
    that asks for nothing, such as curl, expects none). When the client refuses
    identity and accepts nothing offered, identity is sent anyway (§12.5.3 allows it).
    """
    if accept_encoding is None or not offered:
        return None
    accepted = _accepted_codings(accept_encoding)
    star = accepted.get("*")
    identity_q = accepted.get("identity", 0.0 if star is None else star)
    best, best_q = None, 0.0
    for coding in offered:
        q = accepted.get(coding, 0.0 if star is None else star)
        if q > best_q:
            best, best_q = coding, q
    return best if best is not None and best_q >= identity_q else None


def variant_headers(
    response_headers: Sequence[tuple[str, str]], coding: str | None, facts: FileFacts
) -> list[tuple[str, str]]:
    """The app's headers for the variant of a file that is sent: ``Vary:
    Accept-Encoding`` either way (the answer depends on it, §12.5.5); for a coded
    variant also ``Content-Encoding`` and an ETag of its own -- a strong validator
    names one representation, and the coded bytes are another (§8.8.3)."""
    headers = [(n, v) for n, v in response_headers if n.lower() != "vary"]
    vary = [v for n, v in response_headers if n.lower() == "vary"]
    if not any("accept-encoding" in v.lower() or v.strip() == "*" for v in vary):
        vary.append("Accept-Encoding")
    headers.append(("vary", ", ".join(vary)))
    if coding is None:
        return headers
    app_etag = next((v for n, v in headers if n.lower() == "etag"), None)
    tag = parse_entity_tag(app_etag) if app_etag is not None else None
    etag = str(EntityTag(f"{tag.opaque}-{coding}", tag.weak)) if tag else make_etag(facts, coding)
    dropped = ("etag", "content-encoding", "content-length")
    headers = [(n, v) for n, v in headers if n.lower() not in dropped]
    return [*headers, ("content-encoding", coding), ("etag", etag)]


# ----------------------------------------------------------------------- the planner

# §15.4.5: what a 304 keeps is everything but the representation's content metadata.
_CONTENT_HEADERS_KEPT_ON_304 = frozenset({"content-location"})
# The fields that compare against the validators: only with one of them present are
# the app's validators parsed.
_COMPARED_FIELDS = (*CONDITIONAL_FIELDS, "if-range")
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
    handle_ranges: bool = True,
    boundary: str | None = None,
    now: float | None = None,
) -> Plan:
    """Plan the answer to a request for a file.

    ``request_headers`` has lower-case names (see :func:`header_map`);
    ``response_headers`` are the application's, as it would have sent them. With
    ``handle_ranges`` off the app answers Range and preconditions itself: the request
    fields are not looked at and no ``Accept-Ranges`` is promised on its behalf.
    """
    is_head = method == "HEAD"
    if sends_no_file(status):
        return _app_bodiless(status, response_headers)
    # Only a 200 from the app is a representation we may answer conditionally or in
    # part; any other status (404 page, 500 page, ...) goes out as the app chose.
    if status != 200:
        return _body_plan("passthrough", status, facts, (), [(0, facts.size)], is_head, (), "")
    if not handle_ranges or request_headers.keys().isdisjoint(REQUEST_FIELDS):
        return _unconditional_full(facts, response_headers, is_head, handle_ranges)
    if "range" in request_headers and request_headers.keys().isdisjoint(_BESIDES_RANGE):
        one = _one_range(method, request_headers["range"], facts, response_headers)
        if one is not None:
            return one
    return _planned(method, request_headers, facts, response_headers, boundary, now)


def _planned(
    method: str,
    request_headers: Mapping[str, str],
    facts: FileFacts,
    response_headers: Sequence[tuple[str, str]],
    boundary: str | None,
    now: float | None,
) -> Plan:
    """The general plan of a 200 the request has a Range or a conditional field for."""
    app = header_map(response_headers)
    known = _validators(app, facts, request_headers, now)
    failed = _preconditions(method, request_headers, known, response_headers, now)
    if failed is not None:
        return failed
    content_type = app.get("content-type", "application/octet-stream")
    return _range_plan(method, request_headers, facts, known, response_headers, content_type,
                       boundary, now)  # fmt: skip


def _unconditional_full(
    facts: FileFacts, response_headers: Sequence[tuple[str, str]], is_head: bool, ranges: bool
) -> Plan:
    """The plan of most requests -- no Range, no conditional field: 200 with the whole
    file, the validators the app did not set, and its length. The plan the general
    path gives, without its header map and part list (a small file feels that cost)."""
    headers = _missing_validators(facts, response_headers)
    if ranges:
        headers.append(("accept-ranges", "bytes"))  # §14.3
    headers.append(("content-length", str(facts.size)))
    segments = () if is_head or not facts.size else (FileSlice(0, facts.size),)
    return Plan("full", 200, tuple(headers), _ALWAYS_DROPPED, segments, facts.size)


def _missing_validators(
    facts: FileFacts, response_headers: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The file's ETag and Last-Modified, those of the two the app did not set."""
    names = {name.lower() for name, _ in response_headers}
    etag, last_modified, _ = _whole_file_fields(facts.size, facts.mtime_ns)
    headers = []
    if "etag" not in names:
        headers.append(etag)
    if "last-modified" not in names:
        headers.append(last_modified)
    return headers


# The only planner field of most ranged requests (a player seeking, a download
# resumed): Range alone, "bytes=first-[last]" or "bytes=-suffix", as clients write it.
_BESIDES_RANGE = ("if-range", *CONDITIONAL_FIELDS)


def _one_range(
    method: str, range_value: str, facts: FileFacts, response_headers: Sequence[tuple[str, str]]
) -> Plan | None:
    """The 206 of one satisfiable range, for a request whose only planner field is a
    Range of one spec in its plain form -- what :func:`_planned` answers, without its
    header map and general range parsing (a small file feels that cost). None for
    anything else (another form, several specs, unsatisfiable, invalid, an empty file,
    another method): the general path decides."""
    size = facts.size
    if method not in ("GET", "HEAD"):
        return None
    span = _lone_span(range_value.encode("latin-1", "replace"), size)
    if span is None:
        return None
    start, stop = span
    headers = _missing_validators(facts, response_headers)
    count = stop - start
    headers += [
        ("accept-ranges", "bytes"),  # §14.3
        ("content-range", _content_range(start, stop, size)),
        ("content-length", str(count)),
    ]
    segments = () if method == "HEAD" else (FileSlice(start, count),)
    return Plan("partial", 206, tuple(headers), _ALWAYS_DROPPED, segments, count, ((start, stop),))


def _lone_span(range_value: bytes, size: int) -> tuple[int, int] | None:
    """The half-open span of a Range of one satisfiable spec in its plain form,
    ``bytes=first-[last]`` or ``bytes=-suffix`` (ASCII digits, at most 15 each), else
    None (see :func:`_one_range`). Bytes: ``bytes.isdigit`` is ASCII only, and a
    partition is cheaper than a regular expression on every ranged request."""
    if range_value[:6] != b"bytes=" or not size:
        return None
    first, dash, last = range_value[6:].partition(b"-")
    if not dash or len(first) > 15 or len(last) > 15:
        return None
    if first:  # int() and min() cost ~1 k each here: each is done once, or not at all
        if not first.isdigit():
            return None
        start = int(first)
        if start >= size:
            return None  # 416
        if not last:
            return start, size
        if not last.isdigit():
            return None
        stop = int(last) + 1
        if stop <= start:
            return None  # ignored as invalid (§14.1.1)
        return start, (stop if stop < size else size)
    if last.isdigit():
        suffix = int(last)
        if suffix:
            return (size - suffix if suffix < size else 0), size
    return None  # a lone "-", "-0" (unsatisfiable), or not digits


@dataclass(slots=True)
class _Known:
    """The representation's validators: the headers to add, and their parsed values
    (parsed only when the request has something to compare them with: most requests
    carry no conditional field, and small files feel the cost)."""

    headers: tuple[tuple[str, str], ...]
    etag: EntityTag | None
    last_modified: int | None


def _validators(
    app: Mapping[str, str],
    facts: FileFacts,
    request_headers: Mapping[str, str],
    now: float | None,
) -> _Known:
    added: list[tuple[str, str]] = []
    etag_value = app.get("etag")
    if etag_value is None:
        etag_value = make_etag(facts)
        added.append(("etag", etag_value))
    last_modified_value = app.get("last-modified")
    if last_modified_value is None:
        last_modified_value = format_http_date(facts.mtime_ns // 1_000_000_000)
        added.append(("last-modified", last_modified_value))
    added.append(("accept-ranges", "bytes"))  # §14.3
    if not any(name in request_headers for name in _COMPARED_FIELDS):
        return _Known(tuple(added), None, None)
    etag = parse_entity_tag(etag_value)
    return _Known(tuple(added), etag, parse_http_date(last_modified_value, now=now))


def _preconditions(
    method: str,
    request_headers: Mapping[str, str],
    known: _Known,
    response_headers: Sequence[tuple[str, str]],
    now: float | None,
) -> Plan | None:
    """§13.2.2 steps 1-4: the 412 or 304 they give, or None to go on."""
    etag, last_modified = known.etag, known.last_modified
    get_or_head = method in ("GET", "HEAD")
    # Step 1: If-Match, strong comparison; "*" matches the existing file.
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
            if get_or_head:
                return _not_modified(response_headers, known.headers)
            # §13.1.2: for other methods a matching If-None-Match fails the request.
            return _bodiless("precondition_failed", 412, response_headers)
    elif get_or_head:
        # Step 4: If-Modified-Since, only for GET/HEAD and only without If-None-Match.
        ims = request_headers.get("if-modified-since")
        since = None if ims is None else parse_http_date(ims, now=now)
        if since is not None and last_modified is not None and last_modified <= since:
            return _not_modified(response_headers, known.headers)
    return None


def _range_plan(
    method: str,
    request_headers: Mapping[str, str],
    facts: FileFacts,
    known: _Known,
    response_headers: Sequence[tuple[str, str]],
    content_type: str,
    boundary: str | None,
    now: float | None,
) -> Plan:
    """§13.2.2 steps 5-6: the whole file, one range, several, or 416."""
    is_head, size, validators = method == "HEAD", facts.size, known.headers
    full = [(0, size)]
    range_value = request_headers.get("range")
    # §14.2: GET is the method Range is defined for; HEAD mirrors GET (same status and
    # headers, no body); every other method ignores it.
    if range_value is None or method not in ("GET", "HEAD") or size == 0:
        # An empty file has no byte to range over: 200, like Go (never a 206 of nothing).
        return _body_plan("full", 200, facts, validators, full, is_head, (), "")
    # Step 5: If-Range that does not match -> the whole, current representation.
    if_range = request_headers.get("if-range")
    if if_range is not None and not _if_range_matches(if_range, known, now):
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
    if not _FIELD_BREAKS.isdisjoint(content_type):
        # §5.5: CR, LF and NUL are never part of a field value; repeated in each part's
        # header this one would start a line of its own in the body. Serve the file
        # once: the value stays in the header section, where the server checks it.
        return _body_plan("full", 200, facts, validators, full, is_head, (), "")
    return _body_plan("multipart", 206, facts, validators, parts, is_head, tuple(parts),
                      boundary or _new_boundary(), content_type)  # fmt: skip


_FIELD_BREAKS = frozenset("\r\n\0")


def _if_range_matches(value: str, known: _Known, now: float | None) -> bool:
    etag, last_modified = known.etag, known.last_modified
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


@functools.lru_cache(maxsize=1024)
def _whole_file_fields(size: int, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    # The same few files are served again and again: their ETag, Last-Modified and
    # Content-Length are formatted once per size and mtime.
    return (
        ("etag", make_etag(FileFacts(size, mtime_ns))),
        ("last-modified", format_http_date(mtime_ns // 1_000_000_000)),
        ("content-length", str(size)),
    )


_ACCEPT_RANGES = ("accept-ranges", "bytes")  # §14.3

# What unconditional_headers does with a response field, by name: the roles of
# whole_file_headers' table below, with the two validators told apart.
_KEPT, _SIZE, _VALIDATOR, _DROPPED, _RANGES, _ENTITY_TAG = range(6)
_ROLES = {
    "content-length": _DROPPED,  # the file's size replaces the app's
    "content-range": _DROPPED,
    "transfer-encoding": _DROPPED,
    "accept-ranges": _RANGES,
    "etag": _ENTITY_TAG,
    "last-modified": _VALIDATOR,
}
# The names the frameworks send on a file response, as they spell them: one look-up
# here per field costs less than lower-casing its name (a new string, hashed afresh)
# and testing it against each set of names. Any other spelling is lower-cased.
_SPELLED_ROLES = {
    spelling: _ROLES.get(name.lower(), _KEPT)
    for name in (
        "Accept-Ranges", "Cache-Control", "Content-Disposition", "Content-Encoding",
        "Content-Language", "Content-Length", "Content-Range", "Content-Security-Policy",
        "Content-Type", "Cross-Origin-Opener-Policy", "Date", "ETag", "Expires",
        "Last-Modified", "Referrer-Policy", "Set-Cookie", "Transfer-Encoding", "Vary",
        "X-Content-Type-Options", "X-Frame-Options",
    )
    for spelling in (name, name.lower(), name.title())
}  # fmt: skip


def unconditional_headers(
    size: int,
    mtime_ns: int,
    response_headers: Iterable[tuple[str, str]],
    handle_ranges: bool,
) -> list[tuple[str, str]]:
    """The answer's headers for a 200 of the whole file to a request with none of
    :data:`REQUEST_FIELDS` (or with ``handle_ranges`` off): what
    ``plan_response(...).apply(response_headers)`` gives, in one pass over the app's
    headers and without a plan (a small file feels that cost). The file's size and
    mtime as in :class:`FileFacts`."""
    kept = []
    etag = last_modified = True
    roles = _SPELLED_ROLES
    for pair in response_headers:
        role = roles.get(pair[0])
        if role is None:
            role = _ROLES.get(pair[0].lower(), _KEPT)
        if role:
            if role == _DROPPED:
                continue
            if role == _RANGES:
                if handle_ranges:  # the Accept-Ranges we promise replaces the app's (§14.3)
                    continue
            elif role == _ENTITY_TAG:
                etag = False
            else:
                last_modified = False
        kept.append(pair)
    etag_field, last_modified_field, length_field = _whole_file_fields(size, mtime_ns)
    if etag and last_modified and handle_ranges:  # the app set neither validator
        kept += (etag_field, last_modified_field, _ACCEPT_RANGES, length_field)
        return kept
    if etag:
        kept.append(etag_field)
    if last_modified:
        kept.append(last_modified_field)
    if handle_ranges:
        kept.append(_ACCEPT_RANGES)
    kept.append(length_field)
    return kept


# What whole_file_headers does with a response field, by name. The lower-case
# spellings ASGI apps send are looked up as they come (a dict lookup, where lowering
# each name first cost ~1 k per field); any other name is lowered first.
_RAW_ROLES = {
    b"content-length": _SIZE,
    b"etag": _VALIDATOR,
    b"last-modified": _VALIDATOR,
    b"content-range": _DROPPED,
    b"transfer-encoding": _DROPPED,
    b"accept-ranges": _RANGES,
    **dict.fromkeys(
        (b"content-type", b"content-disposition", b"cache-control", b"content-encoding",
         b"content-language", b"date", b"expires", b"vary", b"server"),
        _KEPT,
    ),
}  # fmt: skip


def whole_file_headers(
    response_headers: Iterable[tuple[bytes, bytes]],
    handle_ranges: bool,
    private: frozenset[bytes] = frozenset(),
    *,
    as_sent: bool = False,
) -> list[tuple[bytes, bytes]] | None:
    """The answer's headers for a 200 of the whole file to a request with none of
    :data:`REQUEST_FIELDS`, when the app's headers (as bytes, as ASGI has them)
    already carry its size and both validators: what :func:`plan_response` would
    give, without the file's facts and without decoding a header. ``private`` names
    (lower-case) are left out. None when the size or a validator is missing (then the
    file must be looked at).

    The answer ends with Content-Length -- unless ``as_sent``: then, when the app's
    headers (a list or a tuple) already are that answer, they are returned themselves,
    in their order, for the caller to send as they are (Starlette's FileResponse sends
    its size, both validators and ``Accept-Ranges: bytes``). Its caller must not
    change them: they are the app's."""
    size: bytes | None = None
    validators = ranges = 0
    final = as_sent
    kept = []
    for pair in response_headers:
        name = pair[0]
        role = _RAW_ROLES.get(name)
        if role is None:
            name = name.lower()
            role = _RAW_ROLES.get(name, _KEPT)
        if role:
            if role == _SIZE:
                final = final and size is None  # one Content-Length, not two
                size = pair[1]
                continue
            if role == _VALIDATOR:
                validators += 1
            elif role == _DROPPED:
                final = False
                continue
            elif handle_ranges:  # Accept-Ranges: ours to say
                ranges += 1
                final = final and pair[1] == b"bytes"
                continue
        if private and name in private:
            final = False
            continue
        kept.append(pair)
    if size is None or validators != 2 or not size.isdigit() or len(size) > _MAX_DIGITS:
        return None
    canonical = size[0] != 0x30 or len(size) == 1  # no leading zeros
    as_is = type(response_headers) is list or type(response_headers) is tuple
    if final and canonical and ranges == handle_ranges and as_is:
        return response_headers  # type: ignore[return-value]
    if handle_ranges:
        kept.append((b"accept-ranges", b"bytes"))  # §14.3
    kept.append((b"content-length", size if canonical else b"%d" % int(size)))
    return kept


def lone_range_headers(
    response_headers: Iterable[tuple[bytes, bytes]],
    range_value: bytes,
    private: frozenset[bytes] = frozenset(),
) -> tuple[list[tuple[bytes, bytes]], tuple[int, int, int]] | None:
    """The 206's headers (as :func:`whole_file_headers`, from the app's size and both
    validators) and ``(offset, count, size)`` for a GET or HEAD whose only request
    field of :data:`REQUEST_FIELDS` is a Range of one satisfiable spec in its plain
    form: what :func:`plan_response` answers. None for anything else."""
    kept = whole_file_headers(response_headers, True, private)
    if kept is None:
        return None
    size = int(kept[-1][1])  # whole_file_headers ends with Accept-Ranges, Content-Length
    span = _lone_span(range_value, size)
    if span is None:
        return None
    start, stop = span
    kept[-1] = (b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size))
    kept.append((b"content-length", b"%d" % (stop - start)))
    return kept, (start, stop - start, size)


def _app_bodiless(status: int, response_headers: Sequence[tuple[str, str]]) -> Plan:
    # The app chose a status that sends no file (1xx, 204, 304) or said itself that the
    # file is not sent (412, 416): its headers go out as it set them, with no body.
    # §8.6: no Content-Length in a 1xx or 204; a 304's may stay (it describes the 200).
    if status in _NOT_THE_FILE:
        return Plan("bodiless", status, (("content-length", "0"),), _ALWAYS_DROPPED, (), 0)
    drop = frozenset() if status == 304 else _ALWAYS_DROPPED
    return Plan("bodiless", status, (), drop, (), None)


def _not_modified(
    response_headers: Sequence[tuple[str, str]], validators: Sequence[tuple[str, str]]
) -> Plan:
    # §15.4.5: a 304 has the 200's ETag, Last-Modified, Cache-Control, Vary, ... but no
    # Content-Length of the body, no Content-Range and no body.
    drop = _ALWAYS_DROPPED | _content_header_names(response_headers)
    return Plan("not_modified", 304, tuple(validators), frozenset(drop), (), None)
