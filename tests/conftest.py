"""Test fixtures: one real PostgreSQL per test session, never a mock.

Where the database comes from, in order: `TEST_DATABASE_URL` (a superuser URL to a database the tests may
empty), else a throwaway cluster from the machine's PostgreSQL binaries, else a testcontainers PostgreSQL
when a Docker daemon answers. When none works the session fails with the reasons, it never skips.
Each test starts from empty tables, and the app under test uses its own real connection pool.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from ledger import schema
from ledger.app import create_app
from ledger.config import Settings

TABLES = (
    "idempotency_keys",
    "transaction_batches",
    "postings",
    "transactions",
    "accounts",
    "api_keys",
    "audit_outbox",
    "audit_log",
)
ADMIN_SECRET = "ldg_test-admin-secret-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}


def _docker_postgres(stack: contextlib.ExitStack) -> str:
    import docker  # testcontainers' dependency
    from testcontainers.postgres import PostgresContainer

    docker.from_env().ping()
    container = stack.enter_context(PostgresContainer("postgres:15", driver=None))
    return str(container.get_connection_url())


def _local_postgres(stack: contextlib.ExitStack) -> str:
    from ledger import embedded_pg

    base = Path(tempfile.mkdtemp(prefix="ledger-test-"))
    base.chmod(0o711)  # the server may run as the 'postgres' user
    stack.callback(shutil.rmtree, base, ignore_errors=True)
    cluster = stack.enter_context(embedded_pg.running(base / "cluster", durable=False))
    return cluster.url()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        url = os.environ.get("TEST_DATABASE_URL")
        failures: list[str] = []
        if not url:
            for source in (_local_postgres, _docker_postgres):
                try:
                    url = source(stack)
                    break
                except Exception as exc:  # each source may fail in its own way; all reasons are reported
                    failures.append(f"{source.__name__}: {type(exc).__name__}: {exc}")
        if not url:
            pytest.fail("no PostgreSQL for the tests:\n" + "\n".join(failures), pytrace=False)
        schema.apply_migrations(url)
        yield url


SERVICE_ROLE_PASSWORD = "ledger-app-test-password"


@pytest.fixture(scope="session")
def service_database_url(database_url: str) -> str:
    """The same database as the service's least-privilege role `ledger_app`, which the app under test uses."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE ledger_app LOGIN PASSWORD '{SERVICE_ROLE_PASSWORD}'")
    scheme, rest = database_url.split("://", 1)
    host_and_db = rest.split("@", 1)[1]
    return f"{scheme}://ledger_app:{SERVICE_ROLE_PASSWORD}@{host_and_db}"


def empty_tables(database_url: str, *, keep_api_keys: bool = False) -> None:
    """Empty the ledger behind the triggers' back (replica role): only tests may do this."""
    tables = [t for t in TABLES if not (keep_api_keys and t == "api_keys")]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("TRUNCATE " + ", ".join(tables))


@pytest.fixture
def clean_database(database_url: str) -> str:
    empty_tables(database_url)
    return database_url


@pytest.fixture
def settings(clean_database: str, service_database_url: str) -> Settings:
    return Settings.from_env(
        {
            "LEDGER_DATABASE_URL": service_database_url,
            "LEDGER_DB_POOL_SIZE_MAX": "20",
            "LEDGER_BOOTSTRAP_API_KEY": ADMIN_SECRET,
            "LEDGER_AUDIT_CHAIN_INTERVAL_SECONDS": "0.05",
        }
    )


@pytest.fixture
async def client(aiohttp_client: object, settings: Settings) -> TestClient[web.Request, web.Application]:
    make_client = aiohttp_client
    assert callable(make_client)
    test_client: TestClient[web.Request, web.Application] = await make_client(create_app(settings), headers=AUTH)
    return test_client
