"""The one multipart/byteranges parser of the test suite."""

from __future__ import annotations

import re


def parse_byteranges(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The parts of a ``multipart/byteranges`` body as (Content-Range, bytes), checking
    the framing byte for byte (RFC 9110 §14.6, RFC 2046 §5.1.1)."""
    m = re.fullmatch(r"multipart/byteranges; boundary=([0-9A-Za-z'()+_,./:=?-]+)", content_type)
    assert m, content_type
    delimiter = b"--" + m.group(1).encode()
    assert body.startswith(delimiter + b"\r\n"), body[:100]
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n"), body[-100:]
    inner = body[len(delimiter) + 2 : -(len(delimiter) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, sep, data = raw.partition(b"\r\n\r\n")
        assert sep, raw[:100]
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        assert set(fields) == {b"Content-Type", b"Content-Range"}, fields
        content_range = fields[b"Content-Range"].decode()
        m2 = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range)
        assert m2, content_range
        assert len(data) == int(m2.group(2)) - int(m2.group(1)) + 1
        parts.append((content_range, data))
    return parts


def parse_spans(content_type: str, body: bytes) -> list[tuple[int, int, bytes]]:
    """:func:`parse_byteranges` as half-open (start, stop, bytes) spans."""
    spans = []
    for content_range, data in parse_byteranges(content_type, body):
        first, _, rest = content_range.removeprefix("bytes ").partition("-")
        last = rest.partition("/")[0]
        spans.append((int(first), int(last) + 1, data))
    return spans
