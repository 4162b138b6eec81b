"""Ratios, targets and tables from a results document (the JSON the run writes)."""

from __future__ import annotations

import math
from typing import Any

from benchmarks._configs import TARGETS

Results = dict[str, Any]


def metric(results: Results, config: str, scenario: str, name: str) -> float | None:
    for c in results["configs"]:
        if c["name"] == config:
            s = c.get("scenarios", {}).get(scenario, {})
            if s.get("status") == "ok":
                value = s.get(name)
                return float(value) if value is not None else None
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isinf(a) or math.isinf(b):
        return None
    return a / b


def add_ratios(results: Results) -> None:
    """Put ×nginx and ×plain (the config's baseline) next to every measurement."""
    for c in results["configs"]:
        for name, s in c.get("scenarios", {}).items():
            if s.get("status") != "ok":
                continue
            mbs, cpu = s["mb_per_s"], s["cpu_s_per_gb"]
            nginx_mbs = metric(results, "nginx", name, "mb_per_s")
            nginx_cpu = metric(results, "nginx", name, "cpu_s_per_gb")
            s["x_nginx"] = _round(_ratio(mbs, nginx_mbs))
            s["cpu_x_nginx"] = _round(_ratio(cpu, nginx_cpu))
            base = c.get("baseline")
            s["x_plain"] = _round(_ratio(mbs, metric(results, base, name, "mb_per_s")))
            s["cpu_x_plain"] = _round(_ratio(cpu, metric(results, base, name, "cpu_s_per_gb")))


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def check_targets(results: Results) -> list[dict[str, Any]]:
    """PASS/MISS for every target of the issue whose inputs were measured."""
    out = []
    for t in TARGETS:
        for scenario in t.scenarios:
            a = metric(results, t.config, scenario, t.metric)
            b = metric(results, t.reference, scenario, t.metric)
            ratio = _ratio(a, b)
            if ratio is None:
                verdict = "n/a"
            elif t.op == ">=":
                verdict = "PASS" if ratio >= t.threshold else "MISS"
            else:
                verdict = "PASS" if ratio <= t.threshold else "MISS"
            out.append(
                {
                    "key": t.key,
                    "text": t.text,
                    "config": t.config,
                    "reference": t.reference,
                    "scenario": scenario,
                    "metric": t.metric,
                    "op": t.op,
                    "threshold": t.threshold,
                    "ratio": _round(ratio),
                    "result": verdict,
                }
            )
    return out


def _fmt(x: Any, spec: str = ".0f") -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return format(x, spec)


_COLUMNS = (
    ("MB/s", "mb_per_s", ".0f"),
    ("req/s", "req_per_s", ".0f"),
    ("CPU s/GB", "cpu_s_per_gb", ".2f"),
    ("2-core s/GB", "machine_cpu_s_per_gb", ".2f"),
    # The server tree without nginx: the Python worker behind nginx (docs/deployment.md).
    ("py s/GB", "worker_cpu_s_per_gb", ".3f"),
    ("CPU µs/req", "cpu_us_per_req", ".0f"),
    ("×nginx", "x_nginx", ".2f"),
    ("×plain", "x_plain", ".2f"),
    ("CPU×nginx", "cpu_x_nginx", ".2f"),
    ("srv util", "server_cpu_util", ".2f"),
    ("wrk util", "client_cpu_util", ".2f"),
    ("other@srv", "server_core_other", ".2f"),
    ("other@wrk", "client_core_other", ".2f"),
    ("peak RSS MiB", "peak_rss_mib", ".0f"),
)


def bound(s: dict[str, Any]) -> str:
    """Which side ran out of CPU: the server ("srv") or wrk ("wrk"). When wrk is
    the bottleneck, throughput ratios understate the difference between servers."""
    out = []
    if s.get("server_cpu_util", 0) >= 0.9:
        out.append("srv")
    if s.get("client_cpu_util", 0) >= 0.9:
        out.append("wrk")
    return "+".join(out)


def rows(results: Results, scenario: str) -> list[list[str]]:
    out = []
    for c in results["configs"]:
        s = c.get("scenarios", {}).get(scenario)
        if c["status"] != "ok" or s is None:
            continue
        if s.get("status") != "ok":
            out.append([c["name"], f"{s.get('status')}: {s.get('reason', '')}"])
            continue
        cells = [c["name"]] + [_fmt(s.get(key), spec) for _, key, spec in _COLUMNS]
        cells.append(bound(s))
        errors = sum(s.get("errors", {}).values())
        cells.append(str(errors) if errors else "")
        out.append(cells)
    return out


def text_tables(results: Results) -> str:
    lines = []
    header = ["config"] + [h for h, _, _ in _COLUMNS] + ["bound", "errors"]
    for sc in results["scenarios"]:
        body = rows(results, sc["name"])
        if not body:
            continue
        lines.append(f"\n== {sc['name']}: {sc['label']} ==")
        full = [r for r in body if len(r) == len(header)]
        widths = [max(len(r[i]) for r in [header, *full]) for i in range(len(header))]
        widths[0] = max(widths[0], *(len(r[0]) for r in body))
        lines.append(
            "  ".join(
                h.rjust(w) if i else h.ljust(w)
                for i, (h, w) in enumerate(zip(header, widths, strict=True))
            )
        )
        for r in body:
            if len(r) != len(header):
                lines.append(f"{r[0].ljust(widths[0])}  {r[1]}")
                continue
            lines.append(
                "  ".join(
                    v.rjust(w) if i else v.ljust(w)
                    for i, (v, w) in enumerate(zip(r, widths, strict=True))
                )
            )
    unavailable = [c for c in results["configs"] if c["status"] != "ok"]
    if unavailable:
        lines.append("")
        for c in unavailable:
            lines.append(f"{c['name']}: {c['status']}: {c.get('reason', '')}")
    return "\n".join(lines)


def target_lines(targets: list[dict[str, Any]]) -> str:
    lines = []
    for t in targets:
        ratio = "–" if t["ratio"] is None else f"{t['ratio']:.2f}"
        lines.append(
            f"{t['result']:4}  {t['config']} / {t['reference']} [{t['scenario']}, "
            f"{t['metric']}] = {ratio} (target {t['op']} {t['threshold']}): {t['text']}"
        )
    return "\n".join(lines)


def markdown(results: Results) -> str:
    """The tables and targets as Markdown (pasted into docs/benchmarks.md)."""
    out = []
    header = ["configuration"] + [h for h, _, _ in _COLUMNS] + ["bound", "errors"]
    for sc in results["scenarios"]:
        body = rows(results, sc["name"])
        if not body:
            continue
        out.append(f"\n#### {sc['name']}: {sc['label']}\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for r in body:
            r = r if len(r) == len(header) else [r[0], r[1]] + [""] * (len(header) - 2)
            out.append("| " + " | ".join(r) + " |")
    if results.get("targets"):
        out.append("\n#### Targets\n")
        out.append("| result | configuration | vs | scenario | metric | ratio | target |")
        out.append("|---|---|---|---|---|---|---|")
        for t in results["targets"]:
            ratio = "–" if t["ratio"] is None else f"{t['ratio']:.2f}"
            out.append(
                f"| {t['result']} | {t['config']} | {t['reference']} | {t['scenario']} | "
                f"{t['metric']} | {ratio} | {t['op']} {t['threshold']} |"
            )
    return "\n".join(out) + "\n"
