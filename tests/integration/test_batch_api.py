"""POST /v1/transactions/batch: up to 1,000 transactions, all or nothing, in order, under one idempotency key."""

from __future__ import annotations

from ledger.verify import verify_database
from tests.api import balance, fund, problem, transfer


async def _batch(client, transactions, key="batch-1"):  # type: ignore[no-untyped-def]
    return await client.post(
        "/v1/transactions/batch", json={"transactions": transactions}, headers={"Idempotency-Key": key}
    )


async def test_a_batch_posts_in_order_with_running_balances_and_replays(ledger, clean_database) -> None:
    transactions = [
        {"postings": transfer("alice", "bob", 70), "reference": "b-1"},
        {"postings": transfer("bob", "carol", 70)},  # only possible after the first: floors apply in order
        {"postings": transfer("alice", "carol", 30), "metadata": {"n": 3}},
    ]
    response = await _batch(ledger, transactions)
    assert response.status == 201, await response.text()
    body = await response.json()
    posted = body["transactions"]
    assert [t["postings"][1]["balance_after"] for t in posted] == [70, 70, 100]
    assert posted[0]["reference"] == "b-1" and posted[2]["metadata"] == {"n": 3}
    assert (await balance(ledger, "alice"), await balance(ledger, "bob"), await balance(ledger, "carol")) == (0, 0, 100)
    for t in posted:
        assert (await ledger.get(f"/v1/transactions/{t['id']}")).status == 200

    replay = await _batch(ledger, transactions)
    assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert [t["id"] for t in (await replay.json())["transactions"]] == [t["id"] for t in posted]
    assert await balance(ledger, "carol") == 100
    reused = await _batch(ledger, transactions[:1])
    await problem(reused, 422, "idempotency-key-reused")
    assert await verify_database(clean_database) == []


async def test_one_refusal_posts_nothing_names_the_transaction_and_is_remembered(ledger, clean_database) -> None:
    transactions = [
        {"postings": transfer("alice", "bob", 60)},
        {"postings": transfer("alice", "carol", 60)},  # 40 left: refused, and so is the first
    ]
    body = await problem(await _batch(ledger, transactions, key="b2"), 422, "insufficient-funds")
    assert body["detail"].startswith("/transactions/1: ") and "alice" in body["detail"]
    assert (await balance(ledger, "alice"), await balance(ledger, "bob")) == (100, 0)
    await fund(ledger, "alice", 100)
    again = await _batch(ledger, transactions, key="b2")  # the key's answer stands...
    await problem(again, 422, "insufficient-funds")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await _batch(ledger, transactions, key="b3")).status == 201  # ...a new key is a new request
    unknown = await problem(await _batch(ledger, [{"postings": transfer("alice", "ghost", 1)}], key="b4"),
                            422, "unknown-account")  # fmt: skip
    assert unknown["detail"] == "/transactions/0: no account with code ghost"
    await ledger.post("/v1/transactions", json={"postings": transfer("alice", "bob", 1), "reference": "taken"},
                      headers={"Idempotency-Key": "single"})  # fmt: skip
    duplicate = [
        {"postings": transfer("alice", "bob", 1)},
        {"postings": transfer("alice", "bob", 1), "reference": "taken"},
    ]
    body = await problem(await _batch(ledger, duplicate, key="b5"), 409, "duplicate-reference")
    assert body["detail"].startswith("/transactions/1: ")
    assert await verify_database(clean_database) == []


async def test_malformed_batches_are_refused_with_pointers(ledger) -> None:
    await problem(await _batch(ledger, [], key="m1"), 422, "validation-error")
    too_many = [{"postings": transfer("alice", "bob", 1)}] * 1001
    await problem(await _batch(ledger, too_many, key="m2"), 422, "validation-error")
    unbalanced = [{"postings": transfer("alice", "bob", 1)},
                  {"postings": [{"account": "alice", "amount": -1}, {"account": "bob", "amount": 2}]}]  # fmt: skip
    body = await problem(await _batch(ledger, unbalanced, key="m3"), 422, "unbalanced-transaction")
    assert body["detail"].startswith("/transactions/1: ")
    one_posting = [{"postings": transfer("alice", "bob", 1)}, {"postings": [{"account": "alice", "amount": 0}] * 2}]
    body = await problem(await _batch(ledger, one_posting, key="m4"), 422, "validation-error")
    assert any(e["pointer"].startswith("/transactions/1/postings") for e in body["errors"])
    missing_key = await ledger.post("/v1/transactions/batch", json={"transactions": unbalanced[:1]})
    await problem(missing_key, 400, "invalid-request")
    assert await balance(ledger, "bob") == 0
