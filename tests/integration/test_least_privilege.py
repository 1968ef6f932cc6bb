"""The service's own database role can append history but never rewrite it, nor switch the guards off."""

from __future__ import annotations

import psycopg
import pytest

from tests.api import fund, open_account, post, transfer


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount = amount + 1",
        "DELETE FROM postings",
        "UPDATE transactions SET description = 'edited'",
        "DELETE FROM transactions",
        "TRUNCATE postings",
        "UPDATE accounts SET min_balance = NULL",
        "DELETE FROM accounts",
        "ALTER TABLE postings DISABLE TRIGGER USER",
        "SET session_replication_role = replica",
        "DROP TRIGGER postings_checked ON postings",
    ],
)
async def test_the_service_role_cannot_edit_history(client, service_database_url, statement) -> None:
    await open_account(client, "world", min_balance=None)
    await open_account(client, "a")
    await fund(client, "a", 100)
    assert (await post(client, transfer("a", "world", 40))).status == 201
    with psycopg.connect(service_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("ledger_app",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        amounts = conn.execute("SELECT sum(amount), count(*) FROM postings").fetchone()
    assert amounts == (0, 4)
