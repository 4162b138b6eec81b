"""PNG charts from a results JSON: ``python -m benchmarks.charts [RESULTS.json] [--out DIR]``.

Needs the ``bench`` extra (matplotlib). Writes ``benchmarks-throughput.png``
(MB/s for the large-file scenarios, req/s for the small ones) and
``benchmarks-cpu.png`` (server CPU seconds per GB served; per request for the
small files).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python benchmarks/charts.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from benchmarks.run import RESULTS_DIR  # noqa: E402

SMALL = {"64k-32c", "4k-32c"}


_LEGEND = {
    "nginx (reference)": "#555555",
    "middleware on zcmiddleware.uvicorn": "#1b7837",
    "middleware on a stock server": "#5aae61",
    "plain app on zcmiddleware.uvicorn": "#a6dba0",
    "plain app": "#c2a5cf",
}


def _color(name: str) -> str:
    middleware, protocol = "-zc-" in name, "zcuvicorn" in name
    if name == "nginx":
        return _LEGEND["nginx (reference)"]
    if middleware and protocol:
        return _LEGEND["middleware on zcmiddleware.uvicorn"]
    if middleware:
        return _LEGEND["middleware on a stock server"]
    if protocol:
        return _LEGEND["plain app on zcmiddleware.uvicorn"]
    return _LEGEND["plain app"]


def _bars(ax: Axes, names: list[str], values: list[float], title: str, xlabel: str) -> None:
    y = list(range(len(names)))
    ax.barh(y, values, color=[_color(n) for n in names])
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    for yi, v in zip(y, values, strict=True):
        ax.text(v, yi, f" {v:,.0f}" if v >= 10 else f" {v:.2f}", va="center", fontsize=6)
    if values:
        ax.set_xlim(0, max(values) * 1.15)


def _series(results: dict[str, Any], scenario: str, key: str) -> tuple[list[str], list[float]]:
    names, values = [], []
    for c in results["configs"]:
        s = c.get("scenarios", {}).get(scenario, {})
        if c["status"] == "ok" and s.get("status") == "ok" and s.get(key) is not None:
            names.append(c["name"])
            values.append(float(s[key]))
    return names, values


def _figure(results: dict[str, Any], kind: str, path: Path) -> None:
    scenarios = results["scenarios"]
    cols = 2
    rows = (len(scenarios) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.2 * rows), squeeze=False)
    for ax, sc in zip(axes.flat, scenarios, strict=False):
        name = sc["name"]
        if kind == "throughput":
            key, unit = ("req_per_s", "requests/s") if name in SMALL else ("mb_per_s", "MB/s")
        elif name in SMALL:
            key, unit = "cpu_us_per_req", "server CPU µs per request"
        else:
            key, unit = "cpu_s_per_gb", "server CPU s per GB"
        names, values = _series(results, name, key)
        _bars(ax, names, values, sc["label"], unit)
    for ax in list(axes.flat)[len(scenarios) :]:
        ax.set_visible(False)
    meta = results["meta"]
    title = (
        "throughput (higher is better)" if kind == "throughput" else "CPU per GB (lower is better)"
    )
    fig.suptitle(
        f"zcmiddleware benchmarks, {title}: {meta['machine']['cpu']}, "
        f"{meta['machine']['cpus']} cores, server on core {meta['server_core']}, wrk on core "
        f"{meta['client_core']}, {meta['duration_per_scenario_s']:g} s per scenario",
        fontsize=9,
    )
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in _LEGEND.values()]
    fig.legend(handles, list(_LEGEND), loc="lower center", ncol=len(_LEGEND), fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.charts", description=__doc__)
    p.add_argument("results", nargs="?", type=Path, help="results JSON (default: newest)")
    p.add_argument("--out", type=Path, default=Path("docs"), help="output directory")
    args = p.parse_args(argv)
    path = args.results
    if path is None:
        candidates = sorted(RESULTS_DIR.glob("*.json"), key=lambda q: q.stat().st_mtime)
        if not candidates:
            print(f"no results in {RESULTS_DIR}; run python -m benchmarks.run first")
            return 2
        path = candidates[-1]
    results = json.loads(path.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in ("throughput", "cpu"):
        target = args.out / f"benchmarks-{kind}.png"
        _figure(results, kind, target)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
