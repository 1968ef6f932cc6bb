"""Small helpers for talking to the service in tests."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

JSON = {"Content-Type": "application/json"}


async def open_account(client: TestClient[Any, Any], code: str, currency: str = "BDT", **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/accounts", json={"code": code, "currency": currency, **extra})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def transfer(source: str, destination: str, amount: int) -> list[dict[str, Any]]:
    return [{"account": source, "amount": -amount}, {"account": destination, "amount": amount}]


async def post(client: TestClient[Any, Any], postings: list[dict[str, Any]], *, key: str | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post("/v1/transactions", json={"postings": postings, **extra}, headers=headers)


async def balance(client: TestClient[Any, Any], code: str) -> int:
    response = await client.get(f"/v1/accounts/{code}")
    assert response.status == 200, await response.text()
    value: int = (await response.json())["balance"]
    return value


async def fund(client: TestClient[Any, Any], code: str, amount: int, *, source: str = "world") -> None:
    response = await post(client, transfer(source, code, amount))
    assert response.status == 201, await response.text()


async def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """Assert the response is the RFC 9457 problem `slug` with `status`, and return its body."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json", text
    body: dict[str, Any] = await response.json()
    assert body["type"] == f"/problems/{slug}", body
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["instance"]
    assert len(body["trace_id"]) == 32
    return body
