"""/healthz (the process is alive) and /readyz (the database answers and is migrated)."""

from __future__ import annotations

import asyncio

import asyncpg
import prometheus_client
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ledger import schema, sql
from ledger.errors import LedgerError
from ledger.web import render
from ledger.web.state import connection

_READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    return render.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(_READINESS_TIMEOUT_SECONDS), connection(request) as conn:
            applied = {row["migration_id"] for row in await conn.fetch(sql.SELECT_APPLIED_MIGRATIONS)}
    except (TimeoutError, LedgerError, OSError) as exc:
        return _unready(f"the database does not answer: {type(exc).__name__}")
    except asyncpg.exceptions.PostgresError:  # e.g. the migrations table does not exist yet
        return _unready("the database is not migrated")
    missing = [m for m in schema.migration_ids() if m not in applied]
    if missing:
        return _unready(f"migrations not applied: {', '.join(missing)}")
    return render.json_response({"status": "ok"})


def _unready(detail: str) -> web.Response:
    return render.json_response({"status": "unavailable", "detail": detail}, status=503, headers={"Retry-After": "1"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (public like the health routes; keep it off the internet at the proxy)."""
    return web.Response(body=prometheus_client.generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
