"""docs/observability.md describes what exists: every metric of the contract, every dashboard, every alert (with
its runbook, checked in test_rules.py), and pictures that are real PNG files it shows."""

from __future__ import annotations

import re

from tests.observability.support import CONTRACT, DOC, REPO, alerts, load_dashboards

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_every_metric_of_the_contract_is_documented() -> None:
    doc = _doc()
    for metric in CONTRACT:
        base = re.sub(r"_(bucket|count)$", "", metric)
        assert f"`{base}`" in doc, f"docs/observability.md does not list {base}"


def test_every_dashboard_and_alert_is_documented() -> None:
    doc = _doc()
    for name, dashboard in load_dashboards().items():
        assert name in doc and f"`{dashboard['uid']}`" in doc, f"docs/observability.md does not describe {name}"
        assert dashboard["title"] in doc, dashboard["title"]
    for alert in alerts():
        assert f"[{alert['alert']}](#{alert['alert'].lower()})" in doc, f"{alert['alert']} is not in the alert table"


def test_the_pictures_are_png_files_the_doc_shows() -> None:
    doc = _doc()
    shown = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", doc)
    assert shown, "docs/observability.md shows no picture"
    for relative in shown:
        path = DOC.parent / relative
        assert path.is_file(), f"{relative} is missing"
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC), f"{relative} is not a PNG"
        assert 20_000 < len(data) < 2_000_000, f"{relative}: {len(data)} bytes"
    on_disk = {path.relative_to(DOC.parent).as_posix() for path in (REPO / "docs/img").glob("*.png")}
    assert on_disk <= set(shown), f"pictures nobody shows: {sorted(on_disk - set(shown))}"
    assert "Grafana cannot run" in doc, "say why the pictures are not Grafana screenshots"
