"""The planning core, row by row against docs/http.md (RFC 9110).

Each group below is one section of docs/http.md; each row one line of it or an edge
case around it. Properties that must hold for any input are in
test_http_properties.py.
"""

from __future__ import annotations

import calendar

import pytest

from zcmiddleware._http import (
    MAX_RANGES,
    EntityTag,
    FileFacts,
    FileSlice,
    Plan,
    choose_coding,
    format_http_date,
    header_map,
    make_etag,
    parse_entity_tags,
    parse_http_date,
    parse_range,
    plan_response,
    sends_no_file,
    variant_headers,
)

SIZE = 1000
MTIME = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
FACTS = FileFacts(size=SIZE, mtime_ns=MTIME * 1_000_000_000 + 123_456_789)
ETAG = make_etag(FACTS)
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
BEFORE = "Tue, 14 Nov 2023 22:13:19 GMT"
AFTER = "Tue, 14 Nov 2023 22:13:21 GMT"
APP_ETAG = '"app-tag"'
APP_HEADERS = [
    ("Content-Type", "video/mp4"),
    ("Content-Disposition", 'attachment; filename="a.mp4"'),
    ("Cache-Control", "max-age=60"),
    ("Vary", "Accept-Encoding"),
    ("Content-Location", "/a.mp4"),
    ("Expires", "Thu, 01 Dec 2033 16:00:00 GMT"),
    ("Date", "Thu, 01 Dec 2023 16:00:00 GMT"),
    ("Set-Cookie", "a=b"),
    ("Content-Length", "999999"),
    ("Content-Encoding", "identity"),
]


def plan(
    method: str = "GET",
    *,
    status: int = 200,
    facts: FileFacts = FACTS,
    app: list[tuple[str, str]] | None = None,
    **request: str,
) -> Plan:
    headers = {name.replace("_", "-"): value for name, value in request.items()}
    return plan_response(method, headers, status, facts, app or [], boundary="BOUNDARY")


def final(p: Plan, app: list[tuple[str, str]] | None = None) -> dict[str, str]:
    return header_map(p.apply(app or []))


def slices(p: Plan) -> list[tuple[int, int]]:
    return [(s.offset, s.count) for s in p.segments if isinstance(s, FileSlice)]


# ---------------------------------------------------------------------- Validators


def test_validators_generated_when_the_app_set_none() -> None:
    headers = final(plan())
    assert headers["etag"] == ETAG
    assert headers["last-modified"] == LAST_MODIFIED
    assert headers["accept-ranges"] == "bytes"


def test_generated_etag_is_strong_and_depends_only_on_size_and_mtime_ns() -> None:
    assert not ETAG.startswith("W/")
    assert make_etag(FileFacts(SIZE, FACTS.mtime_ns)) == ETAG
    assert make_etag(FileFacts(SIZE, FACTS.mtime_ns + 1)) != ETAG  # nanoseconds count
    assert make_etag(FileFacts(SIZE + 1, FACTS.mtime_ns)) != ETAG


def test_app_validators_are_kept() -> None:
    app = [("ETag", APP_ETAG), ("Last-Modified", BEFORE)]
    p = plan(app=app)
    headers = final(p, app)
    assert headers["etag"] == APP_ETAG
    assert headers["last-modified"] == BEFORE
    assert [n for n, _ in p.apply(app)].count("ETag") == 1
    # ... and are the ones preconditions are evaluated against.
    assert plan(app=app, if_none_match=APP_ETAG).status == 304
    assert plan(app=app, if_none_match=ETAG).status == 200
    assert plan(app=app, if_modified_since=BEFORE).status == 304


@pytest.mark.parametrize(
    ("request_headers", "status"),
    [({}, 200), ({"range": "bytes=0-1"}, 206), ({"if_none_match": ETAG}, 304)],
)
def test_accept_ranges_on_every_200_206_304(request_headers: dict[str, str], status: int) -> None:
    p = plan(**request_headers)
    assert p.status == status
    assert final(p)["accept-ranges"] == "bytes"


# ----------------------------------------------------- Order of evaluation (§13.2.2)

PRECONDITIONS = [
    # 1. If-Match: strong comparison; "*" matches any existing file.
    ("if-match matches", {"if_match": ETAG}, 200),
    ("if-match in a list", {"if_match": f'"x", {ETAG} ,"y"'}, 200),
    ("if-match star", {"if_match": "*"}, 200),
    ("if-match no match", {"if_match": '"other"'}, 412),
    ("if-match weak never matches", {"if_match": f"W/{ETAG}"}, 412),
    ("if-match malformed", {"if_match": "not-a-tag"}, 412),
    # 2. If-Unmodified-Since, only without If-Match.
    ("ius modified after", {"if_unmodified_since": BEFORE}, 412),
    ("ius equal", {"if_unmodified_since": LAST_MODIFIED}, 200),
    ("ius later", {"if_unmodified_since": AFTER}, 200),
    ("ius invalid date ignored", {"if_unmodified_since": "yesterday"}, 200),
    ("ius ignored with if-match", {"if_match": ETAG, "if_unmodified_since": BEFORE}, 200),
    # 3. If-None-Match: weak comparison.
    ("inm matches", {"if_none_match": ETAG}, 304),
    ("inm weak matches", {"if_none_match": f"W/{ETAG}"}, 304),
    ("inm in a list", {"if_none_match": f'"a", W/"b", {ETAG}'}, 304),
    ("inm star", {"if_none_match": "*"}, 304),
    ("inm no match", {"if_none_match": '"other"'}, 200),
    ("inm malformed", {"if_none_match": "garbage"}, 200),
    # 4. If-Modified-Since, only without If-None-Match.
    ("ims equal", {"if_modified_since": LAST_MODIFIED}, 304),
    ("ims later", {"if_modified_since": AFTER}, 304),
    ("ims earlier", {"if_modified_since": BEFORE}, 200),
    ("ims invalid", {"if_modified_since": "Tue, 14 Nov 2023"}, 200),
    ("ims ignored with inm", {"if_none_match": '"other"', "if_modified_since": AFTER}, 200),
    # The order itself.
    ("if-match before inm", {"if_match": '"other"', "if_none_match": ETAG}, 412),
    ("ius before ims", {"if_unmodified_since": BEFORE, "if_modified_since": AFTER}, 412),
    ("preconditions before range", {"if_none_match": ETAG, "range": "bytes=0-1"}, 304),
    ("412 before 416", {"if_match": '"x"', "range": "bytes=5000-"}, 412),
    ("if-match ok then range", {"if_match": ETAG, "range": "bytes=0-1"}, 206),
]


@pytest.mark.parametrize(
    ("request_headers", "status"),
    [row[1:] for row in PRECONDITIONS],
    ids=[row[0] for row in PRECONDITIONS],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_preconditions(method: str, request_headers: dict[str, str], status: int) -> None:
    p = plan(method, **request_headers)
    assert p.status == status
    if status in (304, 412):
        assert p.segments == ()


def test_if_match_never_matches_a_weak_app_etag() -> None:
    app = [("ETag", 'W/"v1"')]
    assert plan(app=app, if_match='W/"v1"').status == 412
    assert plan(app=app, if_match='"v1"').status == 412
    assert plan(app=app, if_match="*").status == 200
    assert plan(app=app, if_none_match='"v1"').status == 304


def test_unparseable_app_validators_never_match() -> None:
    app = [("ETag", "unquoted"), ("Last-Modified", "sometime")]
    assert plan(app=app, if_match="unquoted").status == 412
    assert plan(app=app, if_none_match='"unquoted"').status == 200
    assert plan(app=app, if_modified_since=AFTER).status == 200
    assert plan(app=app, if_unmodified_since=BEFORE).status == 200
    assert plan(app=app, range="bytes=0-1", if_range="sometime").status == 200


# Step 5: If-Range.
IF_RANGE = [
    ("strong equal etag", ETAG, 206),
    ("other etag", '"other"', 200),
    ("weak tag never matches", f"W/{ETAG}", 200),
    ("malformed tag", '"unterminated', 200),
    ("date equal to last-modified", LAST_MODIFIED, 206),
    ("date equal in rfc850 form", "Tuesday, 14-Nov-23 22:13:20 GMT", 206),
    ("earlier date", BEFORE, 200),
    ("later date", AFTER, 200),
    ("not a date", "whenever", 200),
]


@pytest.mark.parametrize(
    ("if_range", "status"), [r[1:] for r in IF_RANGE], ids=[r[0] for r in IF_RANGE]
)
def test_if_range(if_range: str, status: int) -> None:
    p = plan(range="bytes=0-9", if_range=if_range)
    assert p.status == status
    assert slices(p) == ([(0, 10)] if status == 206 else [(0, SIZE)])


def test_if_range_with_a_weak_app_etag_serves_200() -> None:
    app = [("ETag", 'W/"v1"')]
    assert plan(app=app, range="bytes=0-9", if_range='W/"v1"').status == 200


def test_if_range_without_range_is_ignored() -> None:
    assert plan(if_range='"other"').kind == "full"


def test_head_answers_as_get_would_without_a_body() -> None:
    for request in [{}, {"range": "bytes=0-9"}, {"range": "bytes=0-1,5-6"}, {"range": "bytes=-0"}]:
        get, head = plan("GET", **request), plan("HEAD", **request)
        assert (head.status, head.set_headers, head.drop_headers) == (
            get.status,
            get.set_headers,
            get.drop_headers,
        )
        assert head.content_length == get.content_length
        assert head.segments == ()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_ignore_range_and_conditional_get_fields(method: str) -> None:
    assert plan(method, range="bytes=0-9").kind == "full"
    assert plan(method, if_modified_since=AFTER).status == 200
    # Preconditions 1-2 still apply ...
    assert plan(method, if_match='"other"').status == 412
    assert plan(method, if_unmodified_since=BEFORE).status == 412
    # ... and a matching If-None-Match fails the request (§13.1.2).
    assert plan(method, if_none_match=ETAG).status == 412


def test_304_headers() -> None:
    p = plan(if_none_match=ETAG, app=APP_HEADERS)
    assert (p.status, p.segments, p.content_length) == (304, (), None)
    headers = final(p, APP_HEADERS)
    for name in ("cache-control", "content-location", "date", "expires", "vary", "set-cookie"):
        assert name in headers
    assert headers["etag"] == ETAG
    assert headers["last-modified"] == LAST_MODIFIED
    for name in ("content-length", "content-range", "content-type", "content-encoding"):
        assert name not in headers


def test_412_has_no_file_body() -> None:
    p = plan(if_match='"x"', app=APP_HEADERS)
    assert (p.status, p.segments, p.content_length) == (412, (), 0)
    headers = final(p, APP_HEADERS)
    assert headers["content-length"] == "0"
    assert "content-type" not in headers
    assert "etag" not in headers


# --------------------------------------------------------------------- Range (§14)

RANGES = [
    # Ignored: another unit (§14.2 MUST ignore) or invalid syntax (our choice over 400).
    ("other unit", "items=0-5", 200, [(0, SIZE)]),
    ("abc", "bytes=abc", 200, [(0, SIZE)]),
    ("empty set", "bytes=", 200, [(0, SIZE)]),
    ("only commas", "bytes=, ,", 200, [(0, SIZE)]),
    ("last before first", "bytes=5-2", 200, [(0, SIZE)]),
    ("three numbers", "bytes=1-2-3", 200, [(0, SIZE)]),
    ("lone dash", "bytes=-", 200, [(0, SIZE)]),
    ("no equals", "bytes 0-5", 200, [(0, SIZE)]),
    ("negative", "bytes=--5", 200, [(0, SIZE)]),
    ("space inside a spec", "bytes=0 - 4", 200, [(0, SIZE)]),
    ("one bad spec spoils the set", "bytes=0-4,x", 200, [(0, SIZE)]),
    ("unicode digits", "bytes=\u0660-\u0665", 200, [(0, SIZE)]),
    ("superscript digits", "bytes=\u00b2-\u00b3", 200, [(0, SIZE)]),
    # Single ranges.
    ("a-b", "bytes=0-499", 206, [(0, 500)]),
    ("1 byte at 0", "bytes=0-0", 206, [(0, 1)]),
    ("1 byte at 5", "bytes=5-5", 206, [(5, 1)]),
    ("last byte", "bytes=999-999", 206, [(999, 1)]),
    ("b past the end clipped", "bytes=990-5000", 206, [(990, 10)]),
    ("open range", "bytes=990-", 206, [(990, 10)]),
    ("open from 0", "bytes=0-", 206, [(0, SIZE)]),
    ("suffix", "bytes=-10", 206, [(990, 10)]),
    ("suffix of the whole", "bytes=-1000", 206, [(0, SIZE)]),
    ("suffix longer than the file", "bytes=-5000", 206, [(0, SIZE)]),
    ("leading zeros", "bytes=0005-0009", 206, [(5, 5)]),
    ("unit is case-insensitive", "BYTES=0-4", 206, [(0, 5)]),
    ("unit mixed case", "Bytes=0-4", 206, [(0, 5)]),
    ("whitespace around unit and list", " bytes = 0-4 ", 206, [(0, 5)]),
    ("tabs", "bytes=\t0-4\t", 206, [(0, 5)]),
    # Numbers past 2**63 (and past int()'s digit limit) are plain big numbers.
    ("huge last-pos", "bytes=0-99999999999999999999999", 206, [(0, SIZE)]),
    ("huge suffix", "bytes=-99999999999999999999999", 206, [(0, SIZE)]),
    ("5000-digit last-pos", "bytes=1-" + "9" * 5000, 206, [(1, SIZE - 1)]),
    ("5000 zeros then 7", "bytes=" + "0" * 5000 + "7-7", 206, [(7, 1)]),
    # Unsatisfiable.
    ("-0", "bytes=-0", 416, []),
    ("first-pos = size", "bytes=1000-", 416, []),
    ("first-pos past size", "bytes=1000-2000", 416, []),
    ("huge first-pos", "bytes=99999999999999999999999-", 416, []),
    ("5000-digit first-pos", "bytes=" + "9" * 5000 + "-", 416, []),
    ("none satisfiable", "bytes=1000-,2000-3000,-0", 416, []),
    # Partially satisfiable sets: only the satisfiable ranges.
    ("some satisfiable", "bytes=0-4,2000-", 206, [(0, 5)]),
    ("-0 among others", "bytes=-0,10-19", 206, [(10, 10)]),
    # Coalescing: overlap or touch -> one part, where the first of them stood.
    ("overlapping", "bytes=0-9,5-14", 206, [(0, 15)]),
    ("touching", "bytes=0-4,5-9", 206, [(0, 10)]),
    ("touching reversed", "bytes=5-9,0-4", 206, [(0, 10)]),
    ("contained", "bytes=0-99,10-19", 206, [(0, 100)]),
    ("same range twice", "bytes=0-9,0-9", 206, [(0, 10)]),
    ("bridge merges three", "bytes=0-4,20-29,5-19", 206, [(0, 30)]),
]


@pytest.mark.parametrize(
    ("range_", "status", "expected"),
    [r[1:] for r in RANGES],
    ids=[r[0] for r in RANGES],
)
def test_range(range_: str, status: int, expected: list[tuple[int, int]]) -> None:
    p = plan(range=range_)
    assert p.status == status
    assert slices(p) == expected
    headers = final(p)
    if status == 206:
        ((offset, count),) = expected
        assert headers["content-range"] == f"bytes {offset}-{offset + count - 1}/{SIZE}"
        assert headers["content-length"] == str(count)
    elif status == 416:
        assert headers["content-range"] == f"bytes */{SIZE}"
        assert headers["content-length"] == "0"
        assert p.segments == ()
    else:
        assert "content-range" not in headers
        assert headers["content-length"] == str(SIZE)


MULTIPART = [
    ("two ranges", "bytes=0-4,10-14", [(0, 5), (10, 5)]),
    ("request order kept", "bytes=10-14,0-4", [(10, 5), (0, 5)]),
    ("first and last byte", "bytes=0-0,-1", [(0, 1), (999, 1)]),
    ("merged part stands where its first member was", "bytes=50-59,0-4,55-64", [(50, 15), (0, 5)]),
    ("merge across parts", "bytes=100-109,0-4,200-209,5-99", [(0, 110), (200, 10)]),
    ("with empty elements", "bytes=0-4,,\t10-14 ,", [(0, 5), (10, 5)]),
    ("unsatisfiable dropped", "bytes=0-4,5000-,-0,10-14", [(0, 5), (10, 5)]),
    ("exactly 100 ranges", ",".join(f"{i * 10}-{i * 10}" for i in range(100)), None),
]


@pytest.mark.parametrize(
    ("range_", "expected"), [r[1:] for r in MULTIPART], ids=[r[0] for r in MULTIPART]
)
def test_multipart(range_: str, expected: list[tuple[int, int]] | None) -> None:
    app = [("Content-Type", "video/mp4")]
    p = plan(range=f"bytes={range_}" if not range_.startswith("bytes") else range_, app=app)
    assert (p.status, p.kind) == (206, "multipart")
    if expected is None:
        expected = [(i * 10, 1) for i in range(100)]
    assert slices(p) == expected
    headers = final(p, app)
    assert headers["content-type"] == "multipart/byteranges; boundary=BOUNDARY"
    assert "content-range" not in headers
    assert int(headers["content-length"]) == p.body_length == p.content_length
    body = b"".join(
        s if isinstance(s, bytes) else b"<%d+%d>" % (s.offset, s.count) for s in p.segments
    )
    first = expected[0]
    assert body.startswith(
        b"--BOUNDARY\r\nContent-Type: video/mp4\r\n"
        b"Content-Range: bytes %d-%d/1000\r\n\r\n<%d+%d>\r\n--BOUNDARY\r\n"
        % (first[0], first[0] + first[1] - 1, first[0], first[1])
    )
    assert body.endswith(b"\r\n--BOUNDARY--\r\n")
    assert body.count(b"--BOUNDARY\r\n") == len(expected)


def test_multipart_part_type_defaults_to_octet_stream() -> None:
    p = plan(range="bytes=0-0,5-5")
    assert b"Content-Type: application/octet-stream\r\n" in p.segments[0]  # type: ignore[operator]


def test_multipart_boundary_is_random_by_default() -> None:
    a = plan_response("GET", {"range": "bytes=0-0,5-5"}, 200, FACTS, [])
    b = plan_response("GET", {"range": "bytes=0-0,5-5"}, 200, FACTS, [])
    assert final(a)["content-type"] != final(b)["content-type"]
    assert len(final(a)["content-type"].split("boundary=")[1]) == 32


GUARDS = [
    ("101 ranges", ",".join(f"{i * 5}-{i * 5}" for i in range(MAX_RANGES + 1))),
    ("total exceeds the size", "0-,0-"),
    ("whole plus one byte", "0-999,0-0"),
    ("two suffixes of the whole", "-1000,-600"),
]


@pytest.mark.parametrize("range_", [g[1] for g in GUARDS], ids=[g[0] for g in GUARDS])
def test_denial_of_service_guard_serves_200_full(range_: str) -> None:
    p = plan(range=f"bytes={range_}")
    assert (p.status, slices(p)) == (200, [(0, SIZE)])


@pytest.mark.parametrize("range_", ["bytes=0-0", "bytes=-1", "bytes=-0", "bytes=5-", "x"])
def test_empty_file_is_200_never_206(range_: str) -> None:
    p = plan(range=range_, facts=FileFacts(0, FACTS.mtime_ns))
    assert (p.status, p.segments, p.content_length) == (200, (), 0)
    assert final(p)["content-length"] == "0"


def test_one_byte_file_first_and_last_byte_is_the_whole_file() -> None:
    # "bytes=0-0,-1" names byte 0 twice: the total (2) exceeds the size (1) -> guard.
    p = plan(range="bytes=0-0,-1", facts=FileFacts(1, FACTS.mtime_ns))
    assert (p.status, slices(p)) == (200, [(0, 1)])


# ----------------------------------------------------- Headers and passthrough


def test_200_full_keeps_app_headers_and_replaces_length() -> None:
    p = plan(app=APP_HEADERS)
    headers = final(p, APP_HEADERS)
    assert headers["content-length"] == str(SIZE)
    assert headers["content-type"] == "video/mp4"
    assert headers["content-disposition"] == 'attachment; filename="a.mp4"'
    assert headers["cache-control"] == "max-age=60"
    assert [n.lower() for n, _ in p.apply(APP_HEADERS)].count("content-length") == 1


def test_206_drops_app_length_and_transfer_encoding() -> None:
    app = [*APP_HEADERS, ("Transfer-Encoding", "chunked"), ("Content-Range", "bytes 0-1/2")]
    headers = final(plan(range="bytes=0-9", app=app), app)
    assert headers["content-length"] == "10"
    assert headers["content-range"] == f"bytes 0-9/{SIZE}"
    assert "transfer-encoding" not in headers


@pytest.mark.parametrize("status", [100, 103, 204, 304, 412, 416])
def test_statuses_that_send_no_file_never_carry_its_bytes(status: int) -> None:
    # The app chose them: its headers go out, without the file (§15.2, §15.3.5,
    # §15.4.5, §15.5.13, §15.5.17), whatever the request asks for.
    assert sends_no_file(status)
    for method, request in (("GET", {}), ("GET", {"range": "bytes=0-9"}), ("HEAD", {})):
        p = plan_response(method, request, status, FACTS, APP_HEADERS)
        assert (p.kind, p.status, p.segments) == ("bodiless", status, ())
        headers = final(p, APP_HEADERS)
        assert "etag" not in headers and "accept-ranges" not in headers
        if status == 304:
            assert headers["content-length"] == "999999"  # the app's: it describes the 200
        elif status in (412, 416):
            assert headers["content-length"] == "0"
        else:
            assert "content-length" not in headers  # §8.6: never in a 1xx or 204


@pytest.mark.parametrize("status", [200, 201, 206, 404, 500])
def test_other_statuses_send_the_file(status: int) -> None:
    assert not sends_no_file(status)


def test_without_range_handling_the_request_is_not_read_and_no_ranges_are_promised() -> None:
    p = plan_response(
        "GET", {"range": "bytes=0-9", "if-none-match": "*"}, 200, FACTS, [], handle_ranges=False
    )
    assert (p.kind, p.status, slices(p)) == ("full", 200, [(0, SIZE)])
    headers = final(p, [])
    assert "accept-ranges" not in headers
    assert headers["etag"] == ETAG
    own = [("Accept-Ranges", "bytes")]  # the app's own promise is the app's to keep
    assert (
        final(plan_response("GET", {}, 200, FACTS, own, handle_ranges=False), own)["accept-ranges"]
        == "bytes"
    )


@pytest.mark.parametrize("status", [201, 203, 404, 410, 500])
def test_only_a_200_is_subject_to_range_and_conditionals(status: int) -> None:
    p = plan(
        status=status,
        app=APP_HEADERS,
        range="bytes=0-9",
        if_none_match="*",
        if_match='"x"',
    )
    assert (p.kind, p.status, slices(p)) == ("passthrough", status, [(0, SIZE)])
    headers = final(p, APP_HEADERS)
    assert headers["content-length"] == str(SIZE)
    assert headers["content-type"] == "video/mp4"
    assert "etag" not in headers and "accept-ranges" not in headers
    assert plan("HEAD", status=status).segments == ()


def test_apply_is_case_insensitive_and_keeps_order() -> None:
    p = plan(range="bytes=0-9")
    out = p.apply([("X-A", "1"), ("CONTENT-LENGTH", "5"), ("X-B", "2")])
    assert out[:2] == [("X-A", "1"), ("X-B", "2")]
    assert ("content-length", "10") in out


def test_header_map_joins_repeated_fields() -> None:
    assert header_map([("If-None-Match", '"a"'), ("if-none-match", '"b"'), ("X", "1")]) == {
        "if-none-match": '"a", "b"',
        "x": "1",
    }
    assert plan(**{"if_none_match": '"a", ' + ETAG}).status == 304


# --------------------------------------------------------------- HTTP dates (§5.6.7)

EPOCH_1994 = calendar.timegm((1994, 11, 6, 8, 49, 37, 0, 0, 0))


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # ANSI C asctime()
        "Sun Nov 06 08:49:37 1994",
        " \tSun, 06 Nov 1994 08:49:37 GMT\t ",
    ],
)
def test_all_three_date_formats(value: str) -> None:
    assert parse_http_date(value, now=EPOCH_1994) == EPOCH_1994


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Xyz, 06 Nov 1994 08:49:37 GMT",  # not a weekday
        "Sun, 06 Foo 1994 08:49:37 GMT",  # not a month
        "Sun, 31 Feb 1994 08:49:37 GMT",  # no such day
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 23:60:00 GMT",
        "Sun, 06 Nov 1994 23:59:61 GMT",
        "Sun, 06 Nov 0000 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun,  06 Nov 1994 08:49:37 GMT",
        "Sundae, 06-Nov-94 08:49:37 GMT",
        "Sun Foo  6 08:49:37 1994",
        "Xyz Nov  6 08:49:37 1994",
        "Sun Nov  0 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
        "\u0661\u0669\u0669\u0664",
    ],
)
def test_invalid_dates(value: str) -> None:
    assert parse_http_date(value) is None


def test_leap_second_is_accepted() -> None:
    assert parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT") == calendar.timegm(
        (2017, 1, 1, 0, 0, 0, 0, 0, 0)
    )


def test_rfc850_two_digit_year_within_50_years() -> None:
    now_2026 = calendar.timegm((2026, 11, 27, 0, 0, 0, 0, 0, 0))
    assert parse_http_date("Tuesday, 14-Nov-23 22:13:20 GMT", now=now_2026) == MTIME
    # 2076 is not more than 50 years ahead of 2026; 2077 is, so it means 1977.
    assert parse_http_date("Friday, 01-Jan-76 00:00:00 GMT", now=now_2026) == calendar.timegm(
        (2076, 1, 1, 0, 0, 0, 0, 0, 0)
    )
    assert parse_http_date("Saturday, 01-Jan-77 00:00:00 GMT", now=now_2026) == calendar.timegm(
        (1977, 1, 1, 0, 0, 0, 0, 0, 0)
    )
    # Without ``now`` the clock decides; today's two digits mean this century.
    assert parse_http_date("Tuesday, 14-Nov-23 22:13:20 GMT") == MTIME


def test_format_http_date_round_trips() -> None:
    assert format_http_date(EPOCH_1994) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert parse_http_date(format_http_date(MTIME)) == MTIME


# ------------------------------------------------------------- entity tags (§8.8.3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", "*"),
        (" * ", "*"),
        ('"a"', [EntityTag("a", False)]),
        ('W/"a"', [EntityTag("a", True)]),
        ('"a", W/"b",\t"c"', [EntityTag("a", False), EntityTag("b", True), EntityTag("c", False)]),
        ('"a,b"', [EntityTag("a,b", False)]),  # a comma is an etagc
        ('"",  ,"x"', [EntityTag("", False), EntityTag("x", False)]),
        ('"a",', [EntityTag("a", False)]),
        ("", None),
        ('"a" "b"', None),
        ("a", None),
        ('w/"a"', None),  # W/ is case-sensitive
        ('"a', None),
        ('"a"b', None),
        ('"a b"', None),  # space is not an etagc
        ('*, "a"', None),
    ],
)
def test_parse_entity_tags(value: str, expected: object) -> None:
    assert parse_entity_tags(value) == expected


def test_entity_tag_str() -> None:
    assert str(EntityTag("a", True)) == 'W/"a"'
    assert str(EntityTag("a", False)) == '"a"'


def test_parse_range_returns_specs_as_written() -> None:
    assert parse_range("bytes=0-4, 9-, -3") == [(0, 4), (9, None), (None, 3)]
    assert parse_range("bytes=0-4,x") is None


# ----------------------------------------------- content codings (§12.5.3, §8.8.3)


@pytest.mark.parametrize(
    ("accept", "offered", "chosen"),
    [
        (None, ("br", "gzip"), None),  # no field: identity, as a client asking nothing expects
        ("", ("br", "gzip"), None),
        ("gzip, deflate, br", ("br", "gzip"), "br"),  # ties go to the server's order
        ("gzip, deflate, br", ("gzip", "br"), "gzip"),
        ("br;q=0.5, gzip;q=0.8", ("br", "gzip"), "gzip"),
        ("br;q=0, gzip", ("br", "gzip"), "gzip"),
        ("br;q=0", ("br",), None),
        ("*", ("br", "gzip"), "br"),
        ("*;q=0.1, br;q=0", ("br", "gzip"), "gzip"),
        ("gzip;q=0.5, identity", ("gzip",), None),  # identity preferred
        ("gzip;q=0.5, identity;q=0.5", ("gzip",), "gzip"),  # a coding wins a tie
        ("identity;q=0", ("br",), None),  # nothing acceptable offered: identity anyway
        ("identity;q=1, *;q=0", ("br", "gzip"), None),  # Chrome's media requests
        ("GZIP", ("gzip",), "gzip"),  # codings are case-insensitive
        ("gzip;q=2, br;q=abc, zstd;level=3", ("gzip", "br", "zstd"), None),  # malformed
        ("gzip ; q=0.250", ("gzip",), "gzip"),
        ("gzip", (), None),
    ],
)
def test_choose_coding(accept: str | None, offered: tuple[str, ...], chosen: str | None) -> None:
    assert choose_coding(accept, offered) == chosen


def test_a_coded_variant_has_its_own_etag_encoding_and_vary() -> None:
    variant = FileFacts(400, FACTS.mtime_ns + 1)
    app = [("Content-Type", "text/javascript"), ("Vary", "Cookie"), ("Content-Length", "1")]
    headers = dict(variant_headers(app, "br", variant))
    assert headers["content-encoding"] == "br"
    assert headers["vary"] == "Cookie, Accept-Encoding"
    assert headers["etag"] == make_etag(variant, "br") != make_etag(variant)
    assert "Content-Length" not in headers and headers["Content-Type"] == "text/javascript"
    # The app's own tag, made distinct; weak stays weak.
    tagged = dict(variant_headers([("ETag", 'W/"v1"')], "gzip", variant))
    assert tagged["etag"] == 'W/"v1-gzip"'
    assert dict(variant_headers([("ETag", "junk")], "gzip", variant))["etag"] == make_etag(
        variant, "gzip"
    )


def test_identity_beside_a_variant_varies_on_accept_encoding() -> None:
    headers = variant_headers([("Vary", "accept-encoding")], None, FACTS)
    assert headers == [("vary", "accept-encoding")]
    assert variant_headers([("Vary", "*")], None, FACTS) == [("vary", "*")]
    assert variant_headers([], None, FACTS) == [("vary", "Accept-Encoding")]


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "a\nb", "a\0b"])
def test_a_content_type_that_breaks_lines_is_never_repeated_into_parts(content_type: str) -> None:
    # §5.5: CR, LF, NUL are never part of a field value; in a part header they would
    # start a line of their own inside the body. The file is served once instead.
    app = [("Content-Type", content_type)]
    p = plan(range="bytes=0-1,5-6", app=app)
    assert (p.kind, p.status, slices(p)) == ("full", 200, [(0, SIZE)])
