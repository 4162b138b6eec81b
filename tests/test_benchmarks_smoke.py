"""The benchmark harness keeps working: a smoke run on two configurations.

Asserts only that the run produced results and that the bytes served were
right -- never a timing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("starlette-uvicorn", "starlette-zc-zcuvicorn-uvloop")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("wrk") is None, reason="wrk is not installed (Debian: apt-get install wrk)"
    ),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]


def test_smoke_run_serves_correct_bytes_and_records_results(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--smoke",
            "--only",
            ",".join(CONFIGS),
            "--out",
            str(out),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    by_name = {c["name"]: c for c in results["configs"]}
    assert set(by_name) == set(CONFIGS)
    assert by_name["starlette-uvicorn"]["status"] == "ok", by_name["starlette-uvicorn"]
    for config in results["configs"]:
        if config["status"] == "unavailable":  # zcmiddleware.uvicorn missing
            continue
        assert config["status"] == "ok", config
        verification = config["verification"]
        assert verification["bytes_ok"], verification["checks"]
        assert verification["supports_range"], verification["checks"]
        scenarios = config["scenarios"]
        assert set(scenarios) == {s["name"] for s in results["scenarios"]}
        for name, scenario in scenarios.items():
            assert scenario["status"] in ("ok", "skipped"), (config["name"], name, scenario)
            if scenario["status"] == "ok":
                assert scenario["bytes"] > 0, (config["name"], name, scenario)
                assert scenario["errors"]["status"] == 0, (config["name"], name, scenario)
    assert results["targets"], "targets were not evaluated"
    assert (tmp_path / "smoke.md").read_text().count("|") > 0
