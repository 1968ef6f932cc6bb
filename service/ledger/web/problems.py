"""Every refusal, aiohttp's own 404/405/413 included, as an RFC 9457 `application/problem+json` response."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from ledger import errors, telemetry
from ledger.web.context import request_context

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

_HTTP_ERRORS: dict[int, type[errors.LedgerError]] = {
    400: errors.InvalidRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def problem_response(request: web.Request, error: errors.LedgerError) -> web.Response:
    telemetry.refusals.labels(slug=error.slug).inc()
    if isinstance(error, errors.IdempotencyKeyInUse):
        telemetry.idempotency_conflicts.inc()
    body: dict[str, Any] = {
        "type": f"/problems/{error.slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": request.path,
        "trace_id": request_context(request).trace_id,
    }
    headers = {}
    if isinstance(error, errors.ValidationFailed):
        body["errors"] = [{"pointer": e.pointer, "detail": e.detail} for e in error.errors]
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(error, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="ledger"'
    if error.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.Response(
        status=error.status, body=orjson.dumps(body), content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def _from_http_exception(exc: web.HTTPException) -> errors.LedgerError:
    kind = _HTTP_ERRORS.get(exc.status)
    if kind is None:
        return errors.InvalidRequest(exc.reason) if 400 <= exc.status < 500 else errors.InternalError()
    if kind is errors.NotFound:
        return errors.NotFound("no such resource")
    if kind is errors.MethodNotAllowed:
        return errors.MethodNotAllowed(f"allowed: {', '.join(sorted(getattr(exc, 'allowed_methods', ())))}")
    return kind()


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except errors.LedgerError as exc:
        return problem_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(request, _from_http_exception(exc))
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    except Exception:
        log.exception("unhandled error", extra={"fields": {"request_id": request_context(request).request_id}})
        return problem_response(request, errors.InternalError("an unexpected error occurred; it has been logged"))
