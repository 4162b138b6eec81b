"""The ASGI examples run as the README says, and check their own bytes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _servers import ROOT_DIR

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("example", ["starlette_app.py", "fastapi_app.py"])
def test_example_demo(example: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    result = subprocess.run(
        [sys.executable, str(ROOT_DIR / "examples" / example), "--demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all("bytes OK" in line for line in lines), result.stdout
