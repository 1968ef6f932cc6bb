"""An account's statement (its postings, newest first, each with balance_after) and its balance at an instant."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from ledger import sql
from ledger.accounts import account_id
from ledger.db import translate_errors
from ledger.model import Balance, Page, StatementLine
from ledger.pagination import decode_int_cursor, encode_cursor


async def statement(conn: asyncpg.Connection, *, account: str, limit: int, cursor: str | None) -> Page[StatementLine]:
    internal_id, _currency = await account_id(conn, code=account)
    before = decode_int_cursor(cursor) if cursor else 2**63 - 1
    with translate_errors():
        rows = await conn.fetch(sql.SELECT_ACCOUNT_POSTINGS, internal_id, before, limit + 1)
    lines = [
        StatementLine(
            transaction_id=row["transaction_id"],
            amount=row["amount"],
            currency=row["currency"],
            balance_after=row["balance_after"],
            description=row["description"],
            created_at=row["created_at"],
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(rows[limit - 1]["account_sequence"]) if len(rows) > limit else None
    return Page(lines, next_cursor)


async def balance_as_of(conn: asyncpg.Connection, *, account: str, as_of: datetime | None) -> Balance:
    """The balance after the account's last posting at or before `as_of` (now when None); 0 before any."""
    internal_id, currency = await account_id(conn, code=account)
    instant = as_of or datetime.now(UTC)
    with translate_errors():
        balance = await conn.fetchval(sql.SELECT_BALANCE_AS_OF, internal_id, instant)
    return Balance(account=account, currency=currency, balance=balance or 0, as_of=instant)
