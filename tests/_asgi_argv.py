"""The command lines that serve an ASGI app on 127.0.0.1, one per server setup.

Shared by the ASGI integration tests so that each server is started the same way
wherever it is tested (HTTP/1.1, HTTP/2 over cleartext, memory).
"""

from __future__ import annotations

import os
import shutil

from _servers import HOST, python
from _tls import TLSFiles

ZC_GUNICORN = "zcmiddleware.gunicorn.ASGIWorker"
# h2c by prior knowledge, or HTTP/1.1 (gunicorn trusts 127.0.0.1 for it by default)
GUNICORN_H2C = ("--http-protocols", "h2,h1", "--http2-cleartext", "both")


def _tls_options(argv: list[str], tls: TLSFiles) -> list[str]:
    cert, key = str(tls.cert), str(tls.key)
    if argv[0].endswith("granian"):
        return ["--ssl-certificate", cert, "--ssl-keyfile", key]
    if "uvicorn" in argv:
        return ["--ssl-certfile", cert, "--ssl-keyfile", key]
    return ["--certfile", cert, "--keyfile", key]  # hypercorn, anycorn, gunicorn


def _granian() -> str:
    granian = shutil.which("granian", path=os.path.dirname(python()[0]))
    assert granian is not None
    return granian


def asgi_argv(
    name: str, port: int, target: str = "apps.asgi_app:app", tls: TLSFiles | None = None
) -> list[str]:
    """argv serving ``target`` on ``port``; the ``-h2`` setups speak HTTP/2 over
    cleartext to a client with prior knowledge (RFC 9113 §3.3), and HTTP/1.1 too;
    a ``-tls`` suffix serves the same over TLS with ``tls`` (HTTP/2 by ALPN)."""
    bind = f"{HOST}:{port}"
    if name.endswith("-tls"):
        assert tls is not None, name
        argv = asgi_argv(name.removesuffix("-tls"), port, target)
        argv[-1:-1] = _tls_options(argv, tls)  # before the app
        return argv
    argv = {
        "uvicorn": python("-m", "uvicorn", target, "--host", HOST, "--port", str(port)),
        "granian": [_granian(), "--interface", "asgi", "--host", HOST, "--port", str(port)],
        "anycorn": python("-m", "anycorn", "-k", "trio", "-b", bind, target),
        "hypercorn": python("-m", "hypercorn", "-b", bind, target),
        # gunicorn's native ASGI worker (gunicorn 27), and zcmiddleware's variant of it
        "gunicorn-asgi": python("-m", "gunicorn", "-k", "asgi", "-b", bind, target),
        "gunicorn-zc": python("-m", "gunicorn", "-k", ZC_GUNICORN, "-b", bind, target),
        "daphne": python("-m", "daphne", "-b", HOST, "-p", str(port), target),
        # HTTP/2
        "uvicorn-zttp-h2": python(
            "-m", "uvicorn", target, "--host", HOST, "--port", str(port), "--http", "zttp"
        )
        + ["--http2"],
        "granian-h2": [_granian(), "--interface", "asgi", "--http", "2"]
        + ["--host", HOST, "--port", str(port)],
        "anycorn-h2": python("-m", "anycorn", "-k", "trio", "-b", bind, target),
        "hypercorn-h2": python("-m", "hypercorn", "-b", bind, target),
        "gunicorn-asgi-h2": python("-m", "gunicorn", "-k", "asgi", "-b", bind, *GUNICORN_H2C)
        + [target],
        "gunicorn-zc-h2": python("-m", "gunicorn", "-k", ZC_GUNICORN, "-b", bind, *GUNICORN_H2C)
        + [target],
    }[name]
    if argv[0].endswith("granian"):
        argv.append(target)
    return argv
