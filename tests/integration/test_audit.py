"""The audit log: every state change appends an entry, a single leader chains them, the API pages them with
the chain's lag, the database refuses edits, and `verify` names the first broken link of a tampered chain."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import pytest

from ledger import audit
from ledger.db import create_pool
from ledger.verify import verify
from ledger.web.state import chainer_key
from tests.api import fund, open_account, post, transfer


async def _chained(client, *, expected: int) -> dict:
    """Wait for the chainer to catch up, then return the whole log page."""
    for _ in range(200):
        body = await (await client.get("/v1/audit", params={"limit": "500"})).json()
        if body["chain"]["pending"] == 0 and len(body["data"]) >= expected:
            return body
        await asyncio.sleep(0.05)
    pytest.fail(f"the chainer did not catch up: {body['chain']}")


async def test_every_state_change_is_audited_with_actor_and_request_ids(client) -> None:
    await open_account(client, "world", min_balance=None)
    await open_account(client, "a")
    posted = await (await post(client, transfer("world", "a", 10))).json()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    await client.post(
        f"/v1/transactions/{posted['id']}/reverse",
        headers={
            "Idempotency-Key": "r1",
            "X-Request-Id": "req-rev",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
    )
    key = await (await client.post("/v1/keys", json={"name": "ci", "scopes": ["read"]})).json()
    await client.delete(f"/v1/keys/{key['id']}")
    body = await _chained(client, expected=7)
    actions = [entry["action"] for entry in body["data"]]
    assert actions == [
        "api_key.created",  # the bootstrap key, at start
        "account.created", "account.created", "transaction.posted", "transaction.reversed",
        "api_key.created", "api_key.revoked",
    ]  # fmt: skip
    assert [entry["sequence"] for entry in body["data"]] == list(range(1, 8))
    reversal = body["data"][4]
    assert reversal["request_id"] == "req-rev" and reversal["trace_id"] == trace_id
    assert reversal["actor"].startswith("key:") and reversal["payload"]["reverses"] == posted["id"]
    assert body["data"][0]["actor"] == "bootstrap"
    assert body["data"][0]["previous_hash"] == "00" * 32
    assert all(e["previous_hash"] == p["hash"] for p, e in zip(body["data"], body["data"][1:], strict=False))
    assert body["chain"]["lag_seconds"] == 0
    assert "secret" not in str(body)


async def test_audit_pages_by_sequence(client) -> None:
    for index in range(5):
        await open_account(client, f"acct:{index}")
    await _chained(client, expected=6)
    first = await (await client.get("/v1/audit", params={"after": "2", "limit": "2"})).json()
    assert [e["sequence"] for e in first["data"]] == [3, 4]
    rest = await (await client.get("/v1/audit", params={"cursor": first["next_cursor"]})).json()
    assert [e["sequence"] for e in rest["data"]] == [5, 6] and rest["next_cursor"] is None
    response = await client.get("/v1/audit", params={"after": "-1"})
    assert response.status == 400


async def test_the_database_refuses_edits_of_audit_entries(client, clean_database, service_database_url) -> None:
    await open_account(client, "a")
    await _chained(client, expected=2)
    with psycopg.connect(clean_database, autocommit=True) as owner:
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(psycopg.Error) as refused:
                owner.execute(statement)
            assert refused.value.sqlstate == "LDAPP"
    with psycopg.connect(service_database_url, autocommit=True) as service:
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                service.execute(statement)


@pytest.mark.parametrize(
    ("tamper", "subject", "problem"),
    [
        ("UPDATE audit_log SET payload = jsonb_set(payload, '{currency}', '\"USD\"') WHERE sequence = 2",
         "audit entry 2", "edited"),
        ("DELETE FROM audit_log WHERE sequence = 2", "audit entry 2", "missing"),
        ("UPDATE audit_log SET hash = sha256(hash) WHERE sequence = 3", "audit entry 3", "edited"),
    ],
)  # fmt: skip
async def test_verify_names_the_first_broken_link(client, clean_database, tamper, subject, problem) -> None:
    """An edit behind the service's back, as a superuser with the append-only trigger switched off."""
    for code in ("a", "b", "c"):
        await open_account(client, code)
    await _chained(client, expected=4)
    with psycopg.connect(clean_database, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(tamper)
    connection = await asyncpg.connect(clean_database)
    try:
        broken = [v for v in await verify(connection) if v.check == "audit_chain"]
    finally:
        await connection.close()
    assert len(broken) == 1
    assert broken[0].subject == subject and problem in broken[0].problem


async def test_one_chainer_leads_and_writers_from_two_processes_share_one_chain(
    client, clean_database, service_database_url
) -> None:
    """Two service processes (here the app and a second pool with its own chainer) race for the advisory
    lock: exactly one leads, and the entries stay in one valid chain."""
    second_pool = await create_pool(service_database_url, size_max=4, statement_timeout_seconds=5)
    try:
        async with audit.running_chainer(second_pool, interval_seconds=0.05) as rival:
            await open_account(client, "world", min_balance=None)
            await open_account(client, "a")
            await asyncio.gather(*(fund(client, "a", 1) for _ in range(20)))
            await _chained(client, expected=23)
            assert client.app is not None
            assert client.app[chainer_key].is_leader != rival.is_leader
    finally:
        await second_pool.close()
    connection = await asyncpg.connect(clean_database)
    try:
        assert [v for v in await verify(connection)] == []
    finally:
        await connection.close()
