"""The one place where the service is wired: settings, pool, middlewares, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import uvloop
from aiohttp import web

from ledger import db
from ledger.config import Settings
from ledger.web.context import access_log_middleware
from ledger.web.problems import problems_middleware
from ledger.web.routes import add_routes
from ledger.web.state import pool_key, settings_key


def create_app(settings: Settings) -> web.Application:
    if settings.database_url is None:
        raise ValueError("create_app needs a database URL (the CLI starts the embedded cluster first)")
    database_url = settings.database_url
    app = web.Application(
        client_max_size=settings.body_size_max_bytes,
        middlewares=[access_log_middleware, problems_middleware],
    )
    app[settings_key] = settings

    async def database_pool(app: web.Application) -> AsyncIterator[None]:
        pool = await db.create_pool(
            database_url,
            size_max=settings.db_pool_size_max,
            statement_timeout_seconds=settings.db_statement_timeout_seconds,
        )
        app[pool_key] = pool
        yield
        await pool.close()

    app.cleanup_ctx.append(database_pool)
    add_routes(app)
    return app


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, which run_app turns into a graceful stop: in-flight requests drain."""
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
