"""The WSGI examples run as their docstrings say, and serve the right bytes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _servers import ROOT_DIR, free_port, get, run_example_demo, run_server

pytestmark = pytest.mark.integration


def test_flask_example_demo() -> None:
    output = run_example_demo("flask_app.py")
    statuses = [line.split("->")[1].split(",")[0].strip() for line in output.splitlines()]
    assert statuses == ["200", "206", "206"], output


def test_django_example_answers_a_range(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, str(ROOT_DIR / "examples" / "django_app.py"), "--port", str(port)]
    env = {"ZCMIDDLEWARE_EXAMPLE_DIR": str(tmp_path)}
    with run_server(argv, port=port, cwd=ROOT_DIR, env=env):
        # The example writes its file before it starts serving.
        data = (tmp_path / "download.bin").read_bytes()
        response, body = get(port, "/download", {"Range": "bytes=0-99"})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes 0-99/{len(data)}"
    assert body == data[:100]
    # The app's own header, kept.
    assert response.getheader("Content-Disposition") == 'inline; filename="download.bin"'
