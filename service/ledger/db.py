"""The connection pool, and the one boundary where database errors become ledger refusals."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson

from ledger import errors, telemetry

# SQLSTATEs raised by the posting engine (migrations/0002_post_transaction.sql).
_ENGINE_REFUSALS: dict[str, type[errors.LedgerError]] = {
    "LDUNK": errors.UnknownAccount,
    "LDCUR": errors.CurrencyMismatch,
    "LDUNB": errors.UnbalancedTransaction,
    "LDINS": errors.InsufficientFunds,
    "LDIDR": errors.IdempotencyKeyReused,
    "LDREV": errors.AlreadyReversed,
}

# Named constraints whose violation is a client's mistake, not a bug.
_CONSTRAINT_REFUSALS: dict[str, type[errors.LedgerError]] = {
    "accounts_code_unique": errors.AccountExists,
    "transactions_reference_unique": errors.DuplicateReference,
    "transactions_reverses_unique": errors.AlreadyReversed,
    "accounts_balance_floor": errors.InsufficientFunds,
}

_ENGINE_DETAILS: dict[str, str] = {
    "LDUNK": "no account with code {}",
    "LDCUR": "account {} holds another currency",
    "LDUNB": "the postings in {} do not sum to zero",
    "LDINS": "account {} would go below its minimum balance",
}

# The database is unreachable, restarting, overloaded or too slow: the client may retry (same key).
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map a database error to the refusal it means; anything unexpected propagates unchanged."""
    try:
        yield
    except asyncpg.exceptions.PostgresError as exc:
        sqlstate = getattr(exc, "sqlstate", None) or ""
        constraint = getattr(exc, "constraint_name", None) or ""
        # ledger_post_batch names the refused transaction of an all-or-nothing batch by its index (HINT).
        hint = getattr(exc, "hint", None) or ""
        where = f"/transactions/{int(hint) - 1}: " if hint.isdigit() else ""
        if sqlstate in _ENGINE_REFUSALS:
            subject = getattr(exc, "detail", None) or ""
            template = _ENGINE_DETAILS.get(sqlstate)
            kind = _ENGINE_REFUSALS[sqlstate]
            raise kind(where + (template.format(subject) if template else kind.title)) from None
        if constraint in _CONSTRAINT_REFUSALS:
            kind = _CONSTRAINT_REFUSALS[constraint]
            raise kind(where + kind.title) from None
        if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
            # Only the idempotency key claim runs with a lock_timeout (0002_post_transaction.sql).
            raise errors.IdempotencyKeyInUse("a request with this key is still in flight; retry shortly") from None
        if isinstance(exc, asyncpg.exceptions.NumericValueOutOfRangeError):
            raise errors.ValidationFailed(
                [errors.FieldError("/postings", "a balance would leave the signed 64-bit range")]
            ) from None
        if isinstance(exc, _UNAVAILABLE):
            raise errors.Unavailable("the database did not answer in time") from None
        raise
    except _UNAVAILABLE:
        raise errors.Unavailable("the database is unreachable") from None


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=_encode_json, decoder=orjson.loads, schema="pg_catalog")
    conn.add_query_logger(telemetry.query_logger)


async def _reset_on_release(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset is a round trip on every release (unlock advisory locks, close cursors,
    UNLISTEN, RESET ALL): about a tenth of the service's CPU per request. Nothing here leaves session state
    behind (settings are transaction-local, no cursor or LISTEN on pool connections, the chainer unlocks its
    advisory lock itself), so only a connection given back inside a transaction needs work: roll it back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect(database_url: str, *, application_name: str = "ledger-listener") -> asyncpg.Connection:
    """A connection outside the pool, for LISTEN (which a pooled connection must not keep)."""
    return await asyncpg.connect(database_url, server_settings={"application_name": application_name}, timeout=5)


async def create_pool(
    database_url: str, *, size_max: int, statement_timeout_seconds: float, application_name: str = "ledger"
) -> asyncpg.Pool:
    """A pool that opens connections lazily (min_size=0): the service starts, and answers /readyz with 503,
    while the database is still down."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=0,
        max_size=size_max,
        init=_init_connection,
        reset=_reset_on_release,
        command_timeout=statement_timeout_seconds + 1,
        server_settings={
            "application_name": application_name,
            "statement_timeout": str(int(statement_timeout_seconds * 1000)),
            # A client that vanishes mid-transaction must not keep account locks.
            "idle_in_transaction_session_timeout": str(int(statement_timeout_seconds * 2000)),
        },
    )
    assert pool is not None
    telemetry.watch_pool(pool)
    return pool


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool, *, timeout_seconds: float) -> AsyncIterator[asyncpg.Connection]:
    """Acquire with a bound, so an exhausted pool or a dead database gives a prompt 503, never a hang."""
    with translate_errors():
        started = time.perf_counter()
        async with pool.acquire(timeout=timeout_seconds) as conn:
            telemetry.db_pool_acquire_duration.observe(time.perf_counter() - started)
            yield conn
