"""The tamper-evident audit log.

Writers append to `audit_outbox` in the same database transaction as the change they record, and never
wait for one another. One chainer per database (the holder of a PostgreSQL advisory lock, so two service
processes never chain at once) moves finished entries into `audit_log` in small batches, giving each a
gap-free `sequence` and `hash = SHA-256(previous_hash || canonical entry)`. `verify_chain` recomputes every
hash and names the first broken link. The chain lag (age of the oldest unchained entry) is bounded by the
chainer's interval plus the longest running transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from ledger import sql
from ledger.model import Page
from ledger.pagination import decode_int_cursor, encode_cursor

log = logging.getLogger(__name__)

GENESIS_HASH = bytes(32)
# Any constant distinct from other advisory locks in the database: "ledger-audit-chainer" as 63 bits.
CHAINER_LOCK_ID = int.from_bytes(hashlib.sha256(b"ledger-audit-chainer").digest()[:8], "big") >> 1


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change: an API key (`key:<id>`) or an operator's CLI (`cli`), and the request's ids."""

    name: str
    request_id: str | None = None
    trace_id: str | None = None


SYSTEM = Actor("system")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    sequence: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str
    request_id: str | None
    trace_id: str | None
    payload: dict[str, Any]
    previous_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class ChainStatus:
    pending: int
    lag_seconds: float


def entry_hash(previous_hash: bytes, entry: dict[str, Any]) -> bytes:
    """SHA-256 over the previous hash and the entry's canonical JSON (sorted keys, UTC microsecond time)."""
    payload = entry["payload"]
    if isinstance(payload, str):  # a connection without the JSON codec (ledger.db) hands jsonb over as text
        payload = orjson.loads(payload)
    canonical = {
        "sequence": entry["sequence"],
        "occurred_at": entry["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": entry["actor"],
        "action": entry["action"],
        "subject": entry["subject"],
        "request_id": entry["request_id"],
        "trace_id": entry["trace_id"],
        "payload": payload,
    }
    return hashlib.sha256(previous_hash + orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


async def chain_pending(conn: asyncpg.Connection, *, batch_size: int = 500) -> int:
    """Chain one batch of finished outbox entries; return how many were chained."""
    async with conn.transaction():
        rows = await conn.fetch(sql.SELECT_FINISHED_OUTBOX, batch_size)
        if not rows:
            return 0
        last = await conn.fetchrow(sql.SELECT_LAST_AUDIT_LINK)
        sequence, previous = (last["sequence"], last["hash"]) if last else (0, GENESIS_HASH)
        chained: list[tuple[Any, ...]] = []
        for row in rows:
            sequence += 1
            entry = {**dict(row), "sequence": sequence}
            digest = entry_hash(previous, entry)
            chained.append((sequence, row["occurred_at"], row["actor"], row["action"], row["subject"],
                            row["request_id"], row["trace_id"], row["payload"], previous, digest))  # fmt: skip
            previous = digest
        await conn.executemany(sql.INSERT_AUDIT_LOG, chained)
        await conn.execute(sql.DELETE_OUTBOX, [row["id"] for row in rows])
    return len(rows)


class Chainer:
    """The background chainer: campaigns for the advisory lock, then chains every `interval_seconds`."""

    def __init__(self, pool: asyncpg.Pool, *, interval_seconds: float) -> None:
        self._pool = pool
        self._interval = interval_seconds
        self.is_leader = False

    async def run(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    if await conn.fetchval(sql.TRY_ADVISORY_LOCK, CHAINER_LOCK_ID):
                        try:
                            self.is_leader = True
                            await self._chain_forever(conn)
                        finally:
                            self.is_leader = False
                            await _unlock_or_drop(conn)
            except asyncio.CancelledError:
                raise
            except Exception:  # database down or restarting: campaign again shortly
                log.warning("audit chainer interrupted", exc_info=True)
            await asyncio.sleep(self._interval * 5)

    async def _chain_forever(self, conn: asyncpg.Connection) -> None:
        while True:
            while await chain_pending(conn) > 0:
                pass
            await asyncio.sleep(self._interval)


async def _unlock_or_drop(conn: asyncpg.Connection) -> None:
    """Give up leadership. The pool does not reset session state on release (ledger/db.py), so a lock that
    cannot be released this way must not go back to the pool on its connection: close that connection."""
    try:
        await conn.execute(sql.ADVISORY_UNLOCK, CHAINER_LOCK_ID)
    except BaseException:
        conn.terminate()
        raise


@contextlib.asynccontextmanager
async def running_chainer(pool: asyncpg.Pool, *, interval_seconds: float) -> AsyncIterator[Chainer]:
    chainer = Chainer(pool, interval_seconds=interval_seconds)
    task = asyncio.create_task(chainer.run(), name="audit-chainer")
    try:
        yield chainer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        sequence=row["sequence"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        request_id=row["request_id"],
        trace_id=row["trace_id"],
        payload=row["payload"],
        previous_hash=row["previous_hash"],
        hash=row["hash"],
    )


async def list_entries(conn: asyncpg.Connection, *, after: int, limit: int) -> Page[AuditEntry]:
    rows = await conn.fetch(sql.SELECT_AUDIT_LOG, after, limit + 1)
    entries = [_entry(row) for row in rows[:limit]]
    return Page(entries, encode_cursor(entries[-1].sequence) if len(rows) > limit else None)


def after_from_cursor(cursor: str | None, after: int | None) -> int:
    if cursor:
        return decode_int_cursor(cursor)
    return after or 0


async def chain_status(conn: asyncpg.Connection) -> ChainStatus:
    row = await conn.fetchrow(sql.SELECT_CHAIN_STATUS)
    assert row is not None
    return ChainStatus(pending=row["pending"], lag_seconds=float(row["lag_seconds"]))


async def verify_chain(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Recompute the chain; return (subject, problem) for the first broken link (or a gap), if any."""
    previous, expected_sequence = GENESIS_HASH, 1
    async for row in conn.cursor(sql.SELECT_AUDIT_CHAIN, prefetch=2000):
        subject = f"audit entry {row['sequence']}"
        if row["sequence"] != expected_sequence:
            return [(f"audit entry {expected_sequence}", f"missing: the chain jumps to {row['sequence']}")]
        if row["previous_hash"] != previous:
            return [(subject, "previous_hash does not match the hash of the entry before it")]
        if entry_hash(previous, dict(row)) != row["hash"]:
            return [(subject, "hash does not match its content: the entry was edited")]
        previous, expected_sequence = row["hash"], expected_sequence + 1
    return []
