"""A real nginx for the integration tests, configured from docs/deployment.md.

The ``server`` block is read out of that page (the first ``nginx`` block after the
marker comment), so the tests run exactly the documented configuration; only the
upstream address, the listen address and the media directory are replaced.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from _servers import HOST, ROOT_DIR, Server, free_port, run_server

DOC = ROOT_DIR / "docs" / "deployment.md"
_MARKER = "<!-- tests/test_nginx_accel.py reads the next nginx block -->"
_TLS_MARKER = "<!-- tests/test_nginx_accel.py reads the next nginx block (TLS) -->"

# The values the documented block is written with, and what the tests put there.
DOC_UPSTREAM = "server 127.0.0.1:8000;"
DOC_LISTEN = "listen 127.0.0.1:8080;"
DOC_MEDIA = "alias /srv/media/;"
DOC_MAPPING = {"/srv/media": "/_zc/media/"}
DOC_TLS_LISTEN = "listen 127.0.0.1:8443 ssl;"
DOC_CERT = "/etc/ssl/certs/example.pem"
DOC_KEY = "/etc/ssl/private/example.key"


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def documented_block(marker: str = _MARKER) -> str:
    after = DOC.read_text().split(marker, 1)[1]
    match = re.search(r"```nginx\n(.*?)```", after, re.DOTALL)
    assert match is not None, f"no nginx block after {marker!r} in {DOC}"
    return match.group(1)


def config(
    workdir: Path, *, app_port: int, port: int, media: Path, tls: tuple[Path, Path] | None
) -> str:
    block = documented_block()
    listen = f"listen {HOST}:{port};"
    if tls is not None:  # the documented TLS lines in place of the listen line
        listen = documented_block(_TLS_MARKER).strip()
        for old, new in (
            (DOC_TLS_LISTEN, f"listen {HOST}:{port} ssl;"),
            (DOC_CERT, str(tls[0])),
            (DOC_KEY, str(tls[1])),
        ):
            assert listen.count(old) == 1, f"{old!r} not found once in the documented TLS lines"
            listen = listen.replace(old, new)
    for old, new in (
        (DOC_UPSTREAM, f"server {HOST}:{app_port};"),
        (DOC_LISTEN, listen),
        (DOC_MEDIA, f"alias {media}/;"),
    ):
        assert block.count(old) == 1, f"{old!r} not found once in the documented config"
        block = block.replace(old, new)
    # The test's own frame around the documented block: files in the work directory.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {workdir}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\nerror_log {workdir}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log off;\n    sendfile on;\n{temp}{block}}}\n"
    )


@contextlib.contextmanager
def run_nginx(
    workdir: Path, *, app_port: int, media: Path, tls: tuple[Path, Path] | None = None
) -> Iterator[Server]:
    """nginx in front of ``127.0.0.1:app_port`` (over TLS with ``tls`` = certificate
    chain and key files), stopped by PID on exit."""
    binary = nginx_binary()
    assert binary is not None
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(config(workdir, app_port=app_port, port=port, media=media, tls=tls))
    argv = [
        binary,
        "-e",
        str(workdir / "error.log"),
        "-c",
        str(conf),
        "-p",
        str(workdir),
        "-g",
        f"daemon off; pid {workdir}/nginx.pid;",
    ]
    with run_server(argv, port=port) as server:
        yield server


def error_log(workdir: Path) -> str:
    path = workdir / "error.log"
    return path.read_text(errors="replace") if path.exists() else ""
