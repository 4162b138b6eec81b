"""The ASGI examples run as the README says, and check their own bytes."""

from __future__ import annotations

import pytest
from _servers import run_example_demo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("example", ["starlette_app.py", "fastapi_app.py", "django_asgi/run.py"])
def test_example_demo(example: str) -> None:
    output = run_example_demo(example)
    lines = output.splitlines()
    assert len(lines) == 3
    assert all("bytes OK" in line for line in lines), output
