"""The server commands in docs/running.md and docs/troubleshooting.md work as written.

Every command there that runs an example (``uvicorn --app-dir examples ...``,
``gunicorn --chdir examples ...``) is read out of the page, started on a free port,
and asked for a range: exact bytes, the zero-copy path in the debug header, and the
middleware's DEBUG line in the server's output (what troubleshooting.md promises).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from _servers import HOST, ROOT_DIR, free_port, get, python, run_server

pytestmark = pytest.mark.integration

PAGES = [ROOT_DIR / "docs" / "running.md", ROOT_DIR / "docs" / "troubleshooting.md"]
COMMAND = re.compile(r"^(?:uvicorn --app-dir examples|gunicorn --chdir examples) .*$", re.M)


def documented_commands() -> list[str]:
    found = {m[0] for page in PAGES for m in COMMAND.finditer(page.read_text())}
    return sorted(found)


def test_the_pages_have_commands() -> None:
    commands = documented_commands()
    assert any(c.startswith("uvicorn") for c in commands), commands
    assert any("ZeroCopyUvicornWorker" in c for c in commands), commands
    assert any("flask_app" in c for c in commands), commands


def _argv(command: str, port: int, tmp_path: Path) -> list[str]:
    words = shlex.split(command.replace(f"{HOST}:8000", f"{HOST}:{port}"))
    if words[0] == "uvicorn":
        words += ["--port", str(port)]
    else:  # gunicorn 27's control socket has one fixed default path
        words += ["--control-socket", str(tmp_path / "gunicorn.ctl")]
    return python("-m", *words)


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_serves_ranges_zero_copy(command: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"ZCMIDDLEWARE_EXAMPLE_DIR": str(tmp_path)}
    with run_server(
        _argv(command, port, tmp_path), port=port, env=env, cwd=ROOT_DIR, ready_timeout=60
    ) as server:
        response, body = get(port, "/download", {"Range": "bytes=1000-1999999"})
        log = server.log()
    # Read after the answer: workers write the file when they load the app, and the
    # socket accepts before they have.
    data = (tmp_path / "download.bin").read_bytes()
    assert response.status == 206, log
    assert body == data[1000:2000000]
    # zcmiddleware.uvicorn takes a lone range of a pathsend's file (PATHSEND_RANGE).
    expected = "file_wrapper" if "flask_app" in command else "pathsend"
    assert response.getheader("X-ZeroCopy-Path") == expected
    assert "DEBUG zcmiddleware." in log and "GET /download -> 206" in log, log
