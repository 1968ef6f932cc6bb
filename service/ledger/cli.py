"""`python -m ledger serve | migrate | verify | healthcheck | keys create|list|revoke`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from ledger.config import ConfigError, Settings
from ledger.logs import configure_logging

log = logging.getLogger("ledger")


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """`LEDGER_DATABASE_URL`, or the embedded cluster under `LEDGER_DATA_DIR` for as long as we run."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    from ledger import embedded_pg

    log.info("starting embedded PostgreSQL", extra={"fields": {"data_dir": str(settings.data_dir)}})
    with embedded_pg.running(settings.data_dir) as cluster:
        yield cluster.url()
    log.info("embedded PostgreSQL stopped")


def serve(settings: Settings, *, migrate: bool) -> int:
    from ledger import schema
    from ledger.app import run

    if settings.database_url is not None:
        if migrate:
            applied = schema.apply_migrations(settings.database_url)
            log.info("migrations applied", extra={"fields": {"applied": applied}})
        _print_welcome(settings, bootstrap_from_env=settings.bootstrap_api_key is not None)
        run(settings)
        return 0

    from ledger import embedded_pg

    log.info("starting embedded PostgreSQL", extra={"fields": {"data_dir": str(settings.data_dir)}})
    with embedded_pg.started(settings.data_dir) as (cluster, running_cluster):
        applied = schema.apply_migrations(running_cluster.url())  # as the owner: the cluster's superuser
        log.info("migrations applied", extra={"fields": {"applied": applied}})
        embedded = dataclasses.replace(
            settings,
            database_url=cluster.service_role_url(running_cluster),
            bootstrap_api_key=settings.bootstrap_api_key or cluster.admin_api_key(),
        )
        _print_welcome(embedded, bootstrap_from_env=settings.bootstrap_api_key is not None)
        run(embedded)
    log.info("embedded PostgreSQL stopped")
    return 0


def _print_welcome(settings: Settings, *, bootstrap_from_env: bool) -> None:
    url = f"http://{settings.host}:{settings.port}"
    if bootstrap_from_env:
        how = "Authorization: Bearer $LEDGER_BOOTSTRAP_API_KEY (an admin key)"
    elif settings.bootstrap_api_key:
        key_file = settings.data_dir / "admin-api-key"
        how = f"Authorization: Bearer $(cat {key_file})  (an admin key made on first run)"
    else:
        how = "a key from `python -m ledger keys create --name me --scope admin`"
    print(f"ledger listening on {url}  (API document: {url}/docs)\nauthenticate with {how}", flush=True)  # noqa: T201


def migrate(settings: Settings) -> int:
    from ledger import schema

    with database_url(settings) as url:
        applied = schema.apply_migrations(url)
    print("applied: " + (", ".join(applied) or "nothing, already up to date"))  # noqa: T201
    return 0


def verify(settings: Settings) -> int:
    from ledger.verify import report, verify_database

    with database_url(settings) as url:
        violations = asyncio.run(verify_database(url))
    print(report(violations))  # noqa: T201
    return 1 if violations else 0


def manage_keys(settings: Settings, args: argparse.Namespace) -> int:
    """`keys create|list|revoke`: the operator's way in, recorded in the audit log as actor `cli`."""
    import uuid

    import asyncpg

    from ledger import keys
    from ledger.audit import Actor
    from ledger.errors import LedgerError

    async def run(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            if args.keys_command == "create":
                expires_at = None
                if args.expires_in_days is not None:
                    expires_at = datetime.now(UTC) + timedelta(days=args.expires_in_days)
                created = await keys.create_key(
                    conn, name=args.name, scopes=args.scope, expires_at=expires_at, actor=Actor("cli")
                )
                assert created is not None
                print(f"id:     {created.key.id}\nscopes: {','.join(created.key.scopes)}")  # noqa: T201
                print(f"secret: {created.secret}\n(shown once: store it now)")  # noqa: T201
            elif args.keys_command == "list":
                cursor = None
                while True:
                    page = await keys.list_keys(conn, limit=500, cursor=cursor)
                    for key in page.items:
                        state = "revoked" if key.revoked_at else "active"
                        print(f"{key.id}  {state:7}  {','.join(key.scopes):16} {key.name}")  # noqa: T201
                    if (cursor := page.next_cursor) is None:
                        break
            else:
                key = await keys.revoke_key(conn, key_id=uuid.UUID(args.id), actor=Actor("cli"))
                print(f"revoked {key.id} at {key.revoked_at}")  # noqa: T201
        except (LedgerError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        finally:
            await conn.close()
        return 0

    with database_url(settings) as url:
        return asyncio.run(run(url))


def healthcheck(settings: Settings) -> int:
    """For the image's HEALTHCHECK: distroless has no shell and no curl."""
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else settings.host  # noqa: S104
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.port}/readyz", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger", description="A double-entry payment ledger service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the HTTP API")
    serve_parser.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    commands.add_parser("migrate", help="apply pending migrations (as the owning role)")
    commands.add_parser("verify", help="check every ledger invariant on the live database")
    commands.add_parser("healthcheck", help="exit 0 if /readyz answers 200")
    keys_parser = commands.add_parser("keys", help="manage API keys")
    keys_commands = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", choices=["read", "write", "admin"], required=True,
                        help="repeat for several scopes")  # fmt: skip
    create.add_argument("--expires-in-days", type=int)
    keys_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_commands.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings.log_level)
    if args.command == "serve":
        return serve(settings, migrate=args.migrate)
    if args.command == "migrate":
        return migrate(settings)
    if args.command == "verify":
        return verify(settings)
    if args.command == "keys":
        return manage_keys(settings, args)
    return healthcheck(settings)
