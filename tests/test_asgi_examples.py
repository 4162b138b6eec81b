"""The ASGI examples run as the README says, and check their own bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _servers import run_example_demo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("example", ["starlette_app.py", "fastapi_app.py", "django_asgi/run.py"])
def test_example_demo(example: str) -> None:
    output = run_example_demo(example)
    lines = output.splitlines()
    assert len(lines) == 3
    assert all("bytes OK" in line for line in lines), output


def test_example_says_on_stderr_when_it_cannot_use_the_protocol_classes() -> None:
    # A uvicorn without an internal the protocol classes need: the demo still checks
    # its bytes (by the fallback) and says why it is not zero-copy.
    root = Path(__file__).resolve().parent.parent
    code = (
        "import runpy, sys, h11\n"
        "del h11.Connection.send_with_data_passthrough\n"
        "sys.argv = ['starlette_app.py', '--demo']\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "examples")])},
        cwd=root / "examples",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "zcmiddleware.uvicorn not used" in result.stderr
    assert "send_with_data_passthrough" in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert all("bytes OK, via fallback" in line for line in lines), result.stdout
