"""What every test module shares.

The layout follows the code: ``test_http_*`` the pure planner, ``test_files`` and
``test_options`` the shared layer, ``test_asgi_*`` / ``test_wsgi_*`` each adapter,
``test_parity`` both against one table, ``test_uvicorn_protocol`` the server
integration, ``test_hardening_*`` faults, load and hostile input on real servers
(their servers and raw client in ``_hardening``). Helpers: ``_fakes`` (one fake ASGI
and one fake WSGI server), ``_multipart`` (the one multipart/byteranges parser),
``_servers`` (the one runner of real servers, shared with ``benchmarks/``); ``apps/``
holds the apps those servers run.
"""

from __future__ import annotations

import os


def open_fds() -> int:
    """Descriptors open in this process (a leak check compares two counts)."""
    return len(os.listdir("/proc/self/fd"))
