"""`python -m ledger serve | migrate | verify | healthcheck`."""

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

    with database_url(settings) as url:
        if migrate or settings.database_url is None:
            applied = schema.apply_migrations(url)
            log.info("migrations applied", extra={"fields": {"applied": applied}})
        print(f"ledger listening on http://{settings.host}:{settings.port}", flush=True)  # noqa: T201
        run(dataclasses.replace(settings, database_url=url))
    return 0


def migrate(settings: Settings) -> int:
    from ledger import schema

    with database_url(settings) as url:
        applied = schema.apply_migrations(url)
    print("applied: " + (", ".join(applied) or "nothing, already up to date"))  # noqa: T201
    return 0


def verify(settings: Settings) -> int:
    import asyncpg

    from ledger.verify import report
    from ledger.verify import verify as run_checks

    async def check(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            violations = await run_checks(conn)
        finally:
            await conn.close()
        print(report(violations))  # noqa: T201
        return 1 if violations else 0

    with database_url(settings) as url:
        return asyncio.run(check(url))


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
    return healthcheck(settings)
