"""Run the benchmarks: ``python -m benchmarks.run [--smoke] [--only NAME ...]``.

Each configuration is started on 127.0.0.1 (pinned to one core), its bytes are
checked, wrk (pinned to another core) drives every scenario for ``--duration``
seconds, and the server process tree's CPU time is read from /proc around each
run. Prints a table, PASS/MISS per target of issue 6 (never failing on a
timing), and writes JSON (and Markdown) under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks._configs import CONFIGS, SCENARIOS, Config, Scenario, select
from benchmarks._report import add_ratios, check_targets, markdown, target_lines, text_tables

RESULTS_DIR = h.BENCH_DIR / "results"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "zcmiddleware-bench-files"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="1 s per scenario, the smoke configs")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="configuration name or substring (repeatable, or comma-separated)",
    )
    p.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="scenario name (repeatable, or comma-separated); default all",
    )
    p.add_argument("--duration", type=float, help="seconds per scenario (default 8; smoke 1)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where the files are generated (default {DEFAULT_CACHE})",
    )
    p.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/<time>.json)")
    p.add_argument("--list", action="store_true", help="list configurations and scenarios")
    args = p.parse_args(argv)
    args.only = _split(args.only)
    args.scenario = _split(args.scenario)
    if args.duration is None:
        args.duration = 1.0 if args.smoke else 8.0
    return args


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v]


def list_all(files_dir: Path) -> None:
    env = h.server_env({}, files_dir)
    print("configurations:")
    for c in CONFIGS:
        why = h.check_available(c, env)
        state = "available" if why is None else f"unavailable: {why}"
        print(f"  {c.name:32} {state}{'' if c.default else ' (only with --only)'}")
    print("scenarios:")
    for s in SCENARIOS:
        print(f"  {s.name:16} {s.label}")


def run_config(
    config: Config,
    scenarios: list[Scenario],
    files: dict[str, h.BenchFile],
    *,
    files_dir: Path,
    workroot: Path,
    duration: float,
    smoke: bool,
    cores: tuple[str | None, str | None],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": config.name,
        "label": config.label,
        "baseline": config.baseline,
        "argv": list(config.argv),
        "status": "ok",
    }
    why = h.check_available(config, h.server_env(dict(config.env), files_dir))
    if why is not None:
        entry.update(status="unavailable", reason=why)
        print(f"[{config.name}] unavailable: {why}", flush=True)
        return entry
    print(f"[{config.name}] starting", flush=True)
    try:
        with h.run_server(
            config, files_dir=files_dir, workdir=workroot / config.name, cpu=cores[0]
        ) as server:
            entry["processes"] = len(h.tree_pids(server.pid))
            verification = h.verify(server.port, files, full_large=not smoke)
            entry["verification"] = {
                "bytes_ok": verification.bytes_ok,
                "supports_range": verification.supports_range,
                "supports_multipart": verification.supports_multipart,
                "checks": [asdict(c) for c in verification.checks],
            }
            for c in verification.checks:
                print(
                    f"[{config.name}]   {'ok ' if c.ok else 'BAD'} {c.name}: {c.status} {c.detail}",
                    flush=True,
                )
            if not verification.bytes_ok:
                entry.update(status="wrong-bytes", reason="byte check failed; not benchmarked")
                return entry
            h.settle(server.pid)
            entry["scenarios"] = {}
            for sc in scenarios:
                entry["scenarios"][sc.name] = run_scenario(
                    server, sc, verification, duration=duration, cores=cores, name=config.name
                )
    except RuntimeError as exc:
        entry.update(status="failed", reason=str(exc)[-1500:])
        print(f"[{config.name}] failed: {exc}", flush=True)
    entry["server_log"] = h.log_summary(workroot / config.name)
    if entry["server_log"]["errors"]:
        print(
            f"[{config.name}] server logged {entry['server_log']['errors']} error line(s); "
            f"last: {entry['server_log']['tail'][-1:]}",
            flush=True,
        )
    return entry


def run_scenario(
    server: h.Server,
    sc: Scenario,
    verification: h.Verification,
    *,
    duration: float,
    cores: tuple[str | None, str | None],
    name: str,
) -> dict[str, Any]:
    if sc.needs == "range" and not verification.supports_range:
        reason = "server answers Range with 200 (no ranges)"
        print(f"[{name}]   {sc.name}: skipped, {reason}", flush=True)
        return {"status": "skipped", "reason": reason}
    if sc.needs == "multipart" and not verification.supports_multipart:
        reason = "server does not answer multiple ranges with multipart/byteranges"
        print(f"[{name}]   {sc.name}: skipped, {reason}", flush=True)
        return {"status": "skipped", "reason": reason}
    try:
        r = h.run_load(server, sc, duration=duration, cpu=cores[1])
        if r.bytes == 0:  # seen once on a saturated machine: try once more
            print(f"[{name}]   {sc.name}: no bytes moved; retrying once", flush=True)
            r = h.run_load(server, sc, duration=duration, cpu=cores[1])
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"[{name}]   {sc.name}: failed: {exc}", flush=True)
        return {"status": "failed", "reason": str(exc)[-1500:]}
    if r.bytes == 0:
        reason = "no response bytes during the run (server hung or starved of CPU)"
        print(f"[{name}]   {sc.name}: failed, {reason}", flush=True)
        return {"status": "failed", "reason": reason, **r.to_json(cores)}
    out = {"status": "ok", **r.to_json(cores)}
    errors = sum(r.errors.values())
    print(
        f"[{name}]   {sc.name}: {r.mb_per_s:9.1f} MB/s {r.req_per_s:9.1f} req/s "
        f"{r.cpu_s_per_gb:7.3f} CPU-s/GB  srv {out['server_cpu_util']:.2f} "
        f"wrk {out['client_cpu_util']:.2f} other {out.get('server_core_other', '-')}"
        f"/{out.get('client_core_other', '-')}"
        + (f"  errors {r.errors}" if errors else "")
        + ("" if r.settled else "  (server still busy after the run)"),
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_all(args.cache_dir)
        return 0
    if h.find_executable("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    selection = select(args.only, args.scenario, args.smoke)
    started = time.time()
    cores = h.cores()
    print(f"files in {args.cache_dir}", flush=True)
    files = h.prepare_files(args.cache_dir)
    results: dict[str, Any] = {
        "meta": {
            "command": " ".join(["python", "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "smoke": args.smoke,
            "duration_per_scenario_s": args.duration,
            "server_core": cores[0],
            "client_core": cores[1],
            "machine": h.machine_info(),
            "git_commit": h.git_commit(),
            "units": "MB = 10^6 bytes, GB = 10^9 bytes; bytes as counted by wrk (incl. headers)",
            "other_test_runs_at_start": h.other_test_runs(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "scenarios": [asdict(s) for s in selection.scenarios],
        "configs": [],
    }
    with tempfile.TemporaryDirectory(prefix="zcbench-") as tmp:
        for config in selection.configs:
            results["configs"].append(
                run_config(
                    config,
                    selection.scenarios,
                    files,
                    files_dir=args.cache_dir,
                    workroot=Path(tmp),
                    duration=args.duration,
                    smoke=args.smoke,
                    cores=cores,
                )
            )
    results["meta"]["finished_after_s"] = round(time.time() - started, 1)
    results["meta"]["other_test_runs_at_end"] = h.other_test_runs()
    add_ratios(results)
    results["targets"] = check_targets(results)

    print(text_tables(results))
    print("\ntargets (issue 6; a MISS never fails the run):")
    print(target_lines(results["targets"]))
    if results["meta"]["other_test_runs_at_start"] or results["meta"]["other_test_runs_at_end"]:
        print("\nNOTE: test runs were active on the machine; numbers may be skewed.")

    out = args.out or RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S.json", time.gmtime(started))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(markdown(results))
    print(f"\nwrote {out} and {out.with_suffix('.md')} ({results['meta']['finished_after_s']} s)")
    wrong = [c["name"] for c in results["configs"] if c["status"] == "wrong-bytes"]
    if wrong:
        print(f"WRONG BYTES from: {', '.join(wrong)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
