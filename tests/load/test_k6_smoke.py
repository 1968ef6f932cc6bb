"""The k6 smoke run as `make load-smoke` does it: a throwaway service, a few seconds of payments, then the
run's invariants (acknowledged set = held set, zero sum, floors) and `ledger verify`. The checker is also
shown to fail when the ledger holds a transaction no client saw acknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_k6_smoke_passes_and_checks_the_ledger() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/load.py", "smoke", "--start-service", "-e", "DURATION=4s", "-e", "ACCOUNTS=20"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report_dir = ROOT / result.stdout.strip().splitlines()[-1].split("report in ")[1]
    report = json.loads((report_dir / "report.json").read_text())
    assert report["passed"] and report["verify"] == "ran"
    assert report["requests_per_second"] > 0
    assert (report_dir / "chart.png").stat().st_size > 1000


def test_the_checker_catches_a_transaction_no_client_saw(monkeypatch) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import load

    def fake_pages(url: str, api_key: str):
        if "/v1/accounts?" in url:
            return iter([{"code": "load-1:a", "balance": 0, "min_balance": 0}])
        return iter([{"id": "t1"}, {"id": "t-extra"}])

    monkeypatch.setattr(load, "_pages", fake_pages)
    failures = load.check_ledger("http://127.0.0.1:9", "k", "1", {"t1", "t-missing"})
    assert any("missing" in f for f in failures) and any("no client saw" in f for f in failures)
