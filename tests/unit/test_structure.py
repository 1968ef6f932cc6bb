"""Rules of the codebase's shape that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ledger import db, errors

SERVICE = Path(__file__).resolve().parents[2] / "service" / "ledger"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_domain_never_imports_aiohttp() -> None:
    domain = [p for p in SERVICE.glob("*.py") if p.name != "app.py"]
    assert len(domain) > 10
    offenders = {p.name for p in domain if any(n.split(".")[0] == "aiohttp" for n in _imports(p))}
    assert offenders == set()


def test_sql_is_never_built_with_f_strings_outside_the_sql_module() -> None:
    pattern = re.compile(r'f"""|f"\s*(SELECT|INSERT|UPDATE|DELETE)\b', re.IGNORECASE)
    offenders = [p.name for p in SERVICE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_every_refusal_has_a_unique_slug_and_a_4xx_or_5xx_status() -> None:
    kinds = errors.all_problem_classes()
    assert len({k.slug for k in kinds}) == len(kinds)
    assert all(400 <= k.status < 600 for k in kinds)


def test_every_sqlstate_the_engine_raises_is_mapped_or_a_bug() -> None:
    """A refusal raised in SQL but left unmapped would reach the client as a 500."""
    raised = set()
    for migration in (SERVICE / "migrations").glob("*.sql"):
        raised |= set(re.findall(r"ERRCODE = '(LD[A-Z]{3})'", migration.read_text()))
    # LDAPP (append-only) and LDCHN (chain/balance mismatch) mean the service itself is broken: 500.
    assert raised - set(db._ENGINE_REFUSALS) == {"LDAPP", "LDCHN"}
    assert set(db._ENGINE_REFUSALS) <= raised


def test_every_constraint_mapped_to_a_refusal_exists() -> None:
    ddl = "".join(p.read_text() for p in (SERVICE / "migrations").glob("*.sql"))
    for constraint in db._CONSTRAINT_REFUSALS:
        assert constraint in ddl
