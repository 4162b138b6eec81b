"""gunicorn config for the WSGI tests: proof of the sendfile path, counted.

``post_worker_init`` runs in the worker after the app is loaded. It wraps
``os.sendfile`` (which ``socket.sendfile`` looks up on every call), ``os.pread``
(the middleware's fallback reads) and ``socket.sendall`` (everything gunicorn writes
through Python: headers, and bodies it copies), and answers ``GET /__zc_stats``
with the totals as JSON (``?reset`` zeroes them after reading).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

# gunicorn 27 opens a control socket at a fixed path by default; parallel test
# servers would fight over it.
control_socket_disable = True

totals = {"sendfile": 0, "sendfile_calls": 0, "pread": 0, "sendall": 0}


def post_worker_init(worker: Any) -> None:
    real_sendfile = os.sendfile
    real_pread = os.pread
    real_sendall = socket.socket.sendall

    def counting_sendfile(out_fd: int, in_fd: int, offset: Any, count: int) -> int:
        sent = real_sendfile(out_fd, in_fd, offset, count)
        totals["sendfile"] += sent
        totals["sendfile_calls"] += 1
        return sent

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        totals["pread"] += len(data)
        return data

    def counting_sendall(self: socket.socket, data: Any, *args: Any) -> None:
        totals["sendall"] += len(data)
        real_sendall(self, data, *args)

    os.sendfile = counting_sendfile
    os.pread = counting_pread
    socket.socket.sendall = counting_sendall  # type: ignore[method-assign]

    app = worker.wsgi

    def stats_app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/__zc_stats":
            return app(environ, start_response)
        body = json.dumps(totals).encode()
        if "reset" in environ.get("QUERY_STRING", ""):
            for key in totals:
                totals[key] = 0
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    worker.wsgi = stats_app
