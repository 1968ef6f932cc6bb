"""The README is the front door: it must list every problem slug and every configuration variable."""

from __future__ import annotations

import re
from pathlib import Path

from ledger import errors

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_error_catalogue_lists_every_slug_with_its_status_in_order() -> None:
    rows = re.findall(r"^\| (\d{3}) \| `([a-z-]+)` \|", README, flags=re.MULTILINE)
    assert rows == [(str(kind.status), kind.slug) for kind in errors.all_problem_classes()]


def test_configuration_table_lists_every_variable_the_service_reads() -> None:
    read = set(re.findall(r'"(LEDGER_[A-Z_]+)"', (ROOT / "service/ledger/config.py").read_text()))
    documented = set(re.findall(r"^\| `(LEDGER_[A-Z_]+)` \|", README, flags=re.MULTILINE))
    assert read == documented
