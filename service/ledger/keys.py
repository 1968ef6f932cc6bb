"""API keys: random secrets shown once, stored as SHA-256, with scopes, optional expiry and revocation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ledger import sql
from ledger.audit import Actor
from ledger.db import translate_errors
from ledger.errors import FieldError, Forbidden, NotFound, Unauthorized, ValidationFailed
from ledger.model import Page, new_transaction_id
from ledger.pagination import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

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


KEY_CHANGES_CHANNEL = "ledger_api_keys"  # migrations/0005_api_key_notify.sql


class KeyCache:
    """Authenticated keys by secret digest, so that a request costs no database round trip for its key.

    Trusted only while `live`: the service listens for key changes (`listen_for_key_changes`) and drops
    everything on each one, so a revocation from any process takes effect at once. While the listener is
    not connected, nothing is cached. Entries also age out after `ttl_seconds`, a backstop; expiry is checked
    on every use. Unknown secrets are never cached.

    A lookup that was in flight while the cache was cleared may have read the key before the change: its
    result is not cached (`generation` tells), or a revocation could be undone by a request that started
    just before it."""

    def __init__(self, *, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self.live = False
        self.generation = 0
        self._entries: dict[bytes, tuple[ApiKey, float]] = {}

    def get(self, digest: bytes) -> ApiKey | None:
        entry = self._entries.get(digest)
        if entry is None or not self.live:
            return None
        key, fetched = entry
        if time.monotonic() - fetched > self.ttl_seconds:
            del self._entries[digest]
            return None
        return key

    def put(self, digest: bytes, key: ApiKey, *, read_in_generation: int) -> None:
        if self.live and self.ttl_seconds > 0 and read_in_generation == self.generation:
            self._entries[digest] = (key, time.monotonic())

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def set_live(self, live: bool) -> None:
        self.clear()
        self.live = live


async def authenticate_cached(conn_factory: Callable[[], Any], cache: KeyCache, *, secret: str) -> ApiKey:
    """`authenticate`, through the cache; `conn_factory` gives an async context manager for a connection,
    entered only on a miss."""
    digest = secret_digest(secret)
    key = cache.get(digest)
    if key is None:
        generation = cache.generation
        async with conn_factory() as conn:
            key = await authenticate(conn, secret=secret)
        cache.put(digest, key, read_in_generation=generation)
    elif key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise Unauthorized("the API key is not valid")
    return key


async def listen_for_key_changes(
    connect: Callable[[], Awaitable[asyncpg.Connection]], cache: KeyCache, *, retry_seconds: float = 1.0
) -> None:
    """Keep a LISTEN connection open for as long as the service runs; the cache is live only while it is."""
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await connect()
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(KEY_CHANGES_CHANNEL, lambda *_args: cache.clear())
            cache.set_live(True)
            await lost.wait()
        except asyncio.CancelledError:
            raise
        except Exception:  # database down or restarting: no caching until the listener is back
            log.warning("API key change listener interrupted", exc_info=True)
        finally:
            cache.set_live(False)
            if conn is not None and not conn.is_closed():
                await conn.close(timeout=1)
        await asyncio.sleep(retry_seconds)
