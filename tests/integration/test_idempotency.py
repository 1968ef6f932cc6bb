"""Idempotency keys with the IETF draft's semantics: replay, refusal replay, scope per API key, reuse with
another request, in flight, a client that never saw its answer, expiry and purge."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import uuid

import asyncpg
import psycopg
import pytest

from ledger import posting
from ledger.app import create_app
from tests.api import balance, fund, open_account, post, problem, transfer
from tests.conftest import ADMIN_SECRET


@pytest.fixture
async def funded(client):
    await open_account(client, "world", min_balance=None)
    await open_account(client, "alice")
    await open_account(client, "bob")
    await fund(client, "alice", 100)
    return client


async def test_a_refusal_is_replayed_even_after_the_ledger_changed(funded) -> None:
    first = await post(funded, transfer("alice", "bob", 150), key="pay-150")
    await problem(first, 422, "insufficient-funds")
    await fund(funded, "alice", 100)  # now it would succeed...
    retry = await post(funded, transfer("alice", "bob", 150), key="pay-150")
    body = await problem(retry, 422, "insufficient-funds")  # ...but the key's answer stands
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert body["detail"] == (await first.json())["detail"]
    assert await balance(funded, "bob") == 0


async def test_keys_are_scoped_to_the_api_key_that_sent_them(funded) -> None:
    other = await (await funded.post("/v1/keys", json={"name": "other", "scopes": ["write"]})).json()
    mine = await post(funded, transfer("alice", "bob", 10), key="shared-key")
    theirs = await funded.post(
        "/v1/transactions",
        json={"postings": transfer("alice", "bob", 10)},
        headers={"Idempotency-Key": "shared-key", "Authorization": f"Bearer {other['secret']}"},
    )
    assert mine.status == theirs.status == 201
    assert (await mine.json())["id"] != (await theirs.json())["id"]
    assert await balance(funded, "bob") == 20


async def test_hundred_clients_with_one_key_post_exactly_once(funded) -> None:
    """100 requests with the same key and body at once: one transaction; every other answer is its replay,
    or 409 idempotency-key-in-use while it was in flight."""
    responses = await asyncio.gather(*(post(funded, transfer("alice", "bob", 7), key="storm") for _ in range(100)))
    statuses = {r.status for r in responses}
    assert statuses <= {201, 409}
    created = [await r.json() for r in responses if r.status == 201]
    assert len({body["id"] for body in created}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses if r.status == 201) == 1
    for response in responses:
        if response.status == 409:
            await problem(response, 409, "idempotency-key-in-use")
            assert response.headers["Retry-After"] == "1"
    assert await balance(funded, "bob") == 7


async def test_a_request_in_flight_holds_its_key_and_others_get_409(funded, clean_database, aiohttp_client, settings):
    """A first request still in flight (here: a transaction holding the key's row) makes a second one with the
    same key answer 409 within the key wait, instead of queueing or posting twice."""
    impatient = await aiohttp_client(
        create_app(dataclasses.replace(settings, idempotency_key_wait_seconds=0.2)),
        headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
    )
    with psycopg.connect(clean_database) as holder:
        scope = holder.execute("SELECT id::text FROM api_keys WHERE name = 'bootstrap'").fetchone()[0]
        holder.execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, transaction_id, expires_at) "
            "VALUES (%s, 'held', '\\x00', gen_random_uuid(), now() + interval '1 hour')",
            (scope,),
        )
        response = await post(impatient, transfer("alice", "bob", 5), key="held")
        await problem(response, 409, "idempotency-key-in-use")
        assert response.headers["Retry-After"] == "1"
        holder.rollback()  # the first request failed after all: the key is free
    assert (await post(impatient, transfer("alice", "bob", 5), key="held")).status == 201


async def test_a_client_that_never_saw_its_answer_retries_and_gets_the_replay(funded) -> None:
    """The server commits, but the connection is cut before the client reads the answer; the retry with the
    same key gets that transaction back, and nothing is posted twice."""
    body = json.dumps({"postings": transfer("alice", "bob", 30)}).encode()
    head = (
        f"POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ADMIN_SECRET}\r\nIdempotency-Key: cut-1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", funded.port)) as raw:
        raw.sendall(head + body)
        for _ in range(100):
            if await balance(funded, "bob") == 30:
                break
            await asyncio.sleep(0.05)
        # closed here without reading a byte of the answer
    retry = await post(funded, transfer("alice", "bob", 30), key="cut-1")
    assert retry.status == 201 and retry.headers["Idempotent-Replayed"] == "true"
    listed = await (await funded.get("/v1/transactions", params={"account": "bob"})).json()
    assert [t["id"] for t in listed["data"]] == [(await retry.json())["id"]]
    assert await balance(funded, "bob") == 30


async def test_the_same_key_with_another_request_is_422_even_for_a_refusal(funded) -> None:
    await problem(await post(funded, transfer("alice", "bob", 500), key="k"), 422, "insufficient-funds")
    await problem(await post(funded, transfer("alice", "bob", 5), key="k"), 422, "idempotency-key-reused")


async def test_expired_keys_can_be_used_again_and_are_purged(aiohttp_client, settings, clean_database) -> None:
    short = dataclasses.replace(settings, idempotency_ttl_seconds=1)
    client = await aiohttp_client(create_app(short), headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    await open_account(client, "world", min_balance=None)
    await open_account(client, "alice")
    first = await post(client, transfer("world", "alice", 1), key="monthly")
    await asyncio.sleep(1.2)
    second = await post(client, transfer("world", "alice", 2), key="monthly")  # another request, same key
    assert second.status == 201 and "Idempotent-Replayed" not in second.headers
    assert (await first.json())["id"] != (await second.json())["id"]
    await post(client, transfer("world", "alice", 3), key=f"other-{uuid.uuid4()}")
    await asyncio.sleep(1.2)
    conn = await asyncpg.connect(clean_database)
    try:
        assert await posting.purge_expired_idempotency_keys(conn, batch_size=1) == 2
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    finally:
        await conn.close()


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    a = posting.request_fingerprint(method="POST", route="/v1/transactions", body={"a": 1, "b": [1, 2]})
    b = posting.request_fingerprint(method="POST", route="/v1/transactions", body={"b": [1, 2], "a": 1})
    c = posting.request_fingerprint(method="POST", route="/v1/transactions", body={"a": 1, "b": [2, 1]})
    d = posting.request_fingerprint(method="POST", route="/v1/transactions/x/reverse", body={"a": 1, "b": [1, 2]})
    assert a == b and len({a, c, d}) == 3 and len(a) == len(hashlib.sha256().digest())
