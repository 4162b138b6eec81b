"""Side-by-side ratios robust to a shared machine: ``python -m benchmarks.pairs``.

For each ratio of issue 13 both configurations are driven in turn, A B, B A, ...,
``--pairs`` times (at least 3), with ``--duration`` seconds of wrk each, on the same
core. Noise from the rest of the machine comes and goes over seconds to minutes: a
ratio taken within one pair sees nearly the same noise on both sides. Each pair
starts both servers afresh (and checks their bytes): one process's memory layout
moves its throughput by a few per cent for as long as it runs, so pairs of the same
two processes would all share that bias. The median of the per-pair ratios is
reported with its spread (min-max), and every target as met or not met (never
failing the run; exit 1 only if a server sent wrong bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/pairs.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _harness as h
from benchmarks._configs import CONFIGS, SCENARIOS, Config

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "zcmiddleware-bench-files"
_BY_NAME = {c.name: c for c in CONFIGS}
_SCENARIOS = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class Ratio:
    """``metric(config) / metric(reference)`` on ``scenario``, target ``>= threshold``
    (None: a reference measurement, with no target of its own)."""

    key: str
    text: str
    config: str
    reference: str
    scenario: str
    metric: str  # an attribute of h.LoadResult: "req_per_s" or "mb_per_s"
    threshold: float | None


#: Issue 13's wrk targets ("stay where they are": issue 6's thresholds against nginx).
RATIOS = (
    *(
        Ratio(
            f"granian-{size}",
            f"{size} req/s, middleware on granian >= 0.95x plain granian",
            "starlette-zc-granian",
            "starlette-granian",
            f"{size}-32c",
            "req_per_s",
            0.95,
        )
        for size in ("4k", "64k")
    ),
    # What the granian ratios' 0.95 leaves to a middleware's own work: the cheapest
    # layers on the same server (benchmarks/apps/starlette_layers.py), no target.
    Ratio(
        "granian-layer-4k",
        "4k req/s, a pass-through ASGI layer on granian (reference)",
        "starlette-passthrough-granian",
        "starlette-granian",
        "4k-32c",
        "req_per_s",
        None,
    ),
    Ratio(
        "granian-holding-4k",
        "4k req/s, a layer holding the start on granian (reference)",
        "starlette-holding-granian",
        "starlette-granian",
        "4k-32c",
        "req_per_s",
        None,
    ),
    Ratio(
        "zcuvicorn-4k",
        "4k req/s, middleware on zcmiddleware.uvicorn >= 1.5x plain Starlette, stock uvicorn",
        "starlette-zc-zcuvicorn-uvloop",
        "starlette-uvicorn",
        "4k-32c",
        "req_per_s",
        1.5,
    ),
    Ratio(
        "zcuvicorn-1g",
        "1 GiB MB/s, middleware on zcmiddleware.uvicorn >= 0.9x nginx",
        "starlette-zc-zcuvicorn-uvloop",
        "nginx",
        "1g-1c",
        "mb_per_s",
        0.9,
    ),
    Ratio(
        "zcuvicorn-range",
        "random 1 MiB ranges MB/s, middleware on zcmiddleware.uvicorn >= 0.8x nginx",
        "starlette-zc-zcuvicorn-uvloop",
        "nginx",
        "range1m-8c",
        "mb_per_s",
        0.8,
    ),
    *(
        Ratio(
            f"{app}-4k",
            f"4k req/s, {app} + middleware on gunicorn >= 0.95x plain {app}",
            f"{app}-zc-gunicorn",
            f"{app}-gunicorn",
            "4k-32c",
            "req_per_s",
            0.95,
        )
        for app in ("flask", "django")
    ),
)


@dataclass
class PairResult:
    ratio: Ratio
    status: str = "ok"
    reason: str = ""
    config_values: tuple[float, ...] = ()
    reference_values: tuple[float, ...] = ()
    #: Server CPU per request of each run: less sensitive to the machine's noise than
    #: throughput (a server starved of CPU is slower, not costlier per request).
    config_cpu: tuple[float, ...] = ()
    reference_cpu: tuple[float, ...] = ()
    #: Each pair's two server processes (config, reference): fresh for every pair.
    pids: tuple[tuple[int, int], ...] = ()

    @property
    def ratios(self) -> list[float]:
        # A failed round may leave one side a value longer: only whole pairs count.
        pairs = zip(self.config_values, self.reference_values, strict=False)
        return [a / b for a, b in pairs if b]

    def summary(self) -> dict[str, Any]:
        r = self.ratios
        out: dict[str, Any] = {**asdict(self.ratio), "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if r:
            out.update(
                config_values=[round(v, 1) for v in self.config_values],
                reference_values=[round(v, 1) for v in self.reference_values],
                pids=[list(p) for p in self.pids],
                ratios=[round(x, 3) for x in r],
                median=round(statistics.median(r), 3),
                low=round(min(r), 3),
                high=round(max(r), 3),
            )
            if self.ratio.threshold is not None:
                out["met"] = statistics.median(r) >= self.ratio.threshold
            cpu = [a / b for a, b in zip(self.config_cpu, self.reference_cpu, strict=False) if b]
            if cpu:
                out["cpu_per_request_median"] = round(statistics.median(cpu), 3)
        return out


def _load(server: h.Server, ratio: Ratio, duration: float, cpu: str | None) -> h.LoadResult:
    result = h.run_load(server, _SCENARIOS[ratio.scenario], duration=duration, cpu=cpu)
    if result.bytes == 0 or sum(result.errors.values()):
        raise RuntimeError(f"wrk saw no bytes or errors: {result.errors}")
    return result


def run_pair(
    ratio: Ratio,
    files: dict[str, h.BenchFile],
    *,
    pairs: int,
    duration: float,
    files_dir: Path,
    workroot: Path,
) -> PairResult:
    out = PairResult(ratio)
    configs: list[Config] = [_BY_NAME[ratio.config], _BY_NAME[ratio.reference]]
    for config in configs:
        why = h.check_available(config, h.server_env(dict(config.env), files_dir))
        if why is not None:
            out.status, out.reason = "unavailable", f"{config.name}: {why}"
            return out
    server_core, client_core = h.cores()
    runs: list[list[h.LoadResult]] = [[], []]
    try:
        for i in range(pairs):
            # Both servers afresh for every pair: a server process keeps its memory
            # layout (hash seed, addresses) for its life, and that alone moves its
            # throughput by a few per cent. The sides take turns going first.
            with contextlib.ExitStack() as stack:
                servers = []
                for config in configs:
                    workdir = workroot / f"{config.name}-{i + 1}"
                    server = stack.enter_context(
                        h.run_server(config, files_dir=files_dir, workdir=workdir, cpu=server_core)
                    )
                    if not h.verify(server.port, files, full_large=False).bytes_ok:
                        out.status, out.reason = "wrong-bytes", f"{config.name} sent wrong bytes"
                        return out
                    servers.append(server)
                for server in servers:
                    h.settle(server.pid)
                for side in (0, 1) if i % 2 == 0 else (1, 0):
                    runs[side].append(_load(servers[side], ratio, duration, client_core))
                out.pids += ((servers[0].pid, servers[1].pid),)
            a, b = (getattr(r[-1], ratio.metric) for r in runs)
            print(
                f"[{ratio.key}] pair {i + 1}/{pairs}: {ratio.config} {a:.1f}, "
                f"{ratio.reference} {b:.1f} {ratio.metric} -> {a / b if b else 0:.3f}",
                flush=True,
            )
    except (RuntimeError, OSError) as exc:
        out.status, out.reason = "failed", str(exc)[-1000:]
    out.config_values, out.reference_values = (
        tuple(float(getattr(r, ratio.metric)) for r in side) for side in runs
    )
    out.config_cpu, out.reference_cpu = (tuple(r.cpu_us_per_req for r in side) for side in runs)
    return out


def report(results: list[PairResult]) -> str:
    lines = [
        "| ratio | pairs | median | spread (min-max) | target | result | CPU/request ratio |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for r in results:
        s = r.summary()
        target = "–" if r.ratio.threshold is None else f">= {r.ratio.threshold}"
        if "median" not in s:
            lines.append(f"| {r.ratio.text} | 0 | – | – | {target} | {r.status} | – |")
            continue
        verdict = "reference" if "met" not in s else "met" if s["met"] else "NOT MET"
        lines.append(
            f"| {r.ratio.text} | {len(s['ratios'])} | {s['median']:.2f} | "
            f"{s['low']:.2f}-{s['high']:.2f} | {target} | {verdict} | "
            f"{s.get('cpu_per_request_median', '–')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pairs", description=__doc__)
    p.add_argument("--pairs", type=int, default=5, help="A B rounds per ratio (>= 3; default 5)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    p.add_argument("--only", action="append", help="ratio keys containing this (repeatable)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--out", type=Path, help="write the per-pair values as JSON here")
    args = p.parse_args(argv)
    if args.pairs < 3:
        p.error("--pairs must be at least 3: a median of fewer says nothing about the spread")
    if h.find_executable("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    chosen = [r for r in RATIOS if not args.only or any(o in r.key for o in args.only)]
    files = h.prepare_files(args.cache_dir)
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="zcpairs-") as tmp:
        for ratio in chosen:
            results.append(
                run_pair(
                    ratio,
                    files,
                    pairs=args.pairs,
                    duration=args.duration,
                    files_dir=args.cache_dir,
                    workroot=Path(tmp) / ratio.key,
                )
            )
    print()
    print(report(results))
    for r in results:
        if r.status != "ok":
            print(f"{r.ratio.key}: {r.status}: {r.reason}")
    if args.out:
        doc = {
            "meta": {
                "command": " ".join(["python", "-m", "benchmarks.pairs", *(argv or sys.argv[1:])]),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "pairs": args.pairs,
                "duration_s": args.duration,
                "git_commit": h.git_commit(),
                "other_test_runs": h.other_test_runs(),
            },
            "ratios": [r.summary() for r in results],
        }
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if any(r.status == "wrong-bytes" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
