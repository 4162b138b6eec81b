"""Helpers shared by the ASGI unit and integration tests (the parser lives in
tests/_multipart.py, the suite's one)."""

from __future__ import annotations

from _multipart import parse_byteranges

__all__ = ["parse_byteranges"]
