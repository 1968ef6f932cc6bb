"""The one place where the service is wired: settings, pool, background work, middlewares, routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import warnings
from collections.abc import AsyncIterator

import asyncpg
import uvloop
from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor, create_aiohttp_middleware

from ledger import audit, db, group_commit, keys, posting, telemetry
from ledger.config import Settings
from ledger.web.auth import TokenBuckets, auth_middleware, rate_limits_key
from ledger.web.context import access_log_middleware
from ledger.web.problems import problems_middleware
from ledger.web.routes import add_routes
from ledger.web.state import chainer_key, committer_key, key_cache_key, pool_key, settings_key

log = logging.getLogger(__name__)


async def _purge_idempotency_keys_forever(app: web.Application) -> None:
    settings = app[settings_key]
    while True:
        await asyncio.sleep(settings.idempotency_purge_interval_seconds)
        try:
            async with app[pool_key].acquire() as conn:
                purged = await posting.purge_expired_idempotency_keys(conn)
            if purged:
                log.info("expired idempotency keys purged", extra={"fields": {"purged": purged}})
        except Exception:  # the database may be down; the next round tries again
            log.warning("idempotency key purge failed", exc_info=True)


def _server_tracing_middleware() -> Middleware:
    """OpenTelemetry's aiohttp server middleware. Its instrumentor sets up the module (excluded URLs,
    semantic-convention mode, meters) but also swaps `web.Application` for a subclass and warns; we want only
    the setup, and add the middleware ourselves (machine notes: the swap misbehaves with create_app)."""
    instrumentor = AioHttpServerInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        original = web.Application
        with warnings.catch_warnings():  # aiohttp discourages the subclass we are about to throw away
            warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
            instrumentor.instrument()
        web.Application = original  # type: ignore[misc]
    middleware: Middleware = create_aiohttp_middleware()
    return middleware


def create_app(settings: Settings) -> web.Application:
    if settings.database_url is None:
        raise ValueError("create_app needs a database URL (the CLI starts the embedded cluster first)")
    database_url = settings.database_url
    middlewares: list[Middleware] = [access_log_middleware, problems_middleware, auth_middleware]
    if telemetry.configure_tracing():
        # The OpenTelemetry server span opens first, so that every log line and problem carries its trace id.
        middlewares.insert(0, _server_tracing_middleware())
    app = web.Application(client_max_size=settings.body_size_max_bytes, middlewares=middlewares)
    app[settings_key] = settings
    app[key_cache_key] = keys.KeyCache(ttl_seconds=settings.auth_cache_seconds)
    app[rate_limits_key] = TokenBuckets(rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst)

    async def database_pool(app: web.Application) -> AsyncIterator[None]:
        pool = await db.create_pool(
            database_url,
            size_max=settings.db_pool_size_max,
            statement_timeout_seconds=settings.db_statement_timeout_seconds,
        )
        app[pool_key] = pool
        yield
        await pool.close()

    async def bootstrap_key(app: web.Application) -> AsyncIterator[None]:
        if settings.bootstrap_api_key is not None:
            try:
                async with app[pool_key].acquire() as conn:
                    await keys.ensure_bootstrap_key(conn, secret=settings.bootstrap_api_key)
            except (OSError, asyncpg.PostgresError):
                # Not fatal: the service must start (and say 503 on /readyz) while its database is down.
                log.warning("could not ensure the bootstrap API key yet", exc_info=True)
        yield

    async def background_work(app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_purge_idempotency_keys_forever(app), name="idempotency-purge"),
            asyncio.create_task(
                keys.listen_for_key_changes(lambda: db.connect(database_url), app[key_cache_key]),
                name="api-key-listener",
            ),
            asyncio.create_task(
                telemetry.monitor_forever(app[pool_key].acquire, interval_seconds=settings.monitor_interval_seconds),
                name="monitor",
            ),
        ]
        async with (
            audit.running_chainer(app[pool_key], interval_seconds=settings.audit_chain_interval_seconds) as chainer,
            group_commit.running(
                lambda: db.connection(app[pool_key], timeout_seconds=settings.db_acquire_timeout_seconds),
                max_batch=settings.group_commit_max_batch,
                max_wait_seconds=settings.group_commit_wait_seconds,
                flushers=settings.group_commit_flushers,
            ) as committer,
        ):
            app[chainer_key] = chainer
            app[committer_key] = committer
            yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.extend([database_pool, bootstrap_key, background_work])
    add_routes(app)
    return app


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, which run_app turns into a graceful stop: in-flight requests drain."""
    # Everything imported so far lives as long as the process: keep it out of the cyclic collector's scans,
    # and scan the young generation less often (py-spy: ~4 % of the CPU of a post went to collections).
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
