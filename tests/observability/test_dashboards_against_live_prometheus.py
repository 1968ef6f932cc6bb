"""Every dashboard query and every alert rule, evaluated by a real Prometheus that scrapes the real service.

The module starts the service (tests/live.py, on the session's throwaway PostgreSQL), starts Debian's
/usr/bin/prometheus on a loopback port with a config that scrapes the service's /metrics every second and loads
the repository's alert rules, puts a short load on the service through HTTP (accounts, transactions, a
reversal, refusals of several kinds, idempotent replays), waits until Prometheus has scraped the result, then
asks Prometheus' HTTP API for:

- each template variable (label_values(...) turned into PromQL): it resolves, and the defaults are real values;
- each panel query with the variables substituted as Grafana would: it parses, and it returns data unless it
  reads postgres_exporter's pg_* metrics (no exporter runs here: those only have to parse);
- each alert rule's expression: it parses; and the rule groups as Prometheus evaluates them have no error;
- a few facts the dashboards and alerts rely on: route labels are templates, the latency buckets include the
  250 ms objective, and on a healthy ledger the invariant gauges are 0 and the invariant alert is silent.

Prometheus is stopped by its PID at the end (terminate, then kill) and its directory removed.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ledger.config import Settings
from tests.conftest import ADMIN_SECRET, AUTH, empty_tables
from tests.live import LiveServer
from tests.observability.support import (
    CONTRACT,
    RULES_DIR,
    dashboard_queries,
    find_tool,
    from_postgres_exporter,
    grafana_regex_value,
    load_dashboards,
    metric_names,
    rules,
    substitute,
    variables,
)

SCRAPE_INTERVAL = "1s"
# What Grafana's $__rate_interval and $__interval become here: several 1 s scrapes, well within the run.
BUILTINS = {"__rate_interval": "15s", "__interval": "15s", "__range": "5m", "__range_s": "300"}
LOAD_SECONDS = 4.0
WAIT_SECONDS = 30.0
# The contract's latency buckets, as prometheus-client writes them (the alerts use le="0.25").
BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf")}


# --- Prometheus -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer:
    """Debian's prometheus on 127.0.0.1, scraping one target as job "ledger" and loading the repo's rules."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        self.binary = binary
        self.target = target
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10, trust_env=False)

    def start(self) -> None:
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                       "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": [str(RULES_DIR / "*.yml")],
            "scrape_configs": [
                {"job_name": "ledger", "metrics_path": "/metrics", "static_configs": [{"targets": [self.target]}]}
            ],
        }  # fmt: skip
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.wait_for(self._ready, "Prometheus to be ready (/-/ready)")

    def _ready(self) -> bool:
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.http.close()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}", pytrace=False)
            if predicate():
                return
            time.sleep(0.25)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tail()}", pytrace=False)

    def query(self, expr: str) -> dict[str, Any]:
        """/api/v1/query at the current time: {"status": ..., "data": ...} or {"status": "error", "error": ...}."""
        response = self.http.post("/api/v1/query", data={"query": expr})
        body: dict[str, Any] = response.json()
        return body

    def vector(self, expr: str) -> list[dict[str, Any]]:
        body = self.query(expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.vector(expr)
        return float(result[0]["value"][1]) if result else None

    def metric_names(self) -> set[str]:
        return set(self.http.get("/api/v1/label/__name__/values").json()["data"])

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return groups


# --- load -------------------------------------------------------------------------------------------------


@dataclass
class Load:
    suffix: str
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def record(self, response: httpx.Response) -> httpx.Response:
        self.requests += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response


def put_load(base_url: str, seconds: float) -> Load:
    """A few hundred requests at most, for about `seconds`: every kind of thing the dashboards show."""
    load = Load(suffix=secrets.token_hex(4))
    world, world_usd = f"obs-{load.suffix}:world", f"obs-{load.suffix}:world-usd"
    alice, bob, carol = (f"obs-{load.suffix}:{name}" for name in ("alice", "bob", "carol"))
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=10, trust_env=False) as client:

        def post(path: str, body: dict[str, Any], key: str | None = None, expect: int | None = None) -> httpx.Response:
            headers = {"Idempotency-Key": key} if key else {}
            response = load.record(client.post(path, json=body, headers=headers))
            if expect is not None:
                assert response.status_code == expect, f"POST {path} {body}: {response.status_code} {response.text}"
            return response

        for code, currency, floor in ((world, "BDT", None), (world_usd, "USD", None), (alice, "BDT", 0),
                                      (bob, "BDT", 0), (carol, "USD", 0)):  # fmt: skip
            post("/v1/accounts", {"code": code, "currency": currency, "min_balance": floor}, expect=201)

        def transfer(source: str, target: str, amount: int | float, key: str) -> httpx.Response:
            return post("/v1/transactions", {"postings": [{"account": source, "amount": -amount},
                                                          {"account": target, "amount": amount}]}, key)  # fmt: skip

        started = time.monotonic()
        round_number = 0
        reversed_one = False
        while round_number < 25 and (round_number < 3 or time.monotonic() - started < seconds):
            tag = f"{load.suffix}-{round_number}"
            funded = transfer(world, alice, 10_000, f"fund-{tag}")
            assert funded.status_code == 201, funded.text
            moved = transfer(alice, bob, 250, f"move-{tag}")
            transfer(world_usd, carol, 1_999, f"usd-{tag}")
            transfer(world, alice, 10_000, f"fund-{tag}")  # the same key and request: a replay
            transfer(alice, bob, 10**12, f"overdraw-{tag}")  # insufficient-funds
            transfer(alice, bob, 1.5, f"float-{tag}")  # validation-error (floats are refused)
            transfer(alice, f"obs-{load.suffix}:nobody", 5, f"nobody-{tag}")  # unknown-account
            if not reversed_one:
                post(f"/v1/transactions/{moved.json()['id']}/reverse", {}, f"reverse-{tag}", expect=201)
                reversed_one = True
            load.record(client.get(f"/v1/accounts/{alice}"))
            load.record(client.get(f"/v1/accounts/{alice}/balance"))
            load.record(client.get(f"/v1/accounts/{bob}/postings", params={"limit": 10}))
            load.record(client.get("/v1/transactions", params={"account": alice, "limit": 10}))
            load.record(client.get(f"/v1/accounts/obs-{load.suffix}:missing"))  # not-found
            load.record(client.get("/v1/audit", params={"limit": 5}))
            load.record(client.get("/v1/accounts", headers={"Authorization": "Bearer ldg_not-a-key"}))  # unauthorized
            load.record(client.get("/healthz"))
            load.record(client.get("/readyz"))
            round_number += 1
            time.sleep(0.1)
    for status in (201, 200, 401, 404, 422):
        assert load.statuses.get(status), f"the load produced no {status}: {load.statuses}"
    return load


def _posted_now(base_url: str) -> float:
    """ledger_transactions_posted_total as the service's /metrics says it right now."""
    text = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False).text
    match = re.search(r"^ledger_transactions_posted_total(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE)
    assert match, "ledger_transactions_posted_total is not on /metrics"
    return float(match.group(1))


# --- the fixture ------------------------------------------------------------------------------------------


@dataclass
class Live:
    prometheus: PrometheusServer
    target: str
    load: Load


@pytest.fixture(scope="module")
def live(database_url: str, service_database_url: str) -> Iterator[Live]:
    binary = find_tool("prometheus")
    empty_tables(database_url)
    settings = Settings.from_env(
        {
            "LEDGER_DATABASE_URL": service_database_url,
            "LEDGER_BOOTSTRAP_API_KEY": ADMIN_SECRET,
            "LEDGER_RATE_LIMIT_PER_SECOND": "100000",
            "LEDGER_AUDIT_CHAIN_INTERVAL_SECONDS": "0.05",
            "LEDGER_MONITOR_INTERVAL_SECONDS": "1",
        }
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-prometheus-")))
        server = stack.enter_context(LiveServer(settings))
        target = server.url.removeprefix("http://")
        metrics = httpx.get(f"{server.url}/metrics", timeout=10, trust_env=False)
        if metrics.status_code != 200 or "ledger_build_info" not in metrics.text:
            pytest.fail(f"the service does not serve its metrics on /metrics ({metrics.status_code})", pytrace=False)
        prometheus = PrometheusServer(binary, target, workdir)
        stack.callback(prometheus.stop)
        prometheus.start()
        # The first scrape comes a few seconds after start.
        prometheus.wait_for(lambda: prometheus.scalar('up{job="ledger"}') == 1, "the first scrape of the service")
        load = put_load(server.url, LOAD_SECONDS)
        posted = _posted_now(server.url)
        prometheus.wait_for(
            lambda: (prometheus.scalar('sum(ledger_transactions_posted_total{job="ledger"})') or 0) >= posted,
            f"Prometheus to scrape the {posted:.0f} posted transactions",
        )
        prometheus.wait_for(
            lambda: all(rule["health"] == "ok" for group in prometheus.rule_groups() for rule in group["rules"]),
            "every rule to be evaluated once without error",
            timeout=15,
        )
        yield Live(prometheus, target, load)


# --- the checks -------------------------------------------------------------------------------------------


def _label_values(prometheus: PrometheusServer, query: str, values: dict[str, str]) -> list[str]:
    """Grafana's label_values(selector, label), asked of Prometheus as `group by (label) (selector)`."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    assert match, f"not a label_values() query: {query}"
    selector, label = substitute(match.group(1), values), match.group(2)
    result = prometheus.vector(f"group by ({label}) ({selector})")
    return sorted(item["metric"][label] for item in result if label in item["metric"])


def _resolve_variables(prometheus: PrometheusServer, dashboard: dict[str, Any], problems: list[str],
                       name: str) -> dict[str, str]:  # fmt: skip
    values = dict(BUILTINS)
    for var_name, variable in variables(dashboard).items():
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        found = _label_values(prometheus, query, values)
        default = variable.get("current", {}).get("value")
        multi = variable.get("multi") or variable.get("includeAll")
        if from_postgres_exporter(query):
            if found:
                values[var_name] = grafana_regex_value(found)
            else:
                values[var_name] = ".*" if multi or not default else str(default)
            continue
        if not found:
            problems.append(f"{name}: variable ${var_name} ({query}) has no values")
            values[var_name] = ".*"
        elif multi:
            values[var_name] = grafana_regex_value(found)  # "All", as Grafana writes it
        else:
            if default and default not in found:
                problems.append(f"{name}: ${var_name} defaults to {default!r}, not among {found}")
            values[var_name] = default if default in found else found[0]
    return values


def test_every_panel_query_parses_and_the_service_panels_have_data(live: Live) -> None:
    problems: list[str] = []
    evaluated = with_data = 0
    for name, dashboard in load_dashboards().items():
        values = _resolve_variables(live.prometheus, dashboard, problems, name)
        for query in dashboard_queries(name, dashboard):
            if query.kind == "variable":
                continue
            expr = substitute(query.expr, values)
            body = live.prometheus.query(expr)
            evaluated += 1
            if body["status"] != "success":
                problems.append(f"{query}: {body.get('errorType')}: {body.get('error')}\n    {expr}")
                continue
            if query.kind == "annotation" or from_postgres_exporter(query.expr):
                continue  # firing alerts, postgres_exporter: parse only
            result = body["data"]["result"]
            if not result:
                problems.append(f"{query}: no data\n    {expr}")
            else:
                with_data += 1
    assert not problems, f"{len(problems)} of {evaluated} queries failed:\n" + "\n".join(problems)
    assert with_data >= 50, f"only {with_data} of {evaluated} queries were checked for data"


def test_every_metric_the_service_dashboards_read_is_scraped(live: Live) -> None:
    scraped = live.prometheus.metric_names()
    missing = set()
    for name, dashboard in load_dashboards().items():
        for query in dashboard_queries(name, dashboard):
            if query.kind == "panel" and not from_postgres_exporter(query.expr):
                missing |= {metric for metric in metric_names(query.expr) if metric not in scraped}
    assert not missing, f"dashboards read metrics the service does not expose: {sorted(missing)}"


def test_every_rule_expression_parses_and_evaluates_without_error(live: Live) -> None:
    problems = []
    for rule in rules():
        name = rule.get("alert") or rule.get("record")
        body = live.prometheus.query(rule["expr"])
        if body["status"] != "success":
            problems.append(f"{rule['_file']} {name}: {body.get('error')}")
    for group in live.prometheus.rule_groups():
        for rule in group["rules"]:
            if rule["health"] != "ok":
                problems.append(f"group {group['name']} {rule['name']}: {rule['health']} {rule.get('lastError')}")
    loaded = {rule["name"] for group in live.prometheus.rule_groups() for rule in group["rules"]}
    expected = {rule.get("alert") or rule.get("record") for rule in rules()}
    assert loaded == expected, f"Prometheus loaded {sorted(loaded)}, the files define {sorted(expected)}"
    assert not problems, "\n".join(problems)


def test_the_service_metrics_the_alerts_read_are_scraped(live: Live) -> None:
    scraped = live.prometheus.metric_names()
    for rule in rules():
        wanted = {metric for metric in metric_names(rule["expr"]) if not metric.startswith("pg_")}
        assert wanted <= scraped, f"{rule.get('alert')}: {sorted(wanted - scraped)} never scraped"


def test_route_labels_are_templates_and_latency_buckets_hold_the_objective(live: Live) -> None:
    routes = {
        item["metric"]["route"] for item in live.prometheus.vector("group by (route) (ledger_http_requests_total)")
    }
    assert "/v1/accounts/{code}" in routes and "/v1/transactions" in routes, routes
    raw = [route for route in routes if live.load.suffix in route]
    assert not raw, f"raw paths in the route label (unbounded cardinality): {raw}"
    buckets = live.prometheus.vector('group by (le) (ledger_http_request_duration_seconds_bucket{job="ledger"})')
    assert {float(item["metric"]["le"]) for item in buckets} == BUCKETS


def test_a_healthy_ledger_reports_no_invariant_violation_and_recent_checks(live: Live) -> None:
    checks = live.prometheus.vector('ledger_invariant_violations{job="ledger"}')
    assert checks, "no ledger_invariant_violations series"
    assert all(float(item["value"][1]) == 0 for item in checks), checks
    age = live.prometheus.scalar('time() - max(ledger_invariant_check_timestamp_seconds{job="ledger"})')
    assert age is not None and age < 30, f"the last invariant check is {age} s old"
    (invariant_rule,) = [rule for rule in rules() if rule.get("alert") == "LedgerInvariantViolated"]
    assert live.prometheus.vector(invariant_rule["expr"]) == []


def test_the_service_exposes_every_metric_of_the_contract_with_its_labels(live: Live) -> None:
    problems = []
    for metric, labels in CONTRACT.items():
        series = live.prometheus.http.get("/api/v1/series", params={"match[]": f'{metric}{{job="ledger"}}'}).json()
        label_sets = {frozenset(set(item) - {"__name__", "job", "instance", "le"}) for item in series["data"]}
        if not label_sets:
            problems.append(f"{metric}: not scraped")
        elif label_sets != {frozenset(labels)}:
            problems.append(f"{metric}: labels {sorted(map(sorted, label_sets))}, the contract says {sorted(labels)}")
    assert not problems, "\n".join(problems)
