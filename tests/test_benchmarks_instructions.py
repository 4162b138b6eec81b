"""The instruction-count benchmark keeps working: its fake servers serve the right
bytes by the path each case names, and a tiny callgrind run prints the table.

Asserts nothing about the counts themselves: CI does not judge performance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._inproc import CASES, write_file
from benchmarks.instructions import LAYOUTS

ROOT = Path(__file__).resolve().parent.parent

# What the last response of each case must have been: the delivery path it claims.
_EXPECTED = {
    "pathsend": "messages=http.response.start,http.response.pathsend",
    "zerocopysend": "http.response.start,http.response.zerocopysend,http.response.body",
    "neither": "messages=http.response.start,http.response.body",
    "gunicorn": "body=sendfile",
}


def _env(files: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["ZC_BENCH_FILES"] = str(files)
    return env


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_serves_the_file_by_its_path(name: str, tmp_path: Path) -> None:
    # The driver compares the first response's bytes with the file (exit 1 if not).
    write_file(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._inproc", name, "2", "--warmup=1"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = proc.stdout.strip().splitlines()[-1]
    case = CASES[name]
    status = "206" if case.ranged else "200"
    assert result.startswith(f"RESULT {name} status={status} "), result
    server = case.server
    if server == "zerocopysend-aborts":
        # zcmiddleware.uvicorn opens a pathsend's file before the start and takes a
        # range of it (PATHSEND_RANGE): whole files and single ranges go by path.
        server = "pathsend"
    elif case.ranged and server == "pathsend":
        server = "neither"  # pathsend sends only whole files: a range is read and sent
    assert result.endswith(_EXPECTED[server]), result


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_tiny_callgrind_run_prints_the_table_and_targets(tmp_path: Path) -> None:
    out = tmp_path / "counts.json"
    only = ("starlette-pathsend", "starlette-zc-pathsend")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "-n", "3", "--warmup", "1"]
        + [f"--only={o}" for o in only]
        + ["--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "| path | plain app | with the middleware | ratio |" in lines
    # The reference layers' table, here with the middleware's row alone.
    assert "| path | plain app | behind the layer | ratio |" in lines
    for label in ("server offers pathsend", "single range vs whole file, starlette-zc-pathsend"):
        row = next(line for line in lines if label in line)
        assert row.endswith("× |") and row.count(" M |") == 2, row
    targets = [line for line in lines if line.startswith(("met ", "NOT MET "))]
    assert any("ASGI, server offers pathsend" in t for t in targets), lines
    assert any("single range, starlette-zc-pathsend" in t for t in targets), lines
    counts = json.loads(out.read_text())
    assert set(counts) == {
        "starlette-pathsend",
        "starlette-zc-pathsend",
        "starlette-zc-pathsend-range",
    }
    assert all(c["per_request"] > 0 for c in counts.values()), counts
    # Every case in every memory layout, the median reported; the targets say the spread.
    for c in counts.values():
        per_layout = sorted(c["layouts"].values())
        assert [int(k) for k in c["layouts"]] == list(LAYOUTS), c
        assert c["per_request"] == per_layout[len(per_layout) // 2], c
    assert all(f"over {len(LAYOUTS)} layouts" in t for t in targets), targets
