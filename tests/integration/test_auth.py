"""API keys: bearer authentication, scopes, expiry, revocation at once, the keys API and CLI, rate limits,
and no secret ever in a log line or a response after creation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ledger.app import create_app
from ledger.web.state import key_cache_key
from tests.api import open_account, problem
from tests.conftest import ADMIN_SECRET, AUTH


async def _new_key(client, *scopes: str, **extra) -> dict:
    response = await client.post("/v1/keys", json={"name": "test", "scopes": list(scopes), **extra})
    assert response.status == 201, await response.text()
    return await response.json()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_requests_without_a_valid_key_are_401(client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Basic abc"}, _bearer("ldg_not-a-real-key")):
        response = await client.get("/v1/accounts", headers=headers)
        await problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_health_docs_and_problem_pages_need_no_key(client) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/problems/not-found"):
        assert (await client.get(path, headers={"Authorization": ""})).status == 200, path


async def test_scopes_read_write_admin(client) -> None:
    reader = _bearer((await _new_key(client, "read"))["secret"])
    writer = _bearer((await _new_key(client, "write"))["secret"])
    body = {"code": "a", "currency": "BDT"}
    await problem(await client.post("/v1/accounts", json=body, headers=reader), 403, "forbidden")
    assert (await client.post("/v1/accounts", json=body, headers=writer)).status == 201
    assert (await client.get("/v1/accounts/a", headers=reader)).status == 200
    assert (await client.get("/v1/accounts/a", headers=writer)).status == 200
    for headers in (reader, writer):
        await problem(await client.get("/v1/keys", headers=headers), 403, "forbidden")
        await problem(await client.get("/v1/audit", headers=headers), 403, "forbidden")


async def test_key_secret_is_shown_once_and_stored_only_as_a_hash(client, clean_database) -> None:
    created = await _new_key(client, "read")
    secret = created["secret"]
    assert secret.startswith("ldg_") and len(secret) >= 4 + 43  # 256 bits, base64url
    listed = await (await client.get("/v1/keys")).json()
    assert created["id"] in {key["id"] for key in listed["data"]}
    assert all("secret" not in key for key in listed["data"])
    with psycopg.connect(clean_database) as conn:
        dump = str(conn.execute("SELECT * FROM api_keys").fetchall())
    assert secret not in dump and ADMIN_SECRET not in dump


async def test_revocation_takes_effect_at_once(client) -> None:
    created = await _new_key(client, "read")
    headers = _bearer(created["secret"])
    assert (await client.get("/v1/accounts", headers=headers)).status == 200
    revoked = await (await client.delete(f"/v1/keys/{created['id']}")).json()
    assert revoked["revoked_at"] is not None
    await problem(await client.get("/v1/accounts", headers=headers), 401, "unauthorized")
    again = await client.delete(f"/v1/keys/{created['id']}")
    assert again.status == 200 and (await again.json())["revoked_at"] == revoked["revoked_at"]
    await problem(await client.delete("/v1/keys/00000000-0000-0000-0000-000000000000"), 404, "not-found")


async def test_expired_keys_are_refused(client, clean_database) -> None:
    created = await _new_key(client, "read", expires_at=(datetime.now(UTC) + timedelta(seconds=3)).isoformat())
    headers = _bearer(created["secret"])
    assert (await client.get("/v1/accounts", headers=headers)).status == 200
    await asyncio.sleep(3.2)
    await problem(await client.get("/v1/accounts", headers=headers), 401, "unauthorized")
    response = await client.post(
        "/v1/keys", json={"name": "x", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"}
    )
    await problem(response, 422, "validation-error")


async def test_bad_key_requests_are_422(client) -> None:
    for body in ({"name": "x", "scopes": []}, {"name": "x", "scopes": ["root"]}, {"name": "", "scopes": ["read"]},
                 {"name": "x", "scopes": ["read"], "expires_at": "2030-01-01T00:00:00"}):  # fmt: skip
        await problem(await client.post("/v1/keys", json=body), 422, "validation-error")


async def test_rate_limit_answers_429_with_retry_after(aiohttp_client, settings) -> None:
    tight = dataclasses.replace(settings, rate_limit_per_second=0.01, rate_limit_burst=3)  # no refill mid-test
    client = await aiohttp_client(create_app(tight), headers=_bearer(ADMIN_SECRET))
    statuses = [(await client.get("/v1/accounts")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = await client.get("/v1/accounts")
    await problem(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert (await client.get("/healthz")).status == 200  # public routes are not limited


def test_token_bucket_refills_at_its_rate() -> None:
    from ledger.web.auth import TokenBuckets

    buckets = TokenBuckets(rate=2.0, burst=2)
    assert [buckets.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("k", now=0.5) == 0.0
    assert buckets.take("other", now=0.5) == 0.0


async def test_metadata_larger_than_the_limit_is_422(aiohttp_client, settings) -> None:
    small = dataclasses.replace(settings, metadata_size_max_bytes=64)
    client = await aiohttp_client(create_app(small), headers=_bearer(ADMIN_SECRET))
    body = {"code": "a", "currency": "BDT", "metadata": {"note": "x" * 100}}
    response = await problem(await client.post("/v1/accounts", json=body), 422, "validation-error")
    assert response["errors"][0]["pointer"] == "/metadata"


async def test_no_secret_ever_appears_in_logs_or_later_responses(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    created = await _new_key(client, "write")
    headers = _bearer(created["secret"])
    await open_account(client, "a")
    await client.get("/v1/accounts", headers=headers)
    await client.get("/v1/accounts", headers=_bearer(created["secret"] + "x"))
    later = [await (await client.get(path)).text() for path in ("/v1/keys", "/v1/audit")]
    text = "\n".join(record.getMessage() + str(getattr(record, "fields", "")) for record in caplog.records)
    for secret in (created["secret"], ADMIN_SECRET):
        assert secret not in text
        assert all(secret not in body for body in later)
    assert "request" in text  # the access log was captured, so the check above looked at something


def _cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "ledger", *args], env=env, capture_output=True, text=True)


@pytest.mark.usefixtures("clean_database")
async def test_keys_cli_creates_lists_and_revokes(client, service_database_url) -> None:
    created = await asyncio.to_thread(
        _cli, "keys", "create", "--name", "ops", "--scope", "read", url=service_database_url
    )
    assert created.returncode == 0, created.stderr
    secret = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("secret:"))
    key_id = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("id:"))
    assert (await client.get("/v1/accounts", headers=_bearer(secret))).status == 200
    listed = await asyncio.to_thread(_cli, "keys", "list", url=service_database_url)
    assert key_id in listed.stdout and secret not in listed.stdout
    revoked = await asyncio.to_thread(_cli, "keys", "revoke", key_id, url=service_database_url)
    assert revoked.returncode == 0, revoked.stderr
    await problem(await client.get("/v1/accounts", headers=_bearer(secret)), 401, "unauthorized")


async def _wait_for_listener(client) -> None:
    cache = client.app[key_cache_key]
    for _ in range(100):
        if cache.live:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the API key change listener never connected")


async def test_a_revocation_by_another_process_takes_effect_through_the_key_cache(client, clean_database) -> None:
    await _wait_for_listener(client)
    created = await _new_key(client, "read")
    headers = _bearer(created["secret"])
    assert (await client.get("/v1/accounts", headers=headers)).status == 200  # now cached
    with psycopg.connect(clean_database, autocommit=True) as conn:  # an operator, straight in the database
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (created["id"],))
    for _ in range(40):  # the notification arrives asynchronously, within milliseconds
        if (await client.get("/v1/accounts", headers=headers)).status == 401:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a revoked key was still accepted 2 s after the revocation committed")


@pytest.mark.parametrize("cache_seconds", [10.0, 0.0])
async def test_the_key_cache_spares_the_lookup_and_can_be_turned_off(
    aiohttp_client, settings, clean_database, cache_seconds
) -> None:
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, auth_cache_seconds=cache_seconds)), headers=AUTH
    )
    await _wait_for_listener(client)
    created = await _new_key(client, "read")
    headers = _bearer(created["secret"])
    assert (await client.get("/v1/accounts", headers=headers)).status == 200
    with psycopg.connect(clean_database, autocommit=True) as conn:
        # Revoked behind the triggers' back (no notification): only a cached key can still pass.
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s", (created["id"],))
    expected = 200 if cache_seconds > 0 else 401
    assert (await client.get("/v1/accounts", headers=headers)).status == expected
