"""Accounts through the real app: open, read, list, and every refusal as a problem."""

from __future__ import annotations

from tests.api import fund, open_account, problem


async def test_open_account_returns_201_with_zero_balance_and_default_floor(client) -> None:
    response = await client.post("/v1/accounts", json={"code": "sohag:wallet", "currency": "BDT"})
    assert response.status == 201
    assert response.headers["Location"] == "/v1/accounts/sohag:wallet"
    body = await response.json()
    assert body["code"] == "sohag:wallet"
    assert body["currency"] == "BDT"
    assert body["balance"] == 0
    assert body["min_balance"] == 0
    assert body["metadata"] == {}
    fetched = await (await client.get("/v1/accounts/sohag:wallet")).json()
    assert fetched == body


async def test_account_keeps_metadata_and_null_floor(client) -> None:
    body = await open_account(client, "world", min_balance=None, metadata={"kind": "equity", "n": [1, 2]})
    assert body["min_balance"] is None
    assert body["metadata"] == {"kind": "equity", "n": [1, 2]}


async def test_second_account_with_same_code_is_409_account_exists(client) -> None:
    await open_account(client, "sohag:wallet")
    response = await client.post("/v1/accounts", json={"code": "sohag:wallet", "currency": "USD"})
    await problem(response, 409, "account-exists")


async def test_invalid_account_fields_are_422_with_pointers(client) -> None:
    response = await client.post(
        "/v1/accounts", json={"code": "Sohag Wallet", "currency": "bdt", "min_balance": 5, "colour": "red"}
    )
    body = await problem(response, 422, "validation-error")
    pointers = {error["pointer"] for error in body["errors"]}
    assert pointers == {"/code", "/currency", "/min_balance", "/colour"}


async def test_float_and_string_floors_are_refused(client) -> None:
    for floor in (-1.5, "-100", True):
        response = await client.post("/v1/accounts", json={"code": "a", "currency": "BDT", "min_balance": floor})
        body = await problem(response, 422, "validation-error")
        assert body["errors"][0]["pointer"] == "/min_balance"


async def test_code_longer_than_128_characters_is_refused(client) -> None:
    response = await client.post("/v1/accounts", json={"code": "a" * 129, "currency": "BDT"})
    await problem(response, 422, "validation-error")
    assert (await client.post("/v1/accounts", json={"code": "a" * 128, "currency": "BDT"})).status == 201


async def test_unknown_account_is_404_not_found(client) -> None:
    await problem(await client.get("/v1/accounts/nobody:wallet"), 404, "not-found")
    await problem(await client.get("/v1/accounts/NOT A CODE"), 404, "not-found")


async def test_list_accounts_by_prefix_with_cursor_pages(client) -> None:
    for code in ("a:1", "a:2", "a:3", "a_b", "b:1", "a:10"):
        await open_account(client, code)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"prefix": "a:", "limit": "2", **({"cursor": cursor} if cursor else {})}
        body = await (await client.get("/v1/accounts", params=query)).json()
        seen += [account["code"] for account in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a:1", "a:10", "a:2", "a:3"]
    assert pages == 2
    everything = await (await client.get("/v1/accounts")).json()
    assert len(everything["data"]) == 6 and everything["next_cursor"] is None


async def test_prefix_treats_underscore_literally(client) -> None:
    for code in ("a_b", "axb"):
        await open_account(client, code)
    body = await (await client.get("/v1/accounts", params={"prefix": "a_"})).json()
    assert [account["code"] for account in body["data"]] == ["a_b"]


async def test_bad_list_queries_are_400_invalid_request(client) -> None:
    for query in ({"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"cursor": "garbage!"}):
        await problem(await client.get("/v1/accounts", params=query), 400, "invalid-request")


async def test_account_shows_balance_after_postings(client) -> None:
    await open_account(client, "world", min_balance=None)
    await open_account(client, "sohag:wallet")
    await fund(client, "sohag:wallet", 1800)
    body = await (await client.get("/v1/accounts/sohag:wallet")).json()
    assert body["balance"] == 1800


async def test_text_postgresql_cannot_store_is_422_not_500(client) -> None:
    """Found by schemathesis: NUL is a valid JSON escape but not storable text (422, with its pointer); a lone
    surrogate is refused by the JSON parser itself (400)."""
    headers = {"Content-Type": "application/json"}
    for raw, pointer in (
        (b'{"code": "a", "currency": "BDT", "metadata": {"note": "x\\u0000y"}}', "/metadata/note"),
        (b'{"code": "a", "currency": "BDT", "metadata": {"k\\u0000": 1}}', "/metadata/k\x00"),
        (b'{"code": "a", "currency": "BDT", "metadata": {"l": ["ok", "\\u0000"]}}', "/metadata/l/1"),
    ):
        response = await client.post("/v1/accounts", data=raw, headers=headers)
        body = await problem(response, 422, "validation-error")
        assert pointer is None or body["errors"][0]["pointer"] == pointer
    lone = b'{"code": "a", "currency": "BDT", "metadata": {"k": "\\ud877"}}'
    await problem(await client.post("/v1/accounts", data=lone, headers=headers), 400, "invalid-request")
    assert (await client.get("/v1/accounts/a")).status == 404


async def test_unknown_or_nul_query_parameters_are_400(client) -> None:
    for query in ({"colour": "red"}, {"prefix": "a\x00"}, {"": "x"}):
        await problem(await client.get("/v1/accounts", params=query), 400, "invalid-request")


async def test_metadata_with_an_integer_beyond_64_bits_is_422_not_500(client) -> None:
    """Found by schemathesis: valid JSON, but no 64-bit encoder takes it."""
    body = {"code": "a", "currency": "BDT", "metadata": {"n": 2**70}}
    response = await problem(await client.post("/v1/accounts", json=body), 422, "validation-error")
    assert response["errors"][0]["pointer"] == "/metadata"
    assert (await client.post("/v1/accounts", json={**body, "metadata": {"n": 2**63 - 1}})).status == 201
