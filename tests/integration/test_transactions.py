"""Transactions through the real app: posting, reading, listing, reversing, and every refusal."""

from __future__ import annotations

import io
import uuid

import pytest

from tests.api import JSON, balance, fund, open_account, post, problem, transfer


@pytest.fixture
async def wallets(client):
    await open_account(client, "world", min_balance=None)
    await open_account(client, "sohag:wallet")
    await open_account(client, "friend:wallet")
    await fund(client, "sohag:wallet", 1000)
    return client


async def test_dinner_share_moves_600_and_records_balance_after(wallets) -> None:
    response = await post(wallets, transfer("sohag:wallet", "friend:wallet", 600), description="dinner share")
    assert response.status == 201
    body = await response.json()
    assert body["postings"] == [
        {"account": "sohag:wallet", "amount": -600, "currency": "BDT", "balance_after": 400},
        {"account": "friend:wallet", "amount": 600, "currency": "BDT", "balance_after": 600},
    ]
    assert body["description"] == "dinner share"
    assert body["reverses"] is None
    assert uuid.UUID(body["id"]).version == 7
    assert response.headers["Location"] == f"/v1/transactions/{body['id']}"
    assert await balance(wallets, "sohag:wallet") == 400
    assert await balance(wallets, "friend:wallet") == 600
    fetched = await (await wallets.get(f"/v1/transactions/{body['id']}")).json()
    assert fetched == body


async def test_same_account_twice_in_one_transaction_chains_balance_after(wallets) -> None:
    postings = [
        {"account": "sohag:wallet", "amount": -700},
        {"account": "friend:wallet", "amount": 900},
        {"account": "sohag:wallet", "amount": -200},
    ]
    body = await (await post(wallets, postings)).json()
    assert [p["balance_after"] for p in body["postings"]] == [300, 900, 100]
    assert await balance(wallets, "sohag:wallet") == 100


async def test_overdraft_returns_422_and_changes_no_balance(wallets) -> None:
    response = await post(wallets, transfer("sohag:wallet", "friend:wallet", 1001))
    body = await problem(response, 422, "insufficient-funds")
    assert "sohag:wallet" in body["detail"]
    assert await balance(wallets, "sohag:wallet") == 1000
    assert await balance(wallets, "friend:wallet") == 0


async def test_negative_floor_allows_overdraft_down_to_it(wallets) -> None:
    await open_account(wallets, "credit:line", min_balance=-500)
    assert (await post(wallets, transfer("credit:line", "friend:wallet", 500))).status == 201
    await problem(await post(wallets, transfer("credit:line", "friend:wallet", 1)), 422, "insufficient-funds")


async def test_unbalanced_postings_are_422(wallets) -> None:
    postings = [{"account": "sohag:wallet", "amount": -600}, {"account": "friend:wallet", "amount": 500}]
    await problem(await post(wallets, postings), 422, "unbalanced-transaction")
    assert await balance(wallets, "sohag:wallet") == 1000


async def test_postings_must_sum_to_zero_per_currency(wallets) -> None:
    await open_account(wallets, "usd:world", currency="USD", min_balance=None)
    await open_account(wallets, "usd:wallet", currency="USD")
    # Sums to zero overall, but 600 BDT leave and 600 USD arrive: money created in one currency.
    await problem(await post(wallets, transfer("sohag:wallet", "usd:wallet", 600)), 422, "unbalanced-transaction")
    postings = [*transfer("sohag:wallet", "friend:wallet", 5), *transfer("usd:world", "usd:wallet", 7)]
    body = await (await post(wallets, postings)).json()
    assert [p["currency"] for p in body["postings"]] == ["BDT", "BDT", "USD", "USD"]


async def test_declared_currency_must_be_the_accounts(wallets) -> None:
    postings = [
        {"account": "sohag:wallet", "amount": -1, "currency": "USD"},
        {"account": "friend:wallet", "amount": 1, "currency": "USD"},
    ]
    body = await problem(await post(wallets, postings), 422, "currency-mismatch")
    assert "sohag:wallet" in body["detail"]
    postings[0]["currency"] = postings[1]["currency"] = "BDT"
    assert (await post(wallets, postings)).status == 201


async def test_unknown_account_in_postings_is_422(wallets) -> None:
    body = await problem(await post(wallets, transfer("sohag:wallet", "ghost:wallet", 1)), 422, "unknown-account")
    assert "ghost:wallet" in body["detail"]


@pytest.mark.parametrize(
    ("amount", "pointer"),
    [
        (600.0, "/postings/1/amount"),
        ("600", "/postings/1/amount"),
        (True, "/postings/1/amount"),
        (None, "/postings/1/amount"),
        (2**63, "/postings/1/amount"),
        (-(2**63) - 1, "/postings/1/amount"),
        (0, "/postings/1/amount"),
    ],
)
async def test_amounts_that_are_not_int64_or_are_zero_are_422(wallets, amount, pointer) -> None:
    postings = [{"account": "sohag:wallet", "amount": -600}, {"account": "friend:wallet", "amount": amount}]
    body = await problem(await post(wallets, postings), 422, "validation-error")
    assert pointer in {error["pointer"] for error in body["errors"]}


async def test_posting_count_outside_2_to_100_is_422(wallets) -> None:
    await problem(await post(wallets, [{"account": "sohag:wallet", "amount": 1}]), 422, "validation-error")
    many = [{"account": "sohag:wallet", "amount": -1}, {"account": "friend:wallet", "amount": 1}] * 51
    await problem(await post(wallets, many), 422, "validation-error")
    assert (await post(wallets, many[:100])).status == 201


async def test_balance_overflow_is_refused_not_500(client) -> None:
    await open_account(client, "world", min_balance=None)
    await open_account(client, "big")
    await fund(client, "big", 2**63 - 1)
    await problem(await post(client, transfer("world", "big", 1)), 422, "validation-error")


async def test_unknown_fields_and_malformed_bodies(wallets) -> None:
    response = await post(wallets, transfer("sohag:wallet", "friend:wallet", 1), colour="red")
    body = await problem(response, 422, "validation-error")
    assert body["errors"][0]["pointer"] == "/colour"
    headers = {**JSON, "Idempotency-Key": "k-malformed"}
    await problem(
        await wallets.post("/v1/transactions", data=b'{"postings": [', headers=headers), 400, "invalid-request"
    )
    await problem(await wallets.post("/v1/transactions", data=b"[1, 2]", headers=headers), 422, "validation-error")
    await problem(await wallets.post("/v1/transactions", data=b"\xff\xfe", headers=headers), 400, "invalid-request")
    text_headers = {"Content-Type": "text/plain", "Idempotency-Key": "k-text"}
    await problem(
        await wallets.post("/v1/transactions", data=b"hi", headers=text_headers), 415, "unsupported-media-type"
    )


async def test_body_over_one_mebibyte_is_413(wallets) -> None:
    huge = io.BytesIO(b'{"postings": [], "description": "' + b"x" * (1024 * 1024) + b'"}')
    response = await wallets.post("/v1/transactions", data=huge, headers={**JSON, "Idempotency-Key": "k-huge"})
    await problem(response, 413, "payload-too-large")


async def test_idempotency_key_is_required_and_validated(wallets) -> None:
    body = {"postings": transfer("sohag:wallet", "friend:wallet", 1)}
    await problem(await wallets.post("/v1/transactions", json=body), 400, "invalid-request")
    response = await wallets.post("/v1/transactions", json=body, headers={"Idempotency-Key": "x" * 256})
    await problem(response, 400, "invalid-request")
    assert await balance(wallets, "friend:wallet") == 0


async def test_retry_with_same_key_replays_and_posts_once(wallets) -> None:
    first = await post(wallets, transfer("sohag:wallet", "friend:wallet", 600), key="dinner-1")
    second = await post(wallets, transfer("sohag:wallet", "friend:wallet", 600), key="dinner-1")
    assert first.status == second.status == 201
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await first.json() == await second.json()
    assert await balance(wallets, "sohag:wallet") == 400


async def test_same_key_with_different_body_is_422_reused(wallets) -> None:
    await post(wallets, transfer("sohag:wallet", "friend:wallet", 600), key="dinner-2")
    response = await post(wallets, transfer("sohag:wallet", "friend:wallet", 601), key="dinner-2")
    await problem(response, 422, "idempotency-key-reused")
    assert await balance(wallets, "sohag:wallet") == 400


async def test_duplicate_reference_is_409(wallets) -> None:
    assert (await post(wallets, transfer("sohag:wallet", "friend:wallet", 1), reference="inv-7")).status == 201
    response = await post(wallets, transfer("sohag:wallet", "friend:wallet", 1), reference="inv-7")
    await problem(response, 409, "duplicate-reference")
    assert await balance(wallets, "friend:wallet") == 1


async def test_reverse_negates_every_posting_once(wallets) -> None:
    original = await (await post(wallets, transfer("sohag:wallet", "friend:wallet", 600))).json()
    path = f"/v1/transactions/{original['id']}/reverse"
    response = await wallets.post(path, headers={"Idempotency-Key": "undo-1"})
    assert response.status == 201, await response.text()
    reversal = await response.json()
    assert reversal["reverses"] == original["id"]
    assert [(p["account"], p["amount"]) for p in reversal["postings"]] == [
        ("sohag:wallet", 600),
        ("friend:wallet", -600),
    ]
    assert await balance(wallets, "sohag:wallet") == 1000
    replay = await wallets.post(path, headers={"Idempotency-Key": "undo-1"})
    assert replay.headers["Idempotent-Replayed"] == "true" and await replay.json() == reversal
    await problem(await wallets.post(path, headers={"Idempotency-Key": "undo-2"}), 409, "already-reversed")
    assert await balance(wallets, "friend:wallet") == 0


async def test_reverse_with_description_body_and_refusals(wallets) -> None:
    original = await (await post(wallets, transfer("sohag:wallet", "friend:wallet", 600))).json()
    await (await post(wallets, transfer("friend:wallet", "sohag:wallet", 600))).json()
    path = f"/v1/transactions/{original['id']}/reverse"
    # friend:wallet has nothing left to give back: the reversal respects the floor too.
    response = await wallets.post(path, json={"description": "refund"}, headers={"Idempotency-Key": "undo-3"})
    await problem(response, 422, "insufficient-funds")
    await problem(await wallets.post(path), 400, "invalid-request")
    missing = f"/v1/transactions/{uuid.uuid4()}/reverse"
    await problem(await wallets.post(missing, headers={"Idempotency-Key": "undo-4"}), 404, "not-found")
    await problem(
        await wallets.post("/v1/transactions/nope/reverse", headers={"Idempotency-Key": "u"}), 404, "not-found"
    )


async def test_get_unknown_or_malformed_transaction_is_404(wallets) -> None:
    await problem(await wallets.get(f"/v1/transactions/{uuid.uuid4()}"), 404, "not-found")
    await problem(await wallets.get("/v1/transactions/not-a-uuid"), 404, "not-found")


async def test_list_transactions_by_account_pages_newest_first(wallets) -> None:
    ids = []
    for amount in range(1, 8):
        postings = transfer("sohag:wallet", "friend:wallet", amount)
        if amount == 4:  # one transaction touching the account twice must still be listed once
            postings = [*postings, {"account": "sohag:wallet", "amount": -1}, {"account": "world", "amount": 1}]
        ids.append((await (await post(wallets, postings)).json())["id"])
    seen, cursor = [], None
    while True:
        params = {"account": "friend:wallet", "limit": "3", **({"cursor": cursor} if cursor else {})}
        body = await (await wallets.get("/v1/transactions", params=params)).json()
        seen += [t["id"] for t in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    body = await (await wallets.get("/v1/transactions", params={"account": "sohag:wallet", "limit": "500"})).json()
    assert [t["id"] for t in body["data"]][:7] == ids[::-1]
    assert len(body["data"]) == 8  # the funding transaction too
    await problem(await wallets.get("/v1/transactions"), 400, "invalid-request")
    await problem(await wallets.get("/v1/transactions", params={"account": "ghost"}), 404, "not-found")


async def test_statement_lists_postings_newest_first_with_balance_after(wallets) -> None:
    for amount in (100, 200, 300):
        await post(wallets, transfer("sohag:wallet", "friend:wallet", amount), description=f"pay {amount}")
    first = await (await wallets.get("/v1/accounts/sohag:wallet/postings", params={"limit": "2"})).json()
    assert [(line["amount"], line["balance_after"]) for line in first["data"]] == [(-300, 400), (-200, 700)]
    assert first["data"][0]["description"] == "pay 300"
    rest = await (
        await wallets.get("/v1/accounts/sohag:wallet/postings", params={"cursor": first["next_cursor"]})
    ).json()
    assert [(line["amount"], line["balance_after"]) for line in rest["data"]] == [(-100, 900), (1000, 1000)]
    assert rest["next_cursor"] is None
    await problem(await wallets.get("/v1/accounts/ghost/postings"), 404, "not-found")


async def test_balance_as_of_an_instant(wallets) -> None:
    before = (await (await wallets.get("/v1/accounts/sohag:wallet/balance")).json())["as_of"]
    await post(wallets, transfer("sohag:wallet", "friend:wallet", 250))
    now = await (await wallets.get("/v1/accounts/sohag:wallet/balance")).json()
    assert now["balance"] == 750 and now["currency"] == "BDT" and now["account"] == "sohag:wallet"
    then = await (await wallets.get("/v1/accounts/sohag:wallet/balance", params={"as_of": before})).json()
    assert then["balance"] == 1000
    ancient = await (
        await wallets.get("/v1/accounts/sohag:wallet/balance", params={"as_of": "2000-01-01T00:00:00Z"})
    ).json()
    assert ancient["balance"] == 0
    for bad in ("yesterday", "2026-01-01T00:00:00"):
        response = await wallets.get("/v1/accounts/sohag:wallet/balance", params={"as_of": bad})
        await problem(response, 400, "invalid-request")
