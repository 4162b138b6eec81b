"""Which uvicorn ``zcmiddleware.uvicorn`` can extend, decided once at import.

The protocol classes rely on a few uvicorn internals, not on its version: a
release outside the tested range is used (with one warning) as long as those
internals are there; only when one is missing does the import fail, saying what
to do instead. The tested range and its history are in docs/uvicorn.md.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: The releases the test suite has passed on: ``>=`` the first, ``<`` the second.
#: Before 0.36 uvicorn does not accept ``--http module:Class`` at all.
TESTED_UVICORN = ((0, 36), (0, 55))

# What each piece of uvicorn must still do, read from the names its code uses:
# the cycle keeps its response state in these attributes, the protocol assigns
# ``self.cycle`` when it builds one (the moment the cycle is adopted).
_CYCLE_STATE = (
    "scope",
    "transport",
    "flow",
    "disconnected",
    "response_started",
    "response_complete",
)
_HTTPTOOLS_CYCLE_STATE = ("chunked_encoding", "expected_content_length")


class UntestedUvicornWarning(UserWarning):
    """uvicorn is newer than the tested range; its internals look unchanged."""


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.54.0"`` -> ``(0, 54)``; a non-numeric piece counts as 0."""
    parts = []
    for piece in version.split(".")[:2]:
        match = re.match(r"\d+", piece)
        parts.append(int(match.group()) if match else 0)
    return tuple(parts)


def _names(function: Callable[..., Any] | None) -> set[str]:
    code = getattr(function, "__code__", None)
    return set(code.co_names) if code is not None else set()


def missing_internals(
    h11_impl: ModuleType, httptools_impl: ModuleType | None, h11: ModuleType
) -> list[str]:
    """The internals the protocol classes use that these uvicorn modules lack."""
    impls: list[tuple[ModuleType, str, str, tuple[str, ...]]] = [
        (h11_impl, "H11Protocol", "handle_events", ("conn",))
    ]
    if httptools_impl is not None:
        impls.append(
            (httptools_impl, "HttpToolsProtocol", "on_headers_complete", _HTTPTOOLS_CYCLE_STATE)
        )
    missing = []
    for module, protocol_name, builds_cycle, extra_state in impls:
        where = module.__name__.rpartition(".")[2]
        protocol = getattr(module, protocol_name, None)
        cycle = getattr(module, "RequestResponseCycle", None)
        if protocol is None or cycle is None:
            missing.append(f"{where}.{protocol_name} or {where}.RequestResponseCycle")
            continue
        if "cycle" not in _names(getattr(protocol, builds_cycle, None)):
            missing.append(f"{where}.{protocol_name}.{builds_cycle} setting self.cycle")
        state = _names(cycle.__init__)
        missing += [
            f"{where}.RequestResponseCycle.{name}"
            for name in (*_CYCLE_STATE, *extra_state)
            if name not in state
        ]
    if not hasattr(getattr(h11, "Connection", None), "send_with_data_passthrough"):
        missing.append("h11.Connection.send_with_data_passthrough")
    return missing


def check_uvicorn(
    version: str, h11_impl: ModuleType, httptools_impl: ModuleType | None, h11: ModuleType
) -> None:
    """Raise ImportError for a uvicorn the protocol classes cannot extend; warn
    once for one newer than the tested range that still has what they need."""
    (low, high) = (".".join(map(str, bound)) for bound in TESTED_UVICORN)
    remedy = (
        f'install a tested uvicorn (pip install "uvicorn>={low},<{high}") '
        "or run uvicorn with its own protocol (--http auto: correct, but no zero-copy)"
    )
    current = version_tuple(version)
    if current < TESTED_UVICORN[0]:
        raise ImportError(
            f"zcmiddleware.uvicorn needs uvicorn>={low} (--http module:Class), "
            f"but uvicorn {version} is installed: {remedy}"
        )
    missing = missing_internals(h11_impl, httptools_impl, h11)
    if missing:
        raise ImportError(
            f"zcmiddleware.uvicorn cannot extend uvicorn {version}, which lacks "
            f"{', '.join(missing)}: {remedy}"
        )
    if current >= TESTED_UVICORN[1]:
        warnings.warn(
            f"zcmiddleware.uvicorn is tested with uvicorn>={low},<{high}; uvicorn {version} "
            "has the internals it uses, so it is used as is",
            UntestedUvicornWarning,
            stacklevel=2,
        )
