"""What the observability tests share: the tools, the dashboards and their queries, template variables, and a
rough reading of PromQL selectors (enough to find metric names and label matchers; Prometheus itself parses).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "grafana/dashboards"
DATASOURCES_FILE = REPO / "grafana/provisioning/datasources/datasources.yml"
PROMETHEUS_DIR = REPO / "deploy/prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
DOC = REPO / "docs/observability.md"
TIMEOUT = 120

# The metrics contract of /metrics (docs/observability.md): name as scraped -> its labels (job and instance are
# Prometheus', le the histograms').
CONTRACT: dict[str, set[str]] = {
    "ledger_http_requests_total": {"method", "route", "status"},
    "ledger_http_request_duration_seconds_bucket": {"method", "route"},
    "ledger_http_request_duration_seconds_count": {"method", "route"},
    "ledger_http_requests_in_flight": set(),
    "ledger_transactions_posted_total": set(),
    "ledger_transactions_reversed_total": set(),
    "ledger_postings_total": set(),
    "ledger_volume_minor_units_total": {"currency"},
    "ledger_refusals_total": {"slug"},
    "ledger_idempotent_replays_total": set(),
    "ledger_idempotency_conflicts_total": set(),
    "ledger_posting_retries_total": set(),
    "ledger_audit_chain_lag_seconds": set(),
    "ledger_audit_pending_entries": set(),
    "ledger_idempotency_keys_stored": set(),
    "ledger_db_pool_size": set(),
    "ledger_db_pool_in_use": set(),
    "ledger_db_pool_idle": set(),
    "ledger_db_pool_acquire_duration_seconds_bucket": set(),
    "ledger_db_query_duration_seconds_bucket": {"statement"},
    "ledger_invariant_violations": {"check"},
    "ledger_invariant_check_timestamp_seconds": set(),
    "ledger_build_info": {"version"},
    "process_cpu_seconds_total": set(),
    "process_resident_memory_bytes": set(),
    "process_start_time_seconds": set(),
    "python_gc_collections_total": {"generation"},
}

# Grafana's own datasources, which need no provisioning.
GRAFANA_BUILTIN_UIDS = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan", "atan2",
}  # fmt: skip
APT_HINT = "apt-get install --no-install-recommends prometheus (Debian's package has both prometheus and promtool)"


def find_tool(name: str, install_hint: str = APT_HINT) -> str:
    """A program from the interpreter's bin directory or PATH (Debian puts promtool in /usr/bin); never skip."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", ""), "/usr/bin"])
    found = shutil.which(name, path=search)
    if found is None:
        pytest.fail(
            f"`{name}` not found next to {sys.executable}, on PATH or in /usr/bin: {install_hint}", pytrace=False
        )
    return found


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", TIMEOUT)
    return subprocess.run(cmd, check=False, **kwargs)


def assert_ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"


# --- dashboards -------------------------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON."""
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in dashboard_files()}


def provisioned_datasources() -> dict[str, str]:
    """uid -> type of the datasources Grafana is provisioned with."""
    config = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))
    return {source["uid"]: source["type"] for source in config["datasources"]}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Query:
    dashboard: str  # file name
    where: str  # e.g. "panel 7 'Requests by route' target A"
    expr: str  # as written, with template variables
    kind: str  # "panel", "annotation" or "variable"

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.where}"


def dashboard_queries(name: str, dashboard: dict[str, Any]) -> list[Query]:
    queries = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                where = f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}"
                queries.append(Query(name, where, target["expr"], "panel"))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            queries.append(Query(name, f"annotation {annotation.get('name')!r}", annotation["expr"], "annotation"))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            queries.append(Query(name, f"variable ${variable['name']}", text, "variable"))
    return queries


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard.get("templating", {}).get("list", [])}


# --- template variables -----------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
# Grafana's built-in interval and range variables, as a test substitutes them.
BUILTIN_DEFAULTS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace every $var, ${var} and [[var]] (Grafana's syntaxes) by its value; an unknown one fails."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def grafana_regex_value(values: list[str]) -> str:
    """How Grafana's Prometheus datasource writes a multi-value variable into a query: each value regex-escaped
    (inside a PromQL string, so the escaping backslash is doubled), joined as (a|b)."""

    def escape(value: str) -> str:
        value = value.replace("\\", "\\\\\\\\")
        return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)

    escaped = [escape(value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def static_values(dashboard: dict[str, Any], builtins: dict[str, str] | None = None) -> dict[str, str]:
    """Values for an offline check: each variable's default, `.*` for multi-value ones."""
    values = dict(BUILTIN_DEFAULTS if builtins is None else builtins)
    for name, variable in variables(dashboard).items():
        current = variable.get("current", {}).get("value")
        if variable.get("multi") or variable.get("includeAll") or not current:
            values[name] = ".*"
        else:
            values[name] = str(current)
    return values


# --- reading selectors ------------------------------------------------------------------------------------

_BRACED_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: dict[str, tuple[str, str]]  # label -> (operator, value)


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a PromQL expression written with template variables (so no braces inside strings):
    `name{...}` ones with their matchers, and bare `name` ones with none."""
    found = []
    for match in _BRACED_SELECTOR.finditer(expr):
        matchers = {label: (op, value) for label, op, value in _MATCHER.findall(match.group(2))}
        metric = match.group(1) or matchers.get("__name__", ("=", ""))[1]
        found.append(Selector(metric, matchers))
    rest = _BRACED_SELECTOR.sub(" ", expr)
    rest = _STRING.sub(" ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range and subquery durations
    rest = _CLAUSE.sub(" ", rest)
    for name in _IDENTIFIER.findall(rest):
        if name.lower() not in PROMQL_KEYWORDS:
            found.append(Selector(name, {}))
    return found


def metric_names(expr: str) -> set[str]:
    return {selector.metric for selector in selectors(expr) if selector.metric}


def from_postgres_exporter(expr: str) -> bool:
    """Queries of postgres_exporter's metrics (pg_*): no exporter runs in the tests, so they only have to parse."""
    return any(name.startswith("pg_") for name in metric_names(expr))


# --- links to traces --------------------------------------------------------------------------------------


def explore_panes(url: str) -> dict[str, Any] | None:
    """The panes of a Grafana Explore link, with ${...} variables replaced by placeholders; None if not one."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.path != "/explore":
        return None
    query = urllib.parse.parse_qs(parsed.query)
    (panes,) = query["panes"]
    panes = re.sub(r"\$\{[^}]*\}", "X", panes)
    value: dict[str, Any] = json.loads(urllib.parse.unquote(panes))
    return value


def links(node: Any) -> Iterator[dict[str, Any]]:
    """Every data link and panel link in a dashboard (anything under a "links" key with a url)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "links" and isinstance(value, list):
                yield from (link for link in value if isinstance(link, dict) and "url" in link)
            else:
                yield from links(value)
    elif isinstance(node, list):
        for item in node:
            yield from links(item)


# --- rules ------------------------------------------------------------------------------------------------


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    found = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                found.append({**rule, "_file": path.name, "_group": group["name"]})
    return found


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]
