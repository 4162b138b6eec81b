"""Properties of the planning core that hold for every input (hypothesis)."""

from __future__ import annotations

import email.parser
import email.policy
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from zcmiddleware._http import (
    FileFacts,
    FileSlice,
    Plan,
    _one_range,
    _planned,
    header_map,
    lone_range_headers,
    plan_response,
    unconditional_headers,
    whole_file_headers,
)

MTIME_NS = 1_700_000_000_123_456_789


@st.composite
def range_specs(draw: st.DrawFn, size: int) -> str:
    """A mostly well-formed range set around the file's size, sometimes with noise."""
    limit = max(size * 2, 4)
    spec = st.one_of(
        st.tuples(st.integers(0, limit), st.integers(0, limit)).map(lambda t: f"{min(t)}-{max(t)}"),
        st.integers(0, limit).map(lambda a: f"{a}-"),
        st.integers(0, limit).map(lambda n: f"-{n}"),
        st.integers(0, 2**70).map(lambda n: f"{n}-"),
    )
    specs = draw(st.lists(spec, min_size=1, max_size=12))
    ows = draw(st.sampled_from(["", " ", "\t", " \t"]))
    unit = draw(st.sampled_from(["bytes", "BYTES", "Bytes"]))
    return f"{unit}={ows}" + f"{ows},{ows}".join(specs)


def body_of(plan: Plan, data: bytes) -> bytes:
    return b"".join(
        data[s.offset : s.offset + s.count] if isinstance(s, FileSlice) else s
        for s in plan.segments
    )


@st.composite
def file_and_range(draw: st.DrawFn) -> tuple[bytes, str]:
    data = draw(st.binary(min_size=0, max_size=300))
    return data, draw(range_specs(len(data)))


@given(file_and_range())
@settings(max_examples=500)
def test_segments_lie_inside_the_file_and_length_is_exact(case: tuple[bytes, str]) -> None:
    data, range_ = case
    size = len(data)
    plan = plan_response("GET", {"range": range_}, 200, FileFacts(size, MTIME_NS), [])
    for segment in plan.segments:
        if isinstance(segment, FileSlice):
            assert 0 <= segment.offset < size
            assert 0 < segment.count <= size - segment.offset
    headers = header_map(plan.apply([]))
    assert int(headers["content-length"]) == plan.content_length == plan.body_length
    assert len(body_of(plan, data)) == plan.content_length
    assert plan.status in (200, 206, 416)
    if plan.status == 200:
        assert body_of(plan, data) == data


def requested_bytes(range_: str, size: int) -> set[int]:
    """Every byte offset the satisfiable specs name, computed independently."""
    wanted: set[int] = set()
    for spec in range_.split("=", 1)[1].split(","):
        first, _, last = spec.strip(" \t").partition("-")
        if first:
            start, stop = int(first), (int(last) + 1 if last else size)
        else:
            start, stop = size - int(last), size
            if int(last) == 0:
                continue
        wanted.update(range(max(start, 0), min(stop, size)))
    return wanted


@given(file_and_range())
@settings(max_examples=500)
def test_multipart_body_parses_back_to_exactly_the_requested_bytes(
    case: tuple[bytes, str],
) -> None:
    data, range_ = case
    size = len(data)
    app = [("Content-Type", "application/x-test")]
    plan = plan_response("GET", {"range": range_}, 200, FileFacts(size, MTIME_NS), app)
    headers = header_map(plan.apply(app))
    body = body_of(plan, data)
    wanted = requested_bytes(range_, size)
    if plan.status == 206 and plan.kind == "partial":
        unit_range = headers["content-range"].split(" ")[1]
        first, last = (int(x) for x in unit_range.split("/")[0].split("-"))
        assert body == data[first : last + 1]
        assert set(range(first, last + 1)) == wanted
    if plan.kind != "multipart":
        return
    # Parse with the standard library's MIME parser, independent of our framing code.
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body
    )
    assert message.is_multipart()
    got: set[int] = set()
    parts: list[tuple[int, int]] = []
    for part in message.iter_parts():
        assert part["Content-Type"] == "application/x-test"
        unit, _, spec = part["Content-Range"].partition(" ")
        assert unit == "bytes"
        first_last, _, total = spec.partition("/")
        assert int(total) == size
        first, last = (int(x) for x in first_last.split("-"))
        payload = part.get_payload(decode=True)
        assert payload == data[first : last + 1]
        # Coalesced: no two parts overlap or touch.
        assert all(last + 1 < start or stop < first for start, stop in parts)
        parts.append((first, last + 1))
        got |= set(range(first, last + 1))
    assert got == wanted


@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "G\x00T"]),
    status=st.sampled_from([200, 206, 404]),
    size=st.integers(0, 2**64),
    request=st.dictionaries(
        st.sampled_from(
            [
                "range",
                "if-range",
                "if-match",
                "if-none-match",
                "if-modified-since",
                "if-unmodified-since",
            ]
        ),
        st.text(max_size=60),
    ),
    app=st.lists(
        st.tuples(
            st.sampled_from(["ETag", "Last-Modified", "Content-Type", "X-Any"]),
            st.text(max_size=40),
        ),
        max_size=4,
    ),
)
@settings(max_examples=1000)
def test_no_header_however_hostile_raises(
    method: str, status: int, size: int, request: dict[str, str], app: list[tuple[str, str]]
) -> None:
    plan = plan_response(method, request, status, FileFacts(size, MTIME_NS), app)
    assert plan.status in (status, 206, 304, 412, 416)
    plan.apply(app)


@given(
    request=st.dictionaries(
        st.sampled_from(["range", "if-range", "if-none-match", "if-modified-since"]),
        st.text(alphabet=st.sampled_from('bytes=0123456789-, \t"W/*'), max_size=30),
    ),
    size=st.integers(0, 50),
)
@settings(max_examples=500)
def test_head_mirrors_get(request: dict[str, str], size: int) -> None:
    facts = FileFacts(size, MTIME_NS)
    get = plan_response("GET", request, 200, facts, [], boundary="b")
    head = plan_response("HEAD", request, 200, facts, [], boundary="b")
    assert (head.status, head.set_headers, head.content_length) == (
        get.status,
        get.set_headers,
        get.content_length,
    )
    assert head.segments == ()


_NAMES = st.sampled_from(
    ["Content-Length", "content-length", "ETag", "etag", "Last-Modified", "last-modified",
     "Accept-Ranges", "Content-Range", "Transfer-Encoding", "Content-Type", "X-Other",
     "Cache-Control", "X-Private", "Etag", "CONTENT-LENGTH", "eTag", "Accept-ranges"]
)  # fmt: skip


@given(
    headers=st.lists(st.tuples(_NAMES, st.text(alphabet='abc019 "-/', max_size=8)), max_size=8),
    size=st.integers(0, 10**12),
    handle_ranges=st.booleans(),
    method=st.sampled_from(["GET", "HEAD"]),
)
@settings(max_examples=1000)
def test_whole_file_headers_is_the_planners_answer(
    headers: list[tuple[str, str]], size: int, handle_ranges: bool, method: str
) -> None:
    # The shortcut for a request with no Range or conditional field, planned from the
    # app's own size and validators, says exactly what the planner says.
    app = [(n, v) for n, v in headers if n.lower() != "content-length"]
    app += [("content-length", str(size)), ("etag", '"t"'), ("last-modified", "x")]
    app = [(n, v) for n, v in app if n.lower() not in ("etag", "last-modified")] + app[-2:]
    private = frozenset({b"x-private"})
    raw = [(n.encode(), v.encode()) for n, v in app]
    quick = whole_file_headers(raw, handle_ranges, private)
    kept = [(n, v) for n, v in app if n.lower() != "x-private"]
    plan = plan_response(
        method, {}, 200, FileFacts(size, MTIME_NS), kept, handle_ranges=handle_ranges
    )
    assert plan.kind == "full"
    assert quick is not None
    assert [(n.decode().lower(), v.decode()) for n, v in quick] == [
        (n.lower(), v) for n, v in plan.apply(kept)
    ]
    # as_sent: the same answer, and the app's own list only when it already is it.
    sent = whole_file_headers(raw, handle_ranges, private, as_sent=True)
    assert sent is not None
    assert sorted((n.lower(), v) for n, v in sent) == sorted((n.lower(), v) for n, v in quick)
    if sent is raw:
        assert len(sent) == len(quick)


@given(
    headers=st.lists(st.tuples(_NAMES, st.text(alphabet='abc019 "-/', max_size=8)), max_size=8),
    size=st.integers(0, 10**12),
    mtime_ns=st.sampled_from([0, MTIME_NS, 10**18 + 1]),
    handle_ranges=st.booleans(),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
)
@settings(max_examples=1000)
def test_unconditional_headers_is_the_planners_answer(
    headers: list[tuple[str, str]], size: int, mtime_ns: int, handle_ranges: bool, method: str
) -> None:
    # The WSGI shortcut for a request with no Range or conditional field: the headers
    # the planner's plan gives, from the file's facts, whatever the app set.
    facts = FileFacts(size, mtime_ns)
    plan = plan_response(method, {}, 200, facts, headers, handle_ranges=handle_ranges)
    assert plan.kind == "full"
    quick = unconditional_headers(size, mtime_ns, headers, handle_ranges)
    assert quick == plan.apply(headers)


def test_whole_file_headers_as_sent_are_the_apps_own_when_they_are_the_answer() -> None:
    starlette = [(b"content-type", b"text/plain"), (b"accept-ranges", b"bytes"),
                 (b"content-length", b"5"), (b"last-modified", b"x"), (b"etag", b"1")]  # fmt: skip
    assert whole_file_headers(starlette, True, as_sent=True) is starlette
    assert whole_file_headers(tuple(starlette), True, as_sent=True) == tuple(starlette)
    assert whole_file_headers(starlette, True) is not starlette  # a new list, Length last
    not_yet = {
        "no Accept-Ranges": starlette[:1] + starlette[2:],
        "Accept-Ranges: none": [starlette[0], (b"accept-ranges", b"none"), *starlette[2:]],
        "two Accept-Ranges": [*starlette, (b"accept-ranges", b"bytes")],
        "two Content-Lengths": [*starlette, (b"content-length", b"5")],
        "leading zeros": [*starlette[:2], (b"content-length", b"05"), *starlette[3:]],
        "a private name": [*starlette, (b"x-private", b"1")],
        "a dropped field": [*starlette, (b"transfer-encoding", b"chunked")],
    }
    for name, headers in not_yet.items():
        answer = whole_file_headers(headers, True, frozenset({b"x-private"}), as_sent=True)
        assert answer is not headers, name
        assert answer == whole_file_headers(headers, True, frozenset({b"x-private"})), name
    # Without handle_ranges the app's Accept-Ranges is its own to send, whatever it says.
    for headers in (starlette, not_yet["Accept-Ranges: none"], not_yet["no Accept-Ranges"]):
        assert whole_file_headers(headers, False, as_sent=True) is headers
    assert whole_file_headers((h for h in starlette), True, as_sent=True) is not None


def test_whole_file_headers_needs_the_size_and_both_validators() -> None:
    full = [(b"content-length", b"5"), (b"etag", b'"a"'), (b"last-modified", b"x")]
    assert whole_file_headers(full, True) is not None
    for missing in range(3):
        assert whole_file_headers(full[:missing] + full[missing + 1 :], True) is None
    assert whole_file_headers([(b"content-length", b"5x"), *full[1:]], True) is None


_APP_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            ["ETag", "etag", "Last-Modified", "Content-Type", "Content-Length", "Cache-Control"]
        ),
        st.sampled_from(['"abc"', "Tue, 14 Nov 2023 22:13:20 GMT", "text/plain", "12", ""]),
    ),
    max_size=6,
)


@given(
    st.sampled_from(["GET", "HEAD", "POST", "DELETE"]),
    st.integers(0, 10**12),
    _APP_HEADERS,
    st.dictionaries(st.sampled_from(["host", "accept", "user-agent"]), st.just("x")),
)
@settings(max_examples=500)
def test_request_without_range_or_conditional_gets_the_general_paths_plan(
    method: str, size: int, app_headers: list[tuple[str, str]], request: dict[str, str]
) -> None:
    # The shortcut for the common request must plan exactly what the general path
    # does: an If-Range without a Range takes the general path and changes nothing.
    facts = FileFacts(size, MTIME_NS)
    shortcut = plan_response(method, request, 200, facts, app_headers)
    general = plan_response(method, {**request, "if-range": '"x"'}, 200, facts, app_headers)
    assert shortcut == general
    assert shortcut.kind == "full"


@given(
    size=st.integers(0, 5000),
    spec=st.one_of(
        st.tuples(st.integers(0, 6000), st.integers(0, 6000)).map(lambda t: f"{t[0]}-{t[1]}"),
        st.integers(0, 6000).map(lambda a: f"{a}-"),
        st.integers(0, 6000).map(lambda n: f"-{n}"),
        st.sampled_from(["-", "0-0", "00012-", "-000", "1-2,3-4", " 1-2", "1 -2", "9" * 16 + "-"]),
    ),
    unit=st.sampled_from(["bytes=", "Bytes=", "bytes =", "bytes= "]),
    headers=_APP_HEADERS,
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    extra=st.sampled_from([{}, {"accept-encoding": "gzip"}, {"if-range": '"x"'}]),
)
@settings(max_examples=2000)
def test_a_lone_range_is_planned_as_the_general_path_plans_it(
    size: int,
    spec: str,
    unit: str,
    headers: list[tuple[str, str]],
    method: str,
    extra: dict[str, str],
) -> None:
    # plan_response answers a Range that is the request's only planner field without
    # its general machinery (_one_range); the plan must be the one that gives.
    request = {"range": unit + spec, **extra}
    facts = FileFacts(size, MTIME_NS)
    plan = plan_response(method, request, 200, facts, headers, boundary="b")
    general = _planned(method, request, facts, headers, "b", None)
    assert plan == general
    assert plan.apply(headers) == general.apply(headers)


def test_the_lone_range_shortcut_is_taken() -> None:
    # Not only equal plans: the common forms do go the short way (and others not).
    facts = FileFacts(100, MTIME_NS)
    for value in ("bytes=0-9", "bytes=10-", "bytes=-5", "bytes=90-500"):
        assert _one_range("GET", value, facts, []) is not None, value
    for value in ("bytes=0-9,20-29", "bytes=200-", "bytes=-0", "bytes=9-1", "BYTES=0-1"):
        assert _one_range("GET", value, facts, []) is None, value


@given(
    headers=st.lists(st.tuples(_NAMES, st.text(alphabet='abc019 "-/', max_size=8)), max_size=8),
    size=st.integers(0, 10**6),
    spec=st.one_of(
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)).map(lambda t: f"{t[0]}-{t[1]}"),
        st.integers(0, 10**6).map(lambda a: f"{a}-"),
        st.integers(0, 10**6).map(lambda n: f"-{n}"),
        st.sampled_from(["-", "-0", "1-2,3-4", " 0-1"]),
    ),
    method=st.sampled_from(["GET", "HEAD"]),
)
@settings(max_examples=1000)
def test_lone_range_headers_is_the_planners_answer(
    headers: list[tuple[str, str]], size: int, spec: str, method: str
) -> None:
    # The ASGI shortcut for a lone Range on a server that takes a range of a pathsend's
    # file: from the app's own size and validators, the 206 the planner gives (or None
    # where the planner answers anything but a 206 of one part).
    app = [(n, v) for n, v in headers if n.lower() not in ("content-length", "etag",
           "last-modified")] + [("content-length", str(size)), ("ETag", '"t"'),
           ("last-modified", "x")]  # fmt: skip
    private = frozenset({b"x-private"})
    raw = [(n.encode(), v.encode()) for n, v in app]
    quick = lone_range_headers(raw, f"bytes={spec}".encode(), private)
    kept = [(n, v) for n, v in app if n.lower() != "x-private"]
    plan = plan_response(method, {"range": f"bytes={spec}"}, 200, FileFacts(size, 0), kept)
    if plan.kind != "partial" or len(plan.ranges) != 1:
        assert quick is None
        return
    if quick is None:  # only the plain forms are taken; the planner answers the rest
        assert not re.fullmatch(r"[0-9]*-[0-9]*", spec) or spec in ("-", "-0")
        return
    answer, (offset, count, whole) = quick
    assert [(n.decode().lower(), v.decode()) for n, v in answer] == [
        (n.lower(), v) for n, v in plan.apply(kept)
    ]
    ((start, stop),) = plan.ranges
    assert (offset, count, whole) == (start, stop - start, size)
