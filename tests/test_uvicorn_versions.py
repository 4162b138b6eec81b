"""Which uvicorn ``zcmiddleware.uvicorn`` accepts: decided by the internals it uses.

Each case imports it in a fresh interpreter after changing what uvicorn reports or
has, the way a newer or older release would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTED = ">=0.36,<0.55"
IMPORT = (
    "try:\n    import zcmiddleware.uvicorn as m\n"
    "except ImportError as e:\n    print('ImportError:', e)\n"
    "else:\n    print('imported', m.AutoHTTPProtocol.__name__)\n"
)


def _import_after(prelude: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", prelude + "\n" + IMPORT],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def test_the_installed_uvicorn_imports_without_a_warning() -> None:
    result = _import_after("import warnings; warnings.simplefilter('error')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported"), result.stdout + result.stderr


@pytest.mark.parametrize("version", ["0.55.0", "1.2.3"])
def test_a_newer_uvicorn_with_the_same_internals_works_with_one_warning(version: str) -> None:
    result = _import_after(f"import uvicorn; uvicorn.__version__ = {version!r}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported"), result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "UntestedUvicornWarning" in line]
    assert len(warnings) == 1, result.stderr
    assert f"tested with uvicorn{TESTED}" in warnings[0]
    assert f"uvicorn {version} has the internals" in warnings[0]


@pytest.mark.parametrize("version", ["0.30.0", "0.35.0"])
def test_an_older_uvicorn_is_an_import_error_with_the_remedy(version: str) -> None:
    result = _import_after(f"import uvicorn; uvicorn.__version__ = {version!r}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImportError:"), result.stdout
    assert f"uvicorn {version} is installed" in result.stdout
    assert f'pip install "uvicorn{TESTED}"' in result.stdout
    assert "--http auto" in result.stdout


# (what a future uvicorn might drop, the name the message must give)
MISSING = {
    "h11 passthrough": (
        "import h11; del h11.Connection.send_with_data_passthrough",
        "h11.Connection.send_with_data_passthrough",
    ),
    "httptools cycle state": (
        "from uvicorn.protocols.http import httptools_impl as m\n"
        "class C:\n    def __init__(self): self.scope = None\n"
        "m.RequestResponseCycle = C",
        "httptools_impl.RequestResponseCycle.expected_content_length",
    ),
    "h11 protocol no longer sets self.cycle": (
        "from uvicorn.protocols.http import h11_impl as m\n"
        "m.H11Protocol.handle_events = lambda self: None",
        "h11_impl.H11Protocol.handle_events setting self.cycle",
    ),
    "h11 cycle class gone": (
        "from uvicorn.protocols.http import h11_impl as m\ndel m.RequestResponseCycle",
        "h11_impl.RequestResponseCycle",
    ),
}


@pytest.mark.parametrize("version", ["0.54.0", "0.60.0"])
@pytest.mark.parametrize("case", list(MISSING))
def test_a_missing_internal_is_an_import_error_naming_it(case: str, version: str) -> None:
    prelude, name = MISSING[case]
    result = _import_after(f"import uvicorn; uvicorn.__version__ = {version!r}\n{prelude}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImportError:"), result.stdout + result.stderr
    assert f"uvicorn {version}, which lacks" in result.stdout
    assert name in result.stdout
    assert f'pip install "uvicorn{TESTED}"' in result.stdout
    assert "--http auto" in result.stdout
