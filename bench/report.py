#!/usr/bin/env python3
"""summary.md and chart.png from a bench.json (bench/run.py calls `write`; it also runs on its own):

.venv/bin/python bench/report.py results/bench/<timestamp>/bench.json
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

VARIANTS = ("interactive", "one_round_trip", "service")
NAMES = {"interactive": "interactive", "one_round_trip": "one round trip", "service": "service"}
SCENARIOS = ("uniform", "hot10", "hot1", "replay", "bulk")
TITLES = {
    "uniform": "uniform (10,000 accounts)",
    "hot10": "10 hot accounts (one side always among 10)",
    "hot1": "1 hot account (one side always the same)",
    "replay": "idempotent replays (uniform, 20% of requests repeat an earlier key and body)",
    "bulk": "bulk API (uniform, POST /v1/transactions/batch with 100 transfers a request, all or nothing)",
}
COLORS = {"interactive": "#9e9e9e", "one_round_trip": "#3f6fb5", "service": "#e07b24"}
MATPLOTLIB = "matplotlib==3.11.2"


def baseline_scenario(scenario: str) -> str:
    """The replay mix and the bulk API are compared with the uniform baseline (one transfer per transaction:
    pgbench has no replays, and the bulk goal is stated against the interactive baseline)."""
    return "uniform" if scenario in {"replay", "bulk"} else scenario


def load_key(run: dict[str, Any]) -> str:
    return f"c{run['clients']}" if run["mode"] == "closed" else "rate"


def stats(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def aggregate(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(variant, scenario, load) -> medians with min-max over the valid repeats, and counts."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["variant"], run["scenario"], load_key(run))].append(run)
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, members in groups.items():
        valid = [r for r in members if r["valid"]]
        out[key] = {
            "runs": len(members),
            "valid": len(valid),
            "flagged": sum(1 for r in members if r["flags"]),
            "rate": members[0].get("rate"),
            "clients": members[0]["clients"],
            "answers_per_s": stats([r["answers_per_s"] for r in valid]),
            "transfers_per_s": stats([r["transfers_per_s"] for r in valid]),
            "p50_ms": stats([r["p50_ms"] for r in valid]),
            "p95_ms": stats([r["p95_ms"] for r in valid]),
            "p99_ms": stats([r["p99_ms"] for r in valid]),
            "cpu_pg": stats([r["cpu"]["postgres_ms_per_transfer"] for r in valid]),
            "cpu_service": stats([r["cpu"]["service_ms_per_transfer"] for r in valid]),
            "cpu_generator": stats([r["cpu"]["generator_ms_per_transfer"] for r in valid]),
            "busy_pct": stats([r["cpu"]["busy_pct"] for r in valid]),
            "foreign_pct": stats([r["cpu"]["foreign_pct"] for r in members]),
            "errors": sum(r["errors"] for r in members),
            "timeouts": sum(r["timeouts"] for r in members),
            "retries": sum(r["retries"] or 0 for r in members),
            "dropped": sum(r.get("dropped") or 0 for r in members),
        }
    return out


def ratios(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float] | None]:
    """(scenario, load, baseline variant) -> service throughput / baseline throughput, computed per repeat
    (the runs of one repeat ran next to each other) and summarised as median with min-max."""
    by_rep: dict[tuple[str, str, str, int], float] = {}
    for run in runs:
        if run["valid"] and run["mode"] == "closed" and run["answers_per_s"]:
            by_rep[(run["variant"], run["scenario"], load_key(run), run["rep"])] = run["answers_per_s"]
    out: dict[tuple[str, str, str], dict[str, float] | None] = {}
    for (variant, scenario, load, rep), value in by_rep.items():
        if variant != "service":
            continue
        for baseline in ("interactive", "one_round_trip"):
            base = by_rep.get((baseline, baseline_scenario(scenario), load, rep))
            if base:
                out.setdefault((scenario, load, baseline), {"values": []})["values"].append(value / base)  # type: ignore[union-attr,index]
    return {key: stats(entry["values"]) for key, entry in out.items()}  # type: ignore[index]


def tables(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The aggregates and ratios as JSON-friendly rows (bench.json keeps them beside the runs)."""
    return {
        "aggregates": [
            {"variant": v, "scenario": s, "load": load, **group}
            for (v, s, load), group in sorted(aggregate(runs).items())
        ],
        "ratios": [
            {
                "scenario": s,
                "load": load,
                "service_over": baseline,
                "baseline_scenario": baseline_scenario(s),
                **(r or {}),
            }
            for (s, load, baseline), r in sorted(ratios(runs).items())
        ],
    }


def fmt(s: dict[str, float] | None, digits: int = 0, *, spread: bool = True) -> str:
    if not s:
        return "–"
    f = f"{{:,.{digits}f}}"
    text = f.format(s["median"])
    if spread and s["n"] > 1:
        text += f" ({f.format(s['min'])}–{f.format(s['max'])})"
    return text


def fmt_latency(group: dict[str, Any] | None) -> str:
    if not group or not group["p99_ms"]:
        return "–"
    return " / ".join(fmt(group[k], 1, spread=False) for k in ("p50_ms", "p95_ms")) + " / " + fmt(group["p99_ms"], 1)


def fmt_ratio(s: dict[str, float] | None) -> str:
    if not s:
        return "–"
    text = f"{s['median']:.2f}"
    if s["n"] > 1:
        text += f" ({s['min']:.2f}–{s['max']:.2f})"
    return text


def loads(agg: dict[tuple[str, str, str], dict[str, Any]], scenario: str) -> list[str]:
    keys = {load for (v, s, load) in agg if s in (scenario, baseline_scenario(scenario))}
    closed = sorted((k for k in keys if k != "rate"), key=lambda k: int(k[1:]))
    return closed + (["rate"] if "rate" in keys else [])


def summary_markdown(data: dict[str, Any]) -> str:
    meta, runs = data["meta"], data["runs"]
    agg, rat = aggregate(runs), ratios(runs)
    pg = meta.get("postgres", {})
    settings = pg.get("settings", {})
    invalid = [r for r in runs if not r["valid"]]
    flagged = [r for r in runs if r["flags"]]
    profile = meta.get("profile", {})
    lines = [
        f"# Ledger benchmark, {meta.get('started', '?')} ({profile.get('name', '?')})",
        "",
        f"- Machine: {meta.get('machine', {}).get('cpus')} CPUs, {meta.get('machine', {}).get('platform')}; "
        f"commit {str(meta.get('commit', ''))[:12]} with {meta.get('worktree_changes', '?')} uncommitted changes.",
        f"- PostgreSQL {pg.get('version', '?')} (fsync {settings.get('fsync', '?')}, synchronous_commit "
        f"{settings.get('synchronous_commit', '?')}, {settings.get('default_transaction_isolation', '?')}), "
        "10,000 funded accounts, a fresh copy of the seeded database for every run.",
        f"- Load: {str(meta.get('pgbench', 'pgbench')).strip()} for the baseline; the "
        f"service through wrk ({meta.get('generator', {}).get('wrk', '?')}) closed loop and k6 "
        f"({str(meta.get('generator', {}).get('k6', '')).split(' (')[0]}) at a fixed rate; "
        f"{profile.get('reps')} interleaved repeat(s), {profile.get('seconds')} s a point; fixed rate = "
        f"{int(100 * profile.get('rate_fraction', 0.8))}% of each column's own closed-loop peak, with latency "
        "from the intended send time.",
        f"- Checks: {len(runs)} runs, **{len(invalid)} invalid** (invariants broken or acknowledged ≠ new rows), "
        f"{len(flagged)} flagged (foreign CPU > 10%, errors, dropped iterations).",
        "",
        "Throughput in transfers/s (201 answers/s for the service; the replay mix counts replays too), median "
        "(min–max) over the valid repeats; latency p50 / p95 / p99 in ms; the ratios are service ÷ baseline, "
        "computed per repeat. See bench/README.md for what each number means.",
    ]
    for scenario in SCENARIOS:
        if not any(s == scenario for (_v, s, _l) in agg):
            continue
        base = baseline_scenario(scenario)
        lines += ["", f"## {TITLES[scenario]}", ""]
        if scenario == "bulk":
            lines += [
                "Baseline columns: the uniform pgbench runs, one transfer per transaction. Service "
                "throughput counts transfers (100 per request); its latency is per request of 100.",
                "",
            ]
        elif base != scenario:
            lines += ["Baseline columns: the uniform pgbench runs (pgbench does not replay).", ""]
        lines += [
            "| load | interactive tr/s | p50 / p95 / p99 | one round trip tr/s | p50 / p95 / p99 | service tr/s "
            "| p50 / p95 / p99 | service ÷ interactive | service ÷ one round trip |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for load in loads(agg, scenario):
            cells = []
            label = f"{load[1:]} clients" if load != "rate" else "fixed rate"
            for variant in VARIANTS:
                group = agg.get((variant, scenario if variant == "service" else base, load))
                throughput = fmt(group["answers_per_s"]) if group else "–"
                if group and load == "rate":
                    throughput = f"{fmt(group['answers_per_s'])} at {group['rate']:,}/s"
                if group and group["valid"] < group["runs"]:
                    throughput += f" ⚠ {group['runs'] - group['valid']} invalid"
                cells += [throughput, fmt_latency(group)]
            if load == "rate":
                cells += ["(rates differ)", "(rates differ)"]
            else:
                cells += [fmt_ratio(rat.get((scenario, load, "interactive"))),
                          fmt_ratio(rat.get((scenario, load, "one_round_trip")))]  # fmt: skip
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| load | column | CPU ms/transfer: PostgreSQL | service | load generator | machine busy % | foreign % "
            "| errors | timeouts | retries | valid runs |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for load in loads(agg, scenario):
            label = f"{load[1:]} clients" if load != "rate" else "fixed rate"
            for variant in VARIANTS:
                group = agg.get((variant, scenario if variant == "service" else base, load))
                if not group:
                    continue
                lines.append(
                    f"| {label} | {NAMES[variant]} | {fmt(group['cpu_pg'], 2)} | "
                    f"{fmt(group['cpu_service'], 2) if variant == 'service' else '–'} | "
                    f"{fmt(group['cpu_generator'], 2)} | {fmt(group['busy_pct'])} | {fmt(group['foreign_pct'])} | "
                    f"{group['errors']} | {group['timeouts']} | {group['retries']} | {group['valid']}/{group['runs']} |"
                )
    if invalid or flagged:
        lines += ["", "## Invalid and flagged runs", ""]
        for run in runs:
            if not run["valid"] or run["flags"]:
                what = "; ".join(run["problems"] + run["flags"])
                lines.append(
                    f"- run {run['index']} ({run['variant']}, {run['scenario']}, {load_key(run)}, rep {run['rep']}): "
                    f"{'INVALID: ' if not run['valid'] else ''}{what}"
                )
    return "\n".join(lines) + "\n"


def chart(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    runs = data["runs"]
    agg = aggregate(runs)
    scenarios = [s for s in SCENARIOS if any(sc == s for (_v, sc, _l) in agg)]
    fig, axes = plt.subplots(2, len(scenarios), figsize=(4.6 * len(scenarios), 7.5), squeeze=False)
    width = 0.26
    for col, scenario in enumerate(scenarios):
        base = baseline_scenario(scenario)
        xs = loads(agg, scenario)
        labels = [f"{x[1:]}" if x != "rate" else "fixed\nrate" for x in xs]
        for row, (metric, ylabel) in enumerate((("answers_per_s", "transfers/s"), ("p99_ms", "p99 latency (ms)"))):
            ax = axes[row][col]
            for i, variant in enumerate(VARIANTS):
                heights, low, high = [], [], []
                for x in xs:
                    group = agg.get((variant, scenario if variant == "service" else base, x))
                    s = group[metric] if group else None
                    heights.append(s["median"] if s else 0)
                    low.append(s["median"] - s["min"] if s else 0)
                    high.append(s["max"] - s["median"] if s else 0)
                positions = [j + (i - 1) * width for j in range(len(xs))]
                spread = any(low) or any(high)
                ax.bar(positions, heights, width, color=COLORS[variant], label=NAMES[variant],
                       yerr=[low, high] if spread else None, capsize=2, error_kw={"elinewidth": 0.8})  # fmt: skip
            ax.set_xticks(range(len(xs)), labels)
            ax.set_xlabel("clients (closed loop)")
            ax.grid(axis="y", alpha=0.3)
            if row == 1:
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == 0:
                ax.set_title(scenario if base == scenario else f"{scenario} (baseline: uniform)", fontsize=10)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=9, frameon=False)
    meta = data["meta"]
    fig.suptitle(
        f"Ledger: service vs raw PostgreSQL (pgbench)\n{meta.get('started', '')}, "
        f"{meta.get('profile', {}).get('name', '')}; median, whiskers min–max",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(outdir: Path, data: dict[str, Any]) -> list[Path]:
    summary = outdir / "summary.md"
    summary.write_text(summary_markdown(data))
    written = [summary]
    try:
        written.append(chart(data, outdir / "chart.png"))
    except ImportError:
        print(f"chart.png not drawn: matplotlib is not installed (pip install {MATPLOTLIB})", file=sys.stderr)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source = Path(sys.argv[1])
    for path in write(source.parent, json.loads(source.read_text())):
        print(path)
