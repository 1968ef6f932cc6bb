"""`verify` passes on a ledger written by the service and names what is wrong on one edited behind its back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import psycopg
import pytest

from ledger.verify import CHECKS, report, verify
from tests.api import fund, open_account, post, transfer


@pytest.fixture
async def busy_ledger(client):
    await open_account(client, "world", min_balance=None)
    for name in ("a", "b", "c"):
        await open_account(client, name)
        await fund(client, name, 1000)
    await post(client, transfer("a", "b", 300))
    body = await (await post(client, transfer("b", "c", 500))).json()
    await client.post(f"/v1/transactions/{body['id']}/reverse", headers={"Idempotency-Key": "r"})
    batch = {"transactions": [{"postings": transfer("a", "c", 1)}, {"postings": transfer("c", "a", 1)}]}
    assert (await client.post("/v1/transactions/batch", json=batch, headers={"Idempotency-Key": "bt"})).status == 201
    return client


async def _violations(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return sorted({v.check for v in await verify(conn)})
    finally:
        await conn.close()


def _tamper(url: str, *statements: str) -> None:
    """Edit as a superuser with triggers off: what an operator's stray UPDATE or a restore bug could do."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


async def test_verify_passes_on_a_ledger_written_by_the_service(busy_ledger, clean_database) -> None:
    conn = await asyncpg.connect(clean_database)
    try:
        violations = await verify(conn)
    finally:
        await conn.close()
    assert violations == [], report(violations)
    assert report([]).startswith("ledger verified")


@pytest.mark.parametrize(
    ("statements", "broken"),
    [
        (["UPDATE accounts SET balance = balance + 1 WHERE code = 'a'"],
         ["balances_match_postings", "currencies_sum_to_zero"]),
        (["UPDATE postings SET amount = amount + 5, balance_after = balance_after + 5 "
          "WHERE account_id = (SELECT id FROM accounts WHERE code = 'c') AND account_sequence = 1"],
         ["balance_after_chain", "transactions_balanced"]),
        # The CHECK constraint stops a balance below its floor even for a superuser: rewrite history instead.
        (["UPDATE postings SET balance_after = -1 "
          "WHERE account_id = (SELECT id FROM accounts WHERE code = 'c') AND account_sequence = 1"],
         ["balance_after_chain", "floors_held"]),
        (["DELETE FROM postings WHERE position = 1 AND transaction_id = "
          "(SELECT id FROM transactions WHERE reverses IS NOT NULL)"],
         ["balances_match_postings", "reversals_mirror", "transaction_posting_counts", "transactions_balanced"]),
        (["DELETE FROM transactions WHERE reverses IS NOT NULL"], ["idempotency_keys"]),
        (["INSERT INTO transaction_batches SELECT id, ARRAY[id, gen_random_uuid()], now() FROM transactions "
          "WHERE reverses IS NOT NULL"], ["batches_complete"]),
    ],
)  # fmt: skip
async def test_verify_names_each_invariant_broken_behind_the_services_back(
    busy_ledger, clean_database, statements, broken
) -> None:
    _tamper(clean_database, *statements)
    found = await _violations(clean_database)
    for check in broken:
        assert check in found, found


async def test_database_refuses_edits_that_verify_would_catch(busy_ledger, clean_database) -> None:
    """Without the superuser's replica trick, the triggers stop every such edit."""
    with psycopg.connect(clean_database, autocommit=True) as conn:
        for statement in (
            "UPDATE postings SET amount = 1",
            "DELETE FROM transactions",
            "TRUNCATE postings",
            "UPDATE accounts SET balance = balance + 1 WHERE code = 'a'",
            "DELETE FROM accounts WHERE code = 'a'",
            "INSERT INTO transactions (id, posting_count, created_at) VALUES (gen_random_uuid(), 2, now())",
            "DELETE FROM transaction_batches",
            "INSERT INTO transaction_batches SELECT id, ARRAY[id, id], now() FROM transactions "
            "WHERE reverses IS NOT NULL",
        ):
            with pytest.raises(psycopg.Error):
                conn.execute(statement)
    assert await _violations(clean_database) == []


def _cli_verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger", "verify"], env=env, capture_output=True, text=True)


async def test_verify_cli_exits_nonzero_with_a_readable_report(busy_ledger, clean_database) -> None:
    env = {**os.environ, "LEDGER_DATABASE_URL": clean_database}
    ok = await asyncio.to_thread(_cli_verify, env)
    assert ok.returncode == 0, ok.stderr
    assert f"({len(CHECKS) + 1} checks)" in ok.stdout
    _tamper(clean_database, "UPDATE accounts SET balance = balance + 7 WHERE code = 'b'")
    bad = await asyncio.to_thread(_cli_verify, env)
    assert bad.returncode == 1
    assert "balances_match_postings" in bad.stdout and "b: balance" in bad.stdout
