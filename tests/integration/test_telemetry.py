"""Telemetry: one POST is one trace from the HTTP handler down to its SQL statements, the logs and problems
carry its ids, and /metrics exposes the RED, ledger and pool metrics with bounded labels."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ledger import telemetry
from tests.api import fund, open_account, post, problem, transfer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans():
    """Tracing on (as an OTLP endpoint would turn it on), listened to in memory. Requested before `client`,
    so that the app is made with tracing on."""
    assert telemetry.configure_tracing(force=True)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()


async def test_one_post_is_one_trace_from_handler_to_sql(spans, client, caplog) -> None:
    await open_account(client, "world", min_balance=None)
    await open_account(client, "a")
    spans.clear()
    with caplog.at_level(logging.INFO, logger="ledger.access"):
        response = await client.post(
            "/v1/transactions",
            json={"postings": transfer("world", "a", 5)},
            headers={"Idempotency-Key": "traced", "traceparent": TRACEPARENT},
        )
    assert response.status == 201
    finished = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]
    by_id = {s.context.span_id: s for s in finished}
    server = [s for s in finished if s.kind == trace.SpanKind.SERVER]
    assert len(server) == 1 and server[0].name.startswith("POST")
    engine = [s for s in finished if s.name == "ledger.post_batch"]
    assert len(engine) == 1
    assert engine[0].attributes["ledger.transactions"] == 1 and engine[0].attributes["ledger.postings"] == 2
    sql_spans = [
        s for s in finished if (s.attributes and "db.statement" in s.attributes) or s.name.startswith("SELECT")
    ]
    assert any("ledger_post_batch" in str(s.attributes.get("db.statement", s.name)) for s in sql_spans)

    def ancestors(span):  # walk up to the root through parents recorded in this trace
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    posting_sql = next(s for s in sql_spans if "ledger_post_batch" in str(s.attributes.get("db.statement")))
    assert engine[0] in ancestors(posting_sql) and server[0] in ancestors(posting_sql)
    # The key lookup, unless the key is cached already (ledger/keys.py, KeyCache), is part of the same trace.
    auth_sql = [s for s in sql_spans if "api_keys" in str(s.attributes.get("db.statement"))]
    assert all(server[0] in ancestors(s) for s in auth_sql)
    access = [r for r in caplog.records if getattr(r, "fields", {}).get("route") == "/v1/transactions"]
    assert access[-1].fields["trace_id"] == TRACE_ID
    assert access[-1].fields["span_id"] == format(server[0].context.span_id, "016x")


async def test_problems_carry_the_trace_id(spans, client) -> None:
    response = await client.get("/v1/accounts/ghost", headers={"traceparent": TRACEPARENT})
    assert (await problem(response, 404, "not-found"))["trace_id"] == TRACE_ID


async def test_metrics_expose_red_ledger_and_pool_with_bounded_labels(client) -> None:
    await open_account(client, "world", min_balance=None)
    await open_account(client, "acct:with:a:long:code")
    await fund(client, "acct:with:a:long:code", 7)
    await post(client, transfer("acct:with:a:long:code", "world", 100))  # refused: insufficient funds
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status == 200
    text = await response.text()
    for needle in (
        'ledger_http_requests_total{method="POST",route="/v1/transactions",status="201"}',
        'ledger_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/transactions"}',
        "ledger_http_requests_in_flight",
        "ledger_transactions_posted_total",
        'ledger_volume_minor_units_total{currency="BDT"}',
        'ledger_refusals_total{slug="insufficient-funds"}',
        "ledger_db_pool_size",
        "ledger_db_pool_in_use",
        "ledger_db_pool_acquire_duration_seconds_bucket",
        'ledger_db_query_duration_seconds_count{statement="post_transaction"}',
        'ledger_invariant_violations{check="currencies_sum_to_zero"}',
        'ledger_build_info{version="0.1.0"} 1.0',
    ):
        assert needle in text, needle
    assert "acct:with:a:long:code" not in text and "/v1/accounts/acct" not in text


async def test_the_monitor_reports_a_broken_invariant(client, clean_database) -> None:
    import asyncpg
    import psycopg

    await open_account(client, "world", min_balance=None)
    await open_account(client, "a")
    await fund(client, "a", 10)
    conn = await asyncpg.connect(clean_database)
    try:
        await telemetry.sample_gauges(conn)
        assert telemetry.invariant_violations.labels(check="currencies_sum_to_zero")._value.get() == 0
        with psycopg.connect(clean_database, autocommit=True) as tamper:
            tamper.execute("SET session_replication_role = replica")
            tamper.execute("UPDATE accounts SET balance = balance + 1 WHERE code = 'a'")
        await telemetry.sample_gauges(conn)
        assert telemetry.invariant_violations.labels(check="currencies_sum_to_zero")._value.get() == 1
        assert telemetry.audit_pending._value.get() >= 0
    finally:
        await conn.close()
