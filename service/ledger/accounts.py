"""Opening and reading accounts."""

from __future__ import annotations

from typing import Any

import asyncpg

from ledger import sql
from ledger.audit import Actor
from ledger.db import translate_errors
from ledger.errors import FieldError, NotFound, ValidationFailed
from ledger.model import Account, Page, valid_account_code
from ledger.money import CURRENCY_PATTERN, is_int64
from ledger.pagination import decode_cursor, encode_cursor


def _account(row: asyncpg.Record) -> Account:
    return Account(
        code=row["code"],
        currency=row["currency"],
        min_balance=row["min_balance"],
        balance=row["balance"],
        metadata=row["metadata"],
        created_at=row["created_at"],
    )


def check_new_account(*, code: str, currency: str, min_balance: int | None) -> None:
    errors: list[FieldError] = []
    if not valid_account_code(code):
        errors.append(FieldError("/code", "must be lower-case segments of [a-z0-9_-] joined by ':', 1..128 chars"))
    if not CURRENCY_PATTERN.fullmatch(currency):
        errors.append(FieldError("/currency", "must match ^[A-Z][A-Z0-9]{2,9}$"))
    if min_balance is not None and not (is_int64(min_balance) and min_balance <= 0):
        errors.append(FieldError("/min_balance", "must be an integer <= 0 in signed 64-bit range, or null"))
    if errors:
        raise ValidationFailed(errors)


async def create_account(
    conn: asyncpg.Connection,
    *,
    code: str,
    currency: str,
    min_balance: int | None,
    metadata: dict[str, Any],
    actor: Actor,
) -> Account:
    check_new_account(code=code, currency=currency, min_balance=min_balance)
    with translate_errors():
        row = await conn.fetchrow(
            sql.INSERT_ACCOUNT, code, currency, min_balance, metadata, actor.name, actor.request_id, actor.trace_id
        )
    assert row is not None
    return _account(row)


async def get_account(conn: asyncpg.Connection, *, code: str) -> Account:
    if not valid_account_code(code):
        raise NotFound(f"no account with code {code!r}")
    with translate_errors():
        row = await conn.fetchrow(sql.SELECT_ACCOUNT, code)
    if row is None:
        raise NotFound(f"no account with code {code!r}")
    return _account(row)


async def account_id(conn: asyncpg.Connection, *, code: str) -> tuple[int, str]:
    """The internal id and currency of an account, or NotFound."""
    if not valid_account_code(code):
        raise NotFound(f"no account with code {code!r}")
    with translate_errors():
        row = await conn.fetchrow(sql.SELECT_ACCOUNT_ID, code)
    if row is None:
        raise NotFound(f"no account with code {code!r}")
    return row["id"], row["currency"]


async def list_accounts(conn: asyncpg.Connection, *, prefix: str, limit: int, cursor: str | None) -> Page[Account]:
    after = decode_cursor(cursor) if cursor else ""
    with translate_errors():
        rows = await conn.fetch(sql.LIST_ACCOUNTS, prefix, after, limit + 1)
    accounts = [_account(row) for row in rows[:limit]]
    next_cursor = encode_cursor(accounts[-1].code) if len(rows) > limit else None
    return Page(accounts, next_cursor)
