"""Offline checks of the Grafana dashboards in grafana/dashboards/: their structure, their datasources, their
template variables, their links to traces, and that every PromQL expression parses (promtool).

Grafana cannot run here; what Grafana would do with the queries is checked against a real Prometheus in
test_dashboards_against_live_prometheus.py.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.support import (
    GRAFANA_BUILTIN_UIDS,
    all_panels,
    assert_ok,
    dashboard_files,
    dashboard_queries,
    explore_panes,
    find_tool,
    links,
    load_dashboards,
    provisioned_datasources,
    run,
    selectors,
    static_values,
    substitute,
    variables,
)

EXPECTED = {"ledger-service.json", "ledger-ledger.json", "ledger-postgres.json"}
# What a query must not hard-code: addresses, ports, host names of the stack.
HARD_CODED_HOST = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|localhost|\b[\w-]+:\d{2,5}\b|ledger:8080|postgres-exporter")


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


def test_the_three_dashboards_exist_and_are_json(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {path.name for path in dashboard_files()} == EXPECTED
    for name, dashboard in dashboards.items():
        assert isinstance(dashboard, dict) and dashboard.get("title"), f"{name}: no title"


def test_dashboard_uids_are_unique_and_set(dashboards: dict[str, dict[str, Any]]) -> None:
    uids = [dashboard.get("uid") for dashboard in dashboards.values()]
    assert all(isinstance(uid, str) and re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids), uids
    assert len(set(uids)) == len(uids), f"dashboard uids repeat: {uids}"
    titles = [dashboard["title"] for dashboard in dashboards.values()]
    assert len(set(titles)) == len(titles), f"dashboard titles repeat (one folder): {titles}"


def test_dashboards_are_provisioned_read_only_with_a_current_schema(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        assert dashboard.get("id") is None, f"{name}: a provisioned dashboard carries no database id"
        assert 36 <= dashboard.get("schemaVersion", 0) <= 41, f"{name}: schemaVersion {dashboard.get('schemaVersion')}"
        assert dashboard.get("editable") is False, f"{name}: the UI cannot save provisioned files; say so"
        assert "ledger" in dashboard.get("tags", []), f"{name}: the dashboard links find the others by the tag"


def test_panel_ids_are_unique_and_panels_fit_the_grid(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        panels = list(all_panels(dashboard))
        ids = [panel.get("id") for panel in panels]
        assert all(isinstance(panel_id, int) for panel_id in ids), f"{name}: panel without an integer id"
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat: {sorted(ids)}"
        cells: dict[tuple[int, int], int] = {}
        for panel in panels:
            where = f"{name}: panel {panel['id']} {panel.get('title')!r}"
            assert panel.get("title"), f"{where}: no title"
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, f"{where}: outside the 24 columns"
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    other = cells.setdefault((x, y), panel["id"])
                    assert other == panel["id"], f"{where}: overlaps panel {other}"
            if panel["type"] == "row":
                continue
            targets = panel.get("targets", [])
            assert targets, f"{where}: no query"
            ref_ids = [target.get("refId") for target in targets]
            assert len(set(ref_ids)) == len(ref_ids), f"{where}: refIds repeat"
            assert panel.get("description"), f"{where}: say what the panel shows (description)"


def test_every_datasource_is_a_provisioned_uid(dashboards: dict[str, dict[str, Any]]) -> None:
    provisioned = provisioned_datasources()
    allowed = set(provisioned) | GRAFANA_BUILTIN_UIDS

    def check(node: Any, where: str) -> None:
        if isinstance(node, dict):
            source = node.get("datasource")
            if source is not None:
                assert isinstance(source, dict), f"{where}: datasource must be {{type, uid}}, got {source!r}"
                uid = source.get("uid")
                assert uid in allowed, f"{where}: datasource uid {uid!r} is not provisioned ({sorted(provisioned)})"
                if uid in provisioned:
                    assert source.get("type") == provisioned[uid], f"{where}: {uid} is a {provisioned[uid]} datasource"
            for key, value in node.items():
                check(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                check(item, f"{where}[{index}]")

    for name, dashboard in dashboards.items():
        check(dashboard, name)
        for panel in all_panels(dashboard):
            if panel["type"] != "row":
                assert panel.get("datasource"), f"{name}: panel {panel['id']} names no datasource (default may change)"


def test_no_query_hard_codes_an_instance_or_a_job(dashboards: dict[str, dict[str, Any]]) -> None:
    """Every selector filters by the template variables, so one dashboard serves any instance and job."""
    problems = []
    for name, dashboard in dashboards.items():
        for query in dashboard_queries(name, dashboard):
            if HARD_CODED_HOST.search(query.expr):
                problems.append(f"{query}: hard-coded host in {query.expr!r}")
            for selector in selectors(query.expr):
                job = selector.matchers.get("job")
                instance = selector.matchers.get("instance")
                if query.kind == "variable":
                    # label_values(metric{job=~"$job"}, instance): only variables, never literals
                    for label, value in (("job", job), ("instance", instance)):
                        if value is not None and not value[1].startswith("$"):
                            problems.append(f"{query}: {label} hard-coded as {value!r}")
                    continue
                if job != ("=~", "$job"):
                    problems.append(f'{query}: selector {selector.metric or "{}"} lacks job=~"$job" ({query.expr})')
                # ALERTS of the aggregated alerts carry no instance label: filter them by job only.
                if selector.metric != "ALERTS" and instance != ("=~", "$instance"):
                    problems.append(f'{query}: selector {selector.metric} lacks instance=~"$instance" ({query.expr})')
    assert not problems, "\n".join(problems)


def test_template_variables_are_label_values_queries_chained_job_then_instance(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for name, dashboard in dashboards.items():
        found = variables(dashboard)
        assert {"job", "instance"} <= set(found), f"{name}: needs $job and $instance variables"
        for var_name, variable in found.items():
            where = f"{name}: ${var_name}"
            assert variable["type"] == "query" and variable["datasource"]["uid"] == "prometheus", where
            text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            assert re.fullmatch(r"label_values\(.+, *" + re.escape(var_name) + r"\)", text), f"{where}: {text}"
            assert variable.get("definition") == text, f"{where}: definition and query differ"
            assert variable.get("refresh") in (1, 2), f"{where}: must load its values (refresh on load/time change)"
        instance = found["instance"]["definition"]
        assert '$job"' in instance, f"{name}: $instance must be chained to $job: {instance}"
        used = " ".join(query.expr for query in dashboard_queries(name, dashboard))
        for var_name in found:
            assert f"${var_name}" in used, f"{name}: variable ${var_name} is never used"


def test_links_to_traces_open_jaeger_in_explore(dashboards: dict[str, dict[str, Any]]) -> None:
    """Panels link to the service's traces: Explore links whose query targets the provisioned Jaeger uid."""
    provisioned = provisioned_datasources()
    for name, dashboard in dashboards.items():
        trace_links = 0
        for link in links(dashboard):
            panes = explore_panes(link["url"])
            if panes is None:
                continue
            for pane in panes.values():
                assert provisioned.get(pane["datasource"]) == "jaeger", f"{name}: {link['title']} -> {pane}"
                for query in pane["queries"]:
                    assert query["datasource"] == {"type": "jaeger", "uid": pane["datasource"]}, query
                    assert query["queryType"] == "search" and query["service"] == "ledger", query
                assert set(pane["range"]) == {"from", "to"}
            trace_links += 1
        if name != "ledger-postgres.json":
            assert trace_links >= 3, f"{name}: panels should link to their traces"


def test_every_query_parses_with_promtool(dashboards: dict[str, dict[str, Any]]) -> None:
    """Each expression, variables substituted, written as a recording rule: `promtool check rules` parses it."""
    promtool = find_tool("promtool")
    rules = []
    names: dict[str, str] = {}
    for name, dashboard in dashboards.items():
        values = static_values(dashboard)
        for index, query in enumerate(dashboard_queries(name, dashboard)):
            if query.kind == "variable":
                continue  # label_values() is Grafana's, not PromQL: the live test resolves it
            record = f"dashboard:{Path(name).stem.replace('-', '_')}:q{index}"
            names[record] = str(query)
            rules.append({"record": record, "expr": substitute(query.expr, values)})
    assert len(rules) > 40
    with tempfile.TemporaryDirectory(prefix="ledger-dashboards-") as scratch:
        path = Path(scratch) / "dashboards.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
        result = run([promtool, "check", "rules", "--lint=none", str(path)])
    legend = "\n".join(f"{record} = {where}" for record, where in names.items())
    assert_ok(result, f"promtool check rules on the dashboards' queries\n{legend}")
