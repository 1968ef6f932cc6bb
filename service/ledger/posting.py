"""The posting engine: post transactions, reverse one, read them back.

The work happens in one database call, for one transaction or many (`ledger_post_batch`, see
migrations/0006_post_batch.sql; reversals use `ledger_post_transaction`, 0002): it claims the idempotency
keys, locks the accounts in id order, checks and updates balances and writes the postings while no Python
code runs between the locks. `post_each` posts several independent transactions in one call (what group
commit, ledger/group_commit.py, sends); each is posted, replayed or refused on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from ledger import errors, sql, telemetry
from ledger.accounts import account_id
from ledger.audit import Actor
from ledger.db import translate_errors
from ledger.errors import LedgerError, NotFound
from ledger.model import NewPosting, Page, Posting, Transaction, check_postings, new_transaction_id, reversal_of
from ledger.pagination import decode_int_cursor, encode_cursor

log = logging.getLogger(__name__)

# Ordered locks make deadlocks impossible by construction; this only absorbs the unforeseen, so that no
# deadlock or serialization failure ever reaches a client as an error.
_RETRIES_MAX = 3

# Refusals that depend on the ledger's state at the time: remembered under the idempotency key, so that a
# retry gets the same answer even after the state changed. (Malformed requests are refused the same way
# every time, so nothing needs remembering for them.)
_REMEMBERED_REFUSALS = (
    errors.UnknownAccount, errors.CurrencyMismatch, errors.UnbalancedTransaction, errors.InsufficientFunds,
    errors.DuplicateReference, errors.AlreadyReversed, errors.ValidationFailed,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """An Idempotency-Key as the engine uses it: scoped to the API key that sent it."""

    scope: str
    key: str
    fingerprint: bytes
    ttl: timedelta = timedelta(hours=24)
    in_flight_wait: timedelta = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class NewTransaction:
    postings: list[NewPosting]
    description: str | None = None
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def audit_payload(self) -> dict[str, Any]:
        return {
            "postings": [{"account": p.account, "amount": p.amount} for p in self.postings],
            "reference": self.reference,
            "reverses": None,
        }


@dataclass(frozen=True, slots=True)
class Submission:
    """One transaction to post on its own, under its own idempotency key, for the request that sent it."""

    transaction: NewTransaction
    idempotency: IdempotencyKey
    actor: Actor
    id: uuid.UUID = field(default_factory=new_transaction_id)


@dataclass(frozen=True, slots=True)
class Posted:
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class Replayed:
    """The key was used before, for the same request: its transaction, or its remembered refusal."""

    transaction_id: uuid.UUID | None
    refusal: LedgerError | None


@dataclass(frozen=True, slots=True)
class Refused:
    refusal: LedgerError


Outcome = Posted | Replayed | Refused


def request_fingerprint(*, method: str, route: str, body: Any) -> bytes:
    """SHA-256 of method, route and the canonical (sorted-key) body: what makes two requests 'the same'."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(method.encode() + b"\n" + route.encode() + b"\n" + canonical).digest()


async def post_transaction(
    conn: asyncpg.Connection,
    *,
    postings: list[NewPosting],
    idempotency: IdempotencyKey,
    actor: Actor,
    description: str | None = None,
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
    reverses: uuid.UUID | None = None,
) -> tuple[Transaction, bool]:
    """Post atomically, at most once per idempotency key. Returns the transaction and whether it is a replay
    of an earlier request with the same key; a remembered refusal is raised again, marked `replayed`."""
    if reverses is not None:
        check_postings(postings)
        return await _post_reversal(conn, postings=postings, idempotency=idempotency, actor=actor,
                                    description=description, metadata=metadata or {}, reverses=reverses)  # fmt: skip
    new = NewTransaction(postings, description, reference, metadata or {})
    (outcome,) = await post_each(conn, [Submission(new, idempotency, actor)])
    return await settle(outcome, lambda transaction_id: get_transaction(conn, transaction_id=transaction_id))


async def settle(outcome: Outcome, load: Callable[[uuid.UUID], Awaitable[Transaction]]) -> tuple[Transaction, bool]:
    """An outcome as the API answers it: the transaction and whether it is a replay (a replayed transaction
    is read back with `load`), or the refusal raised."""
    if isinstance(outcome, Posted):
        return outcome.transaction, False
    if outcome.refusal is not None:
        raise outcome.refusal
    assert isinstance(outcome, Replayed) and outcome.transaction_id is not None
    return await load(outcome.transaction_id), True


async def post_each(conn: asyncpg.Connection, submissions: list[Submission]) -> list[Outcome]:
    """Post independent transactions in one database call and transaction; one outcome each, in order.

    A transaction refused without the database (counts, amounts, a non-zero total) is answered so and not
    sent. If the call as a whole fails (a race on a reference or a key, a lock wait, an overflow), each
    transaction is posted alone, so that one request's trouble is never its neighbours'."""
    checked: list[Outcome | None] = []
    for submission in submissions:
        try:
            check_postings(submission.transaction.postings)
            checked.append(None)
        except LedgerError as refusal:
            checked.append(Refused(refusal))
    valid = [s for s, outcome in zip(submissions, checked, strict=True) if outcome is None]
    posted = iter(await _post_checked(conn, valid) if valid else [])
    return [outcome if outcome is not None else next(posted) for outcome in checked]


async def _post_checked(conn: asyncpg.Connection, submissions: list[Submission]) -> list[Outcome]:
    if len(submissions) > 1:
        try:
            return await _post_each_call(conn, submissions)
        except (LedgerError, asyncpg.PostgresError):
            log.info("batch fell back to one call per transaction", extra={"fields": {"size": len(submissions)}})
            telemetry.group_commit_fallbacks.inc()
    outcomes: list[Outcome] = []
    for submission in submissions:
        try:
            outcomes.extend(await _post_each_call(conn, [submission]))
        except _REMEMBERED_REFUSALS as refusal:
            try:
                await _remember(conn, submission.idempotency, refusal)
            except LedgerError as answer:
                outcomes.append(Replayed(None, answer) if answer.replayed else Refused(answer))
                continue
            outcomes.append(Refused(refusal))
        except LedgerError as refusal:
            outcomes.append(Refused(refusal))
    return outcomes


async def post_batch(
    conn: asyncpg.Connection, *, transactions: list[NewTransaction], idempotency: IdempotencyKey, actor: Actor
) -> tuple[list[Transaction], bool]:
    """Post all of them or none, in order, in one database call, at most once per idempotency key. Returns
    them and whether this is a replay; a refusal names the first refused transaction by its JSON pointer."""
    problems: list[errors.FieldError] = []
    for index, new in enumerate(transactions):
        try:
            check_postings(new.postings)
        except errors.ValidationFailed as refusal:
            problems.extend(errors.FieldError(f"/transactions/{index}{e.pointer}", e.detail) for e in refusal.errors)
        except LedgerError as refusal:
            raise type(refusal)(f"/transactions/{index}: {refusal.detail}") from None
    if problems:
        raise errors.ValidationFailed(problems)
    submissions = [Submission(new, idempotency, actor) for new in transactions]
    try:
        rows = await _call_batch_engine(conn, submissions, atomic=True)
    except _REMEMBERED_REFUSALS as refusal:
        await _remember(conn, idempotency, refusal)
        raise
    first = rows[0]
    if first["outcome"] == "replayed":
        if first["refusal_body"] is not None:
            raise errors.from_remembered(first["refusal_body"])
        telemetry.record_posted([], reversal=False, replayed=True)
        return await get_batch(conn, first_transaction_id=first["transaction_id"]), True
    posted = []
    for submission, item_rows in zip(submissions, _rows_by_item(rows, len(submissions)), strict=True):
        outcome = _outcome(submission, item_rows)
        assert isinstance(outcome, Posted)
        _record(outcome)
        posted.append(outcome.transaction)
    return posted, False


async def get_batch(conn: asyncpg.Connection, *, first_transaction_id: uuid.UUID) -> list[Transaction]:
    with translate_errors():
        ids = await conn.fetchval(sql.SELECT_BATCH, first_transaction_id)
        if ids is None:
            raise NotFound(f"no batch starting with transaction {first_transaction_id}")
        found = _transactions(await conn.fetch(sql.SELECT_TRANSACTIONS, ids))
    return [found[i] for i in ids]


async def _post_each_call(conn: asyncpg.Connection, submissions: list[Submission]) -> list[Outcome]:
    rows = await _call_batch_engine(conn, submissions, atomic=False)
    outcomes: list[Outcome] = []
    for submission, item_rows in zip(submissions, _rows_by_item(rows, len(submissions)), strict=True):
        outcome = _outcome(submission, item_rows)
        outcomes.append(outcome)
        _record(outcome)
    return outcomes


async def _call_batch_engine(
    conn: asyncpg.Connection, submissions: list[Submission], *, atomic: bool
) -> list[asyncpg.Record]:
    """One `ledger_post_batch` call. All or nothing (`atomic`): the first submission's idempotency key is
    the batch's; otherwise each submission's own key guards it."""
    keys = [submissions[0].idempotency] if atomic else [s.idempotency for s in submissions]
    postings = [(i, p) for i, s in enumerate(submissions, start=1) for p in s.transaction.postings]
    args = (
        atomic,
        [k.scope for k in keys],
        [k.key for k in keys],
        [k.fingerprint for k in keys],
        keys[0].ttl,
        _wait(keys[0]),
        [s.id for s in submissions],
        [s.transaction.description for s in submissions],
        [s.transaction.reference for s in submissions],
        [s.transaction.metadata for s in submissions],
        [s.actor.request_id for s in submissions],
        [s.actor.trace_id for s in submissions],
        [s.transaction.audit_payload() for s in submissions],
        [i for i, _ in postings],
        [p.account for _, p in postings],
        [p.amount for _, p in postings],
        [p.currency for _, p in postings],
        [s.actor.name for s in submissions],
    )
    with telemetry.tracer.start_as_current_span("ledger.post_batch") as span:
        span.set_attribute("ledger.transactions", len(submissions))
        span.set_attribute("ledger.postings", len(postings))
        span.set_attribute("ledger.atomic", atomic)
        return await _call_engine(conn, sql.POST_BATCH, args)


def _rows_by_item(rows: list[asyncpg.Record], count: int) -> list[list[asyncpg.Record]]:
    """The engine's rows, grouped by the (1-based) index of the transaction they answer."""
    grouped: list[list[asyncpg.Record]] = [[] for _ in range(count)]
    for row in rows:
        grouped[row["item"] - 1].append(row)
    return grouped


def _outcome(submission: Submission, rows: list[asyncpg.Record]) -> Outcome:
    first = rows[0]
    if first["outcome"] == "refused":
        refusal = errors.from_remembered(first["refusal_body"])
        refusal.replayed = False
        return Refused(refusal)
    if first["outcome"] == "replayed":
        remembered = first["refusal_body"]
        return Replayed(first["transaction_id"], errors.from_remembered(remembered) if remembered else None)
    new = submission.transaction
    return Posted(
        Transaction(
            id=submission.id,
            postings=[Posting(r["account"], r["amount"], r["currency"], r["balance_after"]) for r in rows],
            description=new.description,
            reference=new.reference,
            metadata=new.metadata,
            created_at=first["created_at"],
            reverses=None,
        )
    )


def _record(outcome: Outcome) -> None:
    if isinstance(outcome, Posted):
        telemetry.record_posted([(p.amount, p.currency) for p in outcome.transaction.postings],
                                reversal=False, replayed=False)  # fmt: skip
    elif isinstance(outcome, Replayed):
        telemetry.record_posted([], reversal=False, replayed=True)


def _wait(idempotency: IdempotencyKey) -> str:
    return f"{int(idempotency.in_flight_wait.total_seconds() * 1000)}ms"


async def _post_reversal(
    conn: asyncpg.Connection,
    *,
    postings: list[NewPosting],
    idempotency: IdempotencyKey,
    actor: Actor,
    description: str | None,
    metadata: dict[str, Any],
    reverses: uuid.UUID,
) -> tuple[Transaction, bool]:
    transaction_id = new_transaction_id()
    audit_payload = {
        "postings": [{"account": p.account, "amount": p.amount} for p in postings],
        "reference": None,
        "reverses": str(reverses),
    }
    args = (
        transaction_id, idempotency.scope, idempotency.key, idempotency.fingerprint, idempotency.ttl,
        _wait(idempotency), [p.account for p in postings], [p.amount for p in postings],
        [p.currency for p in postings], description, None, metadata, reverses, actor.name, actor.request_id,
        actor.trace_id, audit_payload,
    )  # fmt: skip
    with telemetry.tracer.start_as_current_span("ledger.post_transaction") as span:
        span.set_attribute("ledger.postings", len(postings))
        span.set_attribute("ledger.reversal", True)
        try:
            rows = await _call_engine(conn, sql.POST_TRANSACTION, args)
        except _REMEMBERED_REFUSALS as refusal:
            span.set_attribute("ledger.outcome", refusal.slug)
            await _remember(conn, idempotency, refusal)
            raise
        first = rows[0]
        span.set_attribute("ledger.outcome", "replayed" if first["replayed"] else "posted")
    if first["replayed"]:
        if first["refusal_status"] is not None:
            raise errors.from_remembered(first["refusal_body"])
        telemetry.record_posted([], reversal=True, replayed=True)
        return await get_transaction(conn, transaction_id=first["transaction_id"]), True
    transaction = Transaction(
        id=transaction_id,
        postings=[Posting(r["account"], r["amount"], r["currency"], r["balance_after"]) for r in rows],
        description=description,
        reference=None,
        metadata=metadata,
        created_at=first["created_at"],
        reverses=reverses,
    )
    telemetry.record_posted([(p.amount, p.currency) for p in transaction.postings], reversal=True, replayed=False)
    return transaction, False


async def _call_engine(conn: asyncpg.Connection, query: str, args: tuple[Any, ...]) -> list[asyncpg.Record]:
    for attempt in range(1, _RETRIES_MAX + 1):
        try:
            with translate_errors():
                rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        except asyncpg.exceptions.TransactionRollbackError:
            if attempt == _RETRIES_MAX:
                raise
            log.warning("posting retried", extra={"fields": {"attempt": attempt}})
            telemetry.posting_retries.inc()
            await asyncio.sleep(random.uniform(0.001, 0.005 * attempt))  # noqa: S311 (jitter, not crypto)
    raise AssertionError("unreachable")


async def _remember(conn: asyncpg.Connection, idempotency: IdempotencyKey, refusal: LedgerError) -> None:
    """Store the refusal under the key. If a concurrent request with the same key got there first, its
    answer is the one this key gives: raise that instead."""
    with translate_errors():
        stored = await conn.fetchval(
            sql.STORE_IDEMPOTENT_REFUSAL, idempotency.scope, idempotency.key, idempotency.fingerprint,
            refusal.status, refusal.remembered(), idempotency.ttl,
        )  # fmt: skip
        if stored:
            return
        existing = await conn.fetchrow(sql.SELECT_IDEMPOTENCY_KEY, idempotency.scope, idempotency.key)
    if existing is None or existing["fingerprint"] != idempotency.fingerprint:
        raise errors.IdempotencyKeyReused()
    if existing["response_body"] is not None:
        raise errors.from_remembered(existing["response_body"])
    raise errors.IdempotencyKeyInUse("a request with this key has just succeeded; retry to get its answer")


async def reverse_transaction(
    conn: asyncpg.Connection,
    *,
    transaction_id: uuid.UUID,
    idempotency: IdempotencyKey,
    actor: Actor,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[Transaction, bool]:
    """Post the negation of a transaction, once: a second reversal is refused (already-reversed)."""
    original = await get_transaction(conn, transaction_id=transaction_id)
    return await post_transaction(
        conn,
        postings=reversal_of(original),
        idempotency=idempotency,
        actor=actor,
        description=description if description is not None else f"reversal of {original.id}",
        metadata=metadata,
        reverses=original.id,
    )


async def purge_expired_idempotency_keys(conn: asyncpg.Connection, *, batch_size: int = 1000) -> int:
    """Delete expired keys in small batches until none is left; return how many went."""
    purged = 0
    while True:
        status = await conn.execute(sql.PURGE_EXPIRED_IDEMPOTENCY_KEYS, batch_size)
        deleted = int(status.split()[-1])
        purged += deleted
        if deleted < batch_size:
            return purged


def _transactions(rows: list[asyncpg.Record]) -> dict[uuid.UUID, Transaction]:
    found: dict[uuid.UUID, Transaction] = {}
    for row in rows:
        transaction = found.get(row["id"])
        if transaction is None:
            transaction = found[row["id"]] = Transaction(
                id=row["id"],
                postings=[],
                description=row["description"],
                reference=row["reference"],
                metadata=row["metadata"],
                created_at=row["created_at"],
                reverses=row["reverses"],
            )
        transaction.postings.append(Posting(row["account"], row["amount"], row["currency"], row["balance_after"]))
    return found


async def get_transaction(conn: asyncpg.Connection, *, transaction_id: uuid.UUID) -> Transaction:
    with translate_errors():
        rows = await conn.fetch(sql.SELECT_TRANSACTIONS, [transaction_id])
    if not rows:
        raise NotFound(f"no transaction {transaction_id}")
    return _transactions(rows)[transaction_id]


async def list_transactions(
    conn: asyncpg.Connection, *, account: str, limit: int, cursor: str | None
) -> Page[Transaction]:
    """The account's transactions, newest first.

    Pages walk the account's postings by their sequence. A transaction may post to the same account
    several times (contiguous sequences, at most 100), so the window is a little wider than the page, and
    its last transaction, possibly cut in half by the window, is left for the next page."""
    internal_id, _currency = await account_id(conn, code=account)
    before = decode_int_cursor(cursor) if cursor else 2**63 - 1
    window = limit + 100
    with translate_errors():
        rows = await conn.fetch(sql.SELECT_ACCOUNT_POSTINGS, internal_id, before, window)
    lowest_sequence: dict[uuid.UUID, int] = {}
    for row in rows:
        lowest_sequence[row["transaction_id"]] = row["account_sequence"]  # descending: last seen is lowest
    ids = list(lowest_sequence)
    if len(rows) == window:
        ids = ids[:-1]
    page_ids = ids[:limit]
    has_more = len(ids) > limit or len(rows) == window
    with translate_errors():
        found = _transactions(await conn.fetch(sql.SELECT_TRANSACTIONS, page_ids)) if page_ids else {}
    next_cursor = encode_cursor(lowest_sequence[page_ids[-1]]) if has_more and page_ids else None
    return Page([found[i] for i in page_ids], next_cursor)
