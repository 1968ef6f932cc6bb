"""API keys: random secrets shown once, stored as SHA-256, with scopes, optional expiry and revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ledger import sql
from ledger.audit import Actor
from ledger.db import translate_errors
from ledger.errors import FieldError, Forbidden, NotFound, Unauthorized, ValidationFailed
from ledger.model import Page, new_transaction_id
from ledger.pagination import decode_cursor, encode_cursor

SCOPES = ("read", "write", "admin")
# Each scope includes the ones before it: a write key may read, an admin key may do anything.
_SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
SECRET_PREFIX = "ldg_"  # noqa: S105 (a public prefix, not a secret)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return max(_SCOPE_RANK[s] for s in self.scopes) >= _SCOPE_RANK[scope]


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: ApiKey
    secret: str


def new_secret() -> str:
    """256 random bits, URL-safe, with a prefix that secret scanners and humans recognise."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=list(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def check_new_key(*, name: str, scopes: list[str], expires_at: datetime | None) -> None:
    errors: list[FieldError] = []
    if not 1 <= len(name) <= 100:
        errors.append(FieldError("/name", "must be 1..100 characters"))
    if not scopes or any(scope not in SCOPES for scope in scopes) or len(set(scopes)) != len(scopes):
        errors.append(FieldError("/scopes", f"must be distinct values of {', '.join(SCOPES)}"))
    if expires_at is not None and expires_at <= datetime.now(UTC):
        errors.append(FieldError("/expires_at", "must be in the future"))
    if errors:
        raise ValidationFailed(errors)


async def create_key(
    conn: asyncpg.Connection,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    actor: Actor,
    secret: str | None = None,
) -> NewApiKey | None:
    """Create a key; returns it with its secret (shown this once), or None if that secret already exists."""
    check_new_key(name=name, scopes=scopes, expires_at=expires_at)
    secret = secret or new_secret()
    with translate_errors():
        row = await conn.fetchrow(
            sql.INSERT_API_KEY, new_transaction_id(), name, scopes, secret_digest(secret), expires_at,
            actor.name, actor.request_id, actor.trace_id,
        )  # fmt: skip
    return NewApiKey(_key(row), secret) if row else None


async def authenticate(conn: asyncpg.Connection, *, secret: str) -> ApiKey:
    """The active key with this secret, or Unauthorized (the same answer for unknown, revoked, expired)."""
    digest = secret_digest(secret)
    with translate_errors():
        row = await conn.fetchrow(sql.SELECT_API_KEY_BY_DIGEST, digest)
    # The lookup is by digest, so its timing says nothing about the secret; the comparison is constant-time
    # anyway, so that a future change of lookup cannot turn into an oracle.
    if row is None or not hmac.compare_digest(row["secret_sha256"], digest):
        raise Unauthorized("the API key is not valid")
    key = _key(row)
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= datetime.now(UTC)):
        raise Unauthorized("the API key is not valid")
    return key


def require_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise Forbidden(f"this operation needs the {scope!r} scope")


async def list_keys(conn: asyncpg.Connection, *, limit: int, cursor: str | None) -> Page[ApiKey]:
    after = uuid.UUID(int=0)
    if cursor:
        try:
            after = uuid.UUID(decode_cursor(cursor))
        except ValueError:
            after = uuid.UUID(int=2**128 - 1)
    with translate_errors():
        rows = await conn.fetch(sql.LIST_API_KEYS, after, limit + 1)
    keys = [_key(row) for row in rows[:limit]]
    return Page(keys, encode_cursor(str(keys[-1].id)) if len(rows) > limit else None)


async def revoke_key(conn: asyncpg.Connection, *, key_id: uuid.UUID, actor: Actor) -> ApiKey:
    """Revoke at once (the next request with it is refused); revoking twice answers the same key."""
    with translate_errors():
        row = await conn.fetchrow(sql.REVOKE_API_KEY, key_id, actor.name, actor.request_id, actor.trace_id)
        if row is None:
            row = await conn.fetchrow(sql.SELECT_API_KEY, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    return _key(row)


async def ensure_bootstrap_key(conn: asyncpg.Connection, *, secret: str) -> None:
    """Make sure an admin key with exactly this secret exists (compose, CI, first runs). A bootstrap key an
    operator has revoked stays revoked."""
    await create_key(conn, name="bootstrap", scopes=["admin"], expires_at=None, actor=Actor("bootstrap"),
                     secret=secret)  # fmt: skip
