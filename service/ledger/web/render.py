"""Domain values to JSON response bodies (the shapes of ledger.web.schemas)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web

from ledger.audit import AuditEntry
from ledger.keys import ApiKey
from ledger.model import Account, Balance, Page, StatementLine, Transaction

T = TypeVar("T")


def _default(value: Any) -> str:
    # asyncpg returns its own UUID type, which orjson does not know; its str() is the canonical form.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, default=_default), status=status, content_type="application/json", headers=headers
    )


def account(value: Account) -> dict[str, Any]:
    return {
        "code": value.code,
        "currency": value.currency,
        "min_balance": value.min_balance,
        "balance": value.balance,
        "metadata": value.metadata,
        "created_at": value.created_at,
    }


def transaction(value: Transaction) -> dict[str, Any]:
    return {
        "id": value.id,
        "postings": [
            {"account": p.account, "amount": p.amount, "currency": p.currency, "balance_after": p.balance_after}
            for p in value.postings
        ],
        "description": value.description,
        "reference": value.reference,
        "metadata": value.metadata,
        "created_at": value.created_at,
        "reverses": value.reverses,
    }


def statement_line(value: StatementLine) -> dict[str, Any]:
    return {
        "transaction_id": value.transaction_id,
        "amount": value.amount,
        "currency": value.currency,
        "balance_after": value.balance_after,
        "description": value.description,
        "created_at": value.created_at,
    }


def balance(value: Balance) -> dict[str, Any]:
    return {"account": value.account, "currency": value.currency, "balance": value.balance, "as_of": value.as_of}


def api_key(value: ApiKey) -> dict[str, Any]:
    return {
        "id": value.id,
        "name": value.name,
        "scopes": value.scopes,
        "created_at": value.created_at,
        "expires_at": value.expires_at,
        "revoked_at": value.revoked_at,
    }


def audit_entry(value: AuditEntry) -> dict[str, Any]:
    return {
        "sequence": value.sequence,
        "occurred_at": value.occurred_at,
        "actor": value.actor,
        "action": value.action,
        "subject": value.subject,
        "request_id": value.request_id,
        "trace_id": value.trace_id,
        "payload": value.payload,
        "previous_hash": value.previous_hash.hex(),
        "hash": value.hash.hex(),
    }


def page(value: Page[T], item: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return {"data": [item(x) for x in value.items], "next_cursor": value.next_cursor}
