"""Health, readiness, the API document, problem pages, and aiohttp's own errors rendered as problems."""

from __future__ import annotations

import json
import logging

import psycopg
from aiohttp.test_utils import TestClient, TestServer

from ledger.app import create_app
from ledger.config import Settings
from tests.api import open_account, problem
from tests.conftest import AUTH


async def test_healthz_and_readyz_answer_ok_on_a_migrated_database(client) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    response = await client.get("/readyz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_readyz_is_503_while_the_database_is_unreachable() -> None:
    """The service starts without its database (lazy pool) and says so on /readyz, promptly."""
    settings = Settings.from_env({"LEDGER_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:9/ledger"})
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["status"] == "unavailable"
        assert (await client.get("/healthz")).status == 200
        body = await problem(await client.get("/v1/accounts/sohag:wallet", headers=AUTH), 503, "unavailable")
        assert "Retry-After" in response.headers and body["detail"]


async def test_readyz_is_503_on_a_database_without_migrations(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ledger_unmigrated")
        conn.execute("CREATE DATABASE ledger_unmigrated")
    url = database_url.rsplit("/", 1)[0] + "/ledger_unmigrated"
    async with TestClient(TestServer(create_app(Settings.from_env({"LEDGER_DATABASE_URL": url})))) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        assert "not migrated" in (await response.json())["detail"]


async def test_openapi_document_describes_every_route(client) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    routes = {
        (resource.canonical, route.method.lower())
        for resource in client.app.router.resources()
        for route in resource
        if route.method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes - {("/openapi.json", "get"), ("/docs", "get")} == documented
    for schema in ("AccountIn", "TransactionIn", "TransactionOut", "Problem"):
        assert schema in document["components"]["schemas"]
    amount = document["components"]["schemas"]["PostingIn"]["properties"]["amount"]
    assert amount["type"] == "integer" and amount["maximum"] == 2**63 - 1


async def test_docs_page_is_self_contained_html(client) -> None:
    response = await client.get("/docs")
    text = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert "/v1/transactions/{id}/reverse" in text and "insufficient-funds" in text
    assert "<script" not in text and "http://" not in text and "https://" not in text


async def test_every_problem_type_has_a_page(client) -> None:
    document = await (await client.get("/openapi.json")).json()
    slugs = {
        slug.strip("`")
        for item in document["paths"].values()
        for operation in item.values()
        for response in operation["responses"].values()
        if response["description"].startswith("Problem: ")
        for slug in response["description"][len("Problem: ") :].split(", ")
    }
    assert "insufficient-funds" in slugs
    for slug in slugs:
        assert (await client.get(f"/problems/{slug}")).status == 200
    await problem(await client.get("/problems/no-such-thing"), 404, "not-found")


async def test_unknown_route_and_wrong_method_are_problems(client) -> None:
    await problem(await client.get("/v2/everything"), 404, "not-found")
    response = await client.delete("/v1/accounts")
    await problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


async def test_unexpected_error_is_a_bare_500_that_leaks_nothing(client, monkeypatch, caplog) -> None:
    from ledger import accounts

    async def explode(*args, **kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(accounts, "get_account", explode)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/v1/accounts/sohag:wallet")
    body = await problem(response, 500, "internal-error")
    assert "hunter2" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    assert any("hunter2" in (record.exc_text or "") for record in caplog.records)


async def test_one_access_log_line_per_request_with_route_template(client, caplog) -> None:
    await open_account(client, "sohag:wallet")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ledger.access"):
        response = await client.get("/v1/accounts/sohag:wallet", headers={"X-Request-Id": "req-42"})
    assert response.headers["X-Request-Id"] == "req-42"
    lines = [record for record in caplog.records if record.name == "ledger.access"]
    assert len(lines) == 1
    fields = lines[0].fields
    assert fields["request_id"] == "req-42"
    assert fields["route"] == "/v1/accounts/{code}" and fields["method"] == "GET" and fields["status"] == 200
    assert fields["duration_ms"] >= 0


async def test_problem_carries_the_incoming_trace_id(client) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await client.get("/v1/accounts/ghost", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert (await problem(response, 404, "not-found"))["trace_id"] == trace_id
