"""Per-request identity (request id, trace id) and the one access-log line per request."""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from ledger import telemetry

log = logging.getLogger("ledger.access")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    trace_id: str
    span_id: str | None = None


_context_key = web.RequestKey("context", RequestContext)


def request_context(request: web.Request) -> RequestContext:
    context = request.get(_context_key)
    if context is None:
        context = request[_context_key] = _new_context(request)
    return context


def _new_context(request: web.Request) -> RequestContext:
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    ids = telemetry.current_trace_ids()  # the server span of the OpenTelemetry middleware, which runs first
    if ids is not None:
        return RequestContext(request_id=request_id, trace_id=ids[0], span_id=ids[1])
    match = _TRACEPARENT.fullmatch(request.headers.get("traceparent", ""))
    trace_id = match.group(1) if match and match.group(1) != "0" * 32 else secrets.token_hex(16)
    return RequestContext(request_id=request_id, trace_id=trace_id)


def route_template(request: web.Request) -> str:
    """The route's template (`/v1/accounts/{code}`), never the raw path: bounded label values."""
    info = request.match_info.route.resource
    if info is None or request.match_info.http_exception is not None:
        return "unmatched"
    return info.canonical


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line and the RED metrics per request."""
    context = request_context(request)
    started = time.perf_counter()
    status = 500
    telemetry.http_requests_in_flight.inc()
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = context.request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = route_template(request)
        telemetry.http_requests_in_flight.dec()
        telemetry.http_requests.labels(method=request.method, route=route, status=str(status)).inc()
        telemetry.http_request_duration.labels(method=request.method, route=route).observe(elapsed)
        log.info(
            "request",
            extra={
                "fields": {
                    "request_id": context.request_id,
                    "trace_id": context.trace_id,
                    "span_id": context.span_id,
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                }
            },
        )
