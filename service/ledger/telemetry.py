"""Telemetry: Prometheus metrics, OpenTelemetry tracing, and the background monitor behind the gauges.

Metric names are `ledger_*`, with units last; label values are bounded (route templates, problem slugs,
statement names from ledger/sql.py, currencies), never raw paths, account codes or ids. Tracing exports
over OTLP only when OpenTelemetry's own `OTEL_EXPORTER_OTLP_*` variables name an endpoint; spans are still
made (and their trace ids logged) without one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from ledger import __version__, sql
from ledger.audit import chain_status

log = logging.getLogger(__name__)
tracer = trace.get_tracer("ledger")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

http_requests = Counter("ledger_http_requests", "HTTP requests answered", ["method", "route", "status"])
http_request_duration = Histogram(
    "ledger_http_request_duration_seconds", "HTTP request latency", ["method", "route"], buckets=_LATENCY_BUCKETS
)
http_requests_in_flight = Gauge("ledger_http_requests_in_flight", "HTTP requests being handled")

transactions_posted = Counter("ledger_transactions_posted", "Transactions posted (reversals excluded)")
transactions_reversed = Counter("ledger_transactions_reversed", "Reversals posted")
postings = Counter("ledger_postings", "Postings written")
volume = Counter("ledger_volume_minor_units", "Sum of the positive amounts posted, in minor units", ["currency"])
refusals = Counter("ledger_refusals", "Requests refused, by problem type", ["slug"])
idempotent_replays = Counter("ledger_idempotent_replays", "Answers replayed for a repeated idempotency key")
idempotency_conflicts = Counter("ledger_idempotency_conflicts", "409 idempotency-key-in-use answers")
posting_retries = Counter(
    "ledger_posting_retries", "Posting attempts retried after a deadlock or serialization failure"
)

group_commit_batch_size = Histogram(
    "ledger_group_commit_batch_size",
    "Transactions per group-commit database call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
group_commit_fallbacks = Counter(
    "ledger_group_commit_fallbacks", "Group-commit calls that failed as a whole and were posted one by one"
)
audit_chain_lag = Gauge("ledger_audit_chain_lag_seconds", "Age of the oldest audit entry not chained yet")
audit_pending = Gauge("ledger_audit_pending_entries", "Audit entries written but not chained yet")
idempotency_keys_stored = Gauge("ledger_idempotency_keys_stored", "Idempotency keys stored (estimate)")
invariant_violations = Gauge(
    "ledger_invariant_violations", "Violations found by the periodic invariant check (0 = healthy)", ["check"]
)
invariant_check_timestamp = Gauge("ledger_invariant_check_timestamp_seconds", "When the last invariant check ended")

db_pool_size = Gauge("ledger_db_pool_size", "Connections open in the pool")
db_pool_in_use = Gauge("ledger_db_pool_in_use", "Connections lent out")
db_pool_idle = Gauge("ledger_db_pool_idle", "Connections open and idle")
db_pool_acquire_duration = Histogram(
    "ledger_db_pool_acquire_duration_seconds", "Wait for a pool connection", buckets=_LATENCY_BUCKETS
)
db_query_duration = Histogram(
    "ledger_db_query_duration_seconds", "Database statement latency", ["statement"], buckets=_LATENCY_BUCKETS
)
build_info = Gauge("ledger_build_info", "The running version", ["version"])
build_info.labels(version=__version__).set(1)

INVARIANT_CHECKS = ("currencies_sum_to_zero", "sampled_balances_match_postings")
for _check in INVARIANT_CHECKS:
    invariant_violations.labels(check=_check)

# ---- database statements by name: every named constant of ledger/sql.py, so label values stay bounded.
_STATEMENT_NAMES = {
    value: name.lower() for name, value in vars(sql).items() if name.isupper() and isinstance(value, str)
}


def statement_name(query: str) -> str:
    return _STATEMENT_NAMES.get(query, "other")


def query_logger(record: Any) -> None:
    """asyncpg's query logger: one histogram sample per statement, named by its ledger/sql.py constant."""
    db_query_duration.labels(statement=statement_name(record.query)).observe(record.elapsed)


def watch_pool(pool: asyncpg.Pool) -> None:
    """Read the pool's state at scrape time (several apps in one process: the last one wins)."""
    db_pool_size.set_function(pool.get_size)
    db_pool_idle.set_function(pool.get_idle_size)
    db_pool_in_use.set_function(lambda: pool.get_size() - pool.get_idle_size())


def record_posted(transaction_postings: list[tuple[int, str]], *, reversal: bool, replayed: bool) -> None:
    if replayed:
        idempotent_replays.inc()
        return
    (transactions_reversed if reversal else transactions_posted).inc()
    postings.inc(len(transaction_postings))
    for amount, currency in transaction_postings:
        if amount > 0:
            volume.labels(currency=currency).inc(amount)


# ---- tracing


_tracing_enabled = False


def otlp_endpoint_configured() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(*, force: bool = False) -> bool:
    """Trace requests and asyncpg statements when OpenTelemetry's standard variables name an OTLP endpoint
    (or when `force`d, as the tests do); return whether tracing is on. Off, no span is made at all: spans
    nobody exports cost about a fifth of the throughput (issue 5's note), and the logs' trace ids then come
    from the incoming `traceparent` or are random."""
    global _tracing_enabled
    if _tracing_enabled or not (force or otlp_endpoint_configured()):
        return _tracing_enabled
    _tracing_enabled = True
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider(resource=Resource.create({"service.name": "ledger", "service.version": __version__}))
        if otlp_endpoint_configured():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    return True


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span, if there is a valid one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# ---- the monitor: gauges that need a query, and the cheap periodic invariant check


async def sample_gauges(conn: asyncpg.Connection) -> None:
    status = await chain_status(conn)
    audit_chain_lag.set(status.lag_seconds)
    audit_pending.set(status.pending)
    idempotency_keys_stored.set(await conn.fetchval(sql.ESTIMATE_IDEMPOTENCY_KEYS) or 0)
    unbalanced = await conn.fetch(sql.CHECK_CURRENCIES_SUM_TO_ZERO)
    invariant_violations.labels(check="currencies_sum_to_zero").set(len(unbalanced))
    mismatched = await conn.fetchval(sql.CHECK_SAMPLED_BALANCES)
    invariant_violations.labels(check="sampled_balances_match_postings").set(mismatched or 0)
    invariant_check_timestamp.set(time.time())
    for row in unbalanced:
        log.error("INVARIANT BROKEN", extra={"fields": {"check": "currencies_sum_to_zero", "subject": row["subject"]}})


async def monitor_forever(acquire: Callable[[], Any], *, interval_seconds: float) -> None:
    while True:
        try:
            async with acquire() as conn:
                await sample_gauges(conn)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be down: the gauges keep their last values, the timestamp ages
            log.warning("monitor round failed", exc_info=True)
        await asyncio.sleep(interval_seconds)
