"""Many transactions in one database call (`posting.post_each`, `ledger_post_batch`) and group commit: each
transaction is posted, replayed or refused on its own, in order, and one's refusal never fails another."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from ledger import errors, posting, telemetry
from ledger.app import create_app
from ledger.audit import Actor
from ledger.db import _init_connection
from ledger.model import NewPosting
from ledger.verify import verify_database
from tests.api import balance, fund, open_account, post, transfer
from tests.conftest import AUTH


def _submission(source: str, destination: str, amount: int, key: str, *, reference: str | None = None,
                scope: str = "test") -> posting.Submission:  # fmt: skip
    postings = [NewPosting(source, -amount), NewPosting(destination, amount)]
    return posting.Submission(
        posting.NewTransaction(postings, reference=reference),
        posting.IdempotencyKey(
            scope,
            key,
            posting.request_fingerprint(method="POST", route="/t", body=[source, destination, amount, reference]),
        ),
        Actor("test"),
    )


@pytest.fixture
async def conn(ledger, service_database_url):
    connection = await asyncpg.connect(service_database_url)
    await _init_connection(connection)
    yield connection
    await connection.close()


async def test_one_call_posts_refuses_and_replays_each_transaction_on_its_own(ledger, conn, clean_database) -> None:
    batch = [
        _submission("alice", "bob", 60, "k1", reference="r-1"),
        _submission("alice", "bob", 60, "k2"),  # alice has 40 left: refused, the others go on
        _submission("bob", "carol", 100, "k3"),  # bob has 60: refused...
        _submission("carol", "alice", 1, "k4"),  # carol has nothing: refused
        _submission("ghost", "alice", 1, "k5"),
        _submission("alice", "carol", 10, "k6", reference="r-1"),  # the reference is taken, in this batch
        _submission("bob", "carol", 60, "k7"),  # bob's 60 from k1
    ]
    outcomes = await posting.post_each(conn, batch)
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["Posted", "Refused", "Refused", "Refused", "Refused", "Refused", "Posted"]
    slugs = [o.refusal.slug for o in outcomes if isinstance(o, posting.Refused)]
    assert slugs == ["insufficient-funds", "insufficient-funds", "insufficient-funds", "unknown-account",
                     "duplicate-reference"]  # fmt: skip
    assert [p.balance_after for p in outcomes[6].transaction.postings] == [0, 60]
    assert (await balance(ledger, "alice"), await balance(ledger, "bob"), await balance(ledger, "carol")) == (40, 0, 60)

    # The same keys again, once the ledger has changed: every answer stands, refusals included.
    await fund(ledger, "alice", 1000)
    again = await posting.post_each(conn, batch)
    assert all(isinstance(o, posting.Replayed) for o in again)
    assert again[0].transaction_id == outcomes[0].transaction.id and again[0].refusal is None
    assert [o.refusal.slug for o in again[1:6]] == slugs and all(o.refusal.replayed for o in again[1:6])
    # A key reused with another request is refused, and does not take its neighbour down.
    mixed = await posting.post_each(conn, [_submission("alice", "bob", 1, "k1"), _submission("alice", "bob", 2, "k8")])
    assert isinstance(mixed[0], posting.Refused) and mixed[0].refusal.slug == "idempotency-key-reused"
    assert isinstance(mixed[1], posting.Posted)
    assert await verify_database(clean_database) == []


async def test_a_call_that_fails_as_a_whole_is_retried_one_by_one(ledger, conn, clean_database) -> None:
    """An amount that would overflow a balance fails the whole call inside PostgreSQL; each transaction is
    then posted alone, so only the overflowing one is refused."""
    before = telemetry.group_commit_fallbacks._value.get()
    huge = 2**62  # twice that leaves the signed 64-bit range
    outcomes = await posting.post_each(conn, [
        _submission("world", "carol", huge, "o1"),
        _submission("world", "carol", huge, "o2"),
        _submission("alice", "bob", 5, "o3"),
    ])  # fmt: skip
    assert [type(o).__name__ for o in outcomes] == ["Posted", "Refused", "Posted"], [
        getattr(o, "refusal", None) for o in outcomes
    ]
    assert outcomes[1].refusal.slug == "validation-error"
    assert telemetry.group_commit_fallbacks._value.get() == before + 1
    assert await balance(ledger, "carol") == huge and await balance(ledger, "bob") == 5
    assert await verify_database(clean_database) == []


async def test_concurrent_posts_are_coalesced_and_answered_each_on_its_own(
    aiohttp_client, settings, clean_database
) -> None:
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, group_commit_flushers=1, group_commit_wait_seconds=0.02)),
        headers=AUTH,
    )
    await open_account(client, "world", min_balance=None)
    for code in ("alice", "bob"):
        await open_account(client, code)
    await fund(client, "alice", 50)
    sizes_before = telemetry.group_commit_batch_size._sum.get()
    calls_before = sum(b.get() for b in telemetry.group_commit_batch_size._buckets)
    responses = await asyncio.gather(*(post(client, transfer("alice", "bob", 10), key=f"c{i}") for i in range(8)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 5 + [422] * 3  # 50 covers five of the eight, whichever they are
    calls = sum(b.get() for b in telemetry.group_commit_batch_size._buckets) - calls_before
    assert telemetry.group_commit_batch_size._sum.get() - sizes_before == 8 and calls < 8  # coalesced
    assert await balance(client, "alice") == 0 and await balance(client, "bob") == 50
    assert await verify_database(clean_database) == []


async def test_each_transaction_of_a_batch_is_written_with_its_own_audit_entry(ledger, conn) -> None:
    outcomes = await posting.post_each(
        conn, [_submission("alice", "bob", 1, "a1"), _submission("alice", "carol", 2, "a2")]
    )
    ids = [str(o.transaction.id) for o in outcomes]
    rows = await conn.fetch(
        "SELECT subject, payload FROM audit_outbox WHERE subject = ANY($1::text[]) "
        "UNION ALL SELECT subject, payload FROM audit_log WHERE subject = ANY($1::text[])",
        ids,
    )
    amounts = {r["subject"]: r["payload"]["postings"][1]["amount"] for r in rows}
    assert len(rows) == 2 and amounts == {ids[0]: 1, ids[1]: 2}


def test_refusals_rebuilt_from_the_engine_match_the_single_path() -> None:
    remembered = errors.from_remembered({"slug": "duplicate-reference", "detail": None})
    assert remembered.detail == errors.DuplicateReference().detail
