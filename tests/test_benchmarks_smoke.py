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


def test_interleaved_pairs_report_a_median_ratio_with_its_spread(tmp_path: Path) -> None:
    out = tmp_path / "pairs.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.pairs", "--pairs", "3", "--duration", "1"]
        + ["--only", "granian-4k", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # A B A B A B: each pair's line printed as it was measured, in order.
    pair_lines = [line for line in proc.stdout.splitlines() if line.startswith("[granian-4k] pair")]
    assert [line.split()[2] for line in pair_lines] == ["1/3:", "2/3:", "3/3:"], proc.stdout
    (ratio,) = json.loads(out.read_text())["ratios"]
    assert ratio["status"] == "ok", ratio
    assert len(ratio["config_values"]) == len(ratio["reference_values"]) == 3, ratio
    assert ratio["low"] <= ratio["median"] <= ratio["high"], ratio
    assert isinstance(ratio["met"], bool)
    # Every pair has its own two server processes (a process's layout is its bias).
    pids = [pid for pair in ratio["pids"] for pid in pair]
    assert len(pids) == 6 and len(set(pids)) == 6, ratio["pids"]
    assert "| ratio | pairs | median | spread (min-max) |" in proc.stdout


def test_a_reference_ratio_is_reported_without_a_verdict() -> None:
    from benchmarks.pairs import RATIOS, PairResult, report

    (reference,) = [r for r in RATIOS if r.key == "granian-holding-4k"]
    assert reference.threshold is None
    result = PairResult(reference, config_values=(97.0, 98.0, 96.0))
    result.reference_values = (100.0, 100.0, 100.0)
    summary = result.summary()
    assert "met" not in summary and summary["median"] == 0.97, summary
    (row,) = [line for line in report([result]).splitlines() if reference.text in line]
    assert row.split(" | ")[1:6] == ["3", "0.97", "0.96-0.98", "–", "reference"], row
