"""`verify` passes on a ledger written by the service and names what is wrong on one edited behind its back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

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


def _hand_written_transfer(conn: psycopg.Connection, amounts: tuple[int, int], *, update_balances: bool = True,
                           chain_offset: int = 0, extra_to: str | None = None) -> None:  # fmt: skip
    """A transfer from `a` to `b` written by hand, the way bench/sql/interactive.sql does, with knobs to
    get one thing wrong."""
    tx = extra_to or str(uuid.uuid4())
    if extra_to is None:
        conn.execute("INSERT INTO transactions (id, posting_count, created_at) VALUES (%s, 2, now())", (tx,))
        conn.execute("INSERT INTO audit_outbox (actor, action, subject) VALUES ('test', 'transaction.posted', %s)",
                     (tx,))  # fmt: skip
    rows = []
    for code, amount in zip(("a", "b"), amounts, strict=True):
        account_id, balance, count = conn.execute(
            "SELECT id, balance, posting_count FROM accounts WHERE code = %s", (code,)
        ).fetchone()
        if update_balances:
            conn.execute("UPDATE accounts SET balance = balance + %s, posting_count = posting_count + 1 "
                         "WHERE id = %s", (amount, account_id))  # fmt: skip
        rows.append((account_id, amount, balance + amount + chain_offset, count + 1))
    position = 0 if extra_to is None else 50
    conn.execute(
        "INSERT INTO postings (transaction_id, position, account_id, currency, amount, balance_after, "
        "account_sequence, created_at) VALUES (%s, %s, %s, 'BDT', %s, %s, %s, now()), "
        "(%s, %s, %s, 'BDT', %s, %s, %s, now())",
        (tx, position, *rows[0], tx, position + 1, *rows[1]),
    )


@pytest.mark.parametrize(
    ("knobs", "sqlstate"),
    [
        ({"amounts": (-5, 6)}, "LDUNB"),  # does not sum to zero
        ({"amounts": (-5, 5), "chain_offset": 1}, "LDCHN"),  # balance_after off the chain
        ({"amounts": (-5, 5), "update_balances": False}, "LDCHN"),  # balances not updated first
        ({"amounts": (-5, 5), "extra_to": "old"}, "LDUNB"),  # two more postings for an old transaction
    ],
)
async def test_hand_written_postings_are_checked_by_the_database(busy_ledger, clean_database, knobs, sqlstate):
    with psycopg.connect(clean_database) as conn:
        _hand_written_transfer(conn, (-5, 5))  # the control: a correct one passes
        conn.commit()
        if knobs.get("extra_to") == "old":
            knobs["extra_to"] = str(
                conn.execute("SELECT id FROM transactions ORDER BY created_at LIMIT 1").fetchone()[0]
            )

        def attempt() -> None:
            _hand_written_transfer(conn, **knobs)
            conn.commit()

        with pytest.raises(psycopg.Error) as refused:
            attempt()
        assert refused.value.sqlstate == sqlstate
    assert await _violations(clean_database) == []
