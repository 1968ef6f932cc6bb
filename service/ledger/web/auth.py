"""Bearer API keys on every route but health, the API document and problem pages; scopes; a per-key rate
limit. The key is stored on the request for the handlers (actor, idempotency scope)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from ledger import keys
from ledger.audit import Actor
from ledger.errors import RateLimited, Unauthorized
from ledger.web.bodies import check_query_names
from ledger.web.context import request_context
from ledger.web.openapi import query_parameters
from ledger.web.state import connection, key_cache_key, settings_key

api_key_key = web.RequestKey("api_key", keys.ApiKey)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
PUBLIC_PREFIXES = ("/problems/",)


def required_scope(request: web.Request) -> str | None:
    """None for public routes; else `read` for reads, `write` for ledger writes, `admin` for keys and audit."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else request.path
    if template in PUBLIC_PATHS or template.startswith(PUBLIC_PREFIXES):  # /metrics: keep it internal at the proxy
        return None
    if template.startswith(("/v1/keys", "/v1/audit")):
        return "admin"
    return "read" if request.method in {"GET", "HEAD"} else "write"


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("send Authorization: Bearer <API key>")
    return secret.strip()


@dataclass(slots=True)
class TokenBuckets:
    """One token bucket per API key, in this process: `rate` tokens a second, at most `burst` saved up.
    (A token bucket in a dict: the libraries at hand implement windows, not buckets.)"""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str, *, now: float | None = None) -> float:
        """Take a token; return 0 if granted, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate


rate_limits_key = web.AppKey("rate_limits", TokenBuckets)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:  # 404 and 405 are the same for everyone
        raise request.match_info.http_exception
    resource = request.match_info.route.resource
    if resource is not None and request.method != "HEAD":
        check_query_names(request, query_parameters().get((request.method, resource.canonical), frozenset()))
    scope = required_scope(request)
    if scope is not None:
        secret = _bearer(request)
        key = await keys.authenticate_cached(lambda: connection(request), request.app[key_cache_key], secret=secret)
        keys.require_scope(key, scope)
        wait = request.app[rate_limits_key].take(str(key.id))
        if wait > 0:
            raise RateLimited(
                f"more than {request.app[settings_key].rate_limit_per_second:g} requests a second",
                retry_after_seconds=max(1, math.ceil(wait)),
            )
        request[api_key_key] = key
    response: web.StreamResponse = await handler(request)
    return response


def actor(request: web.Request) -> Actor:
    context = request_context(request)
    return Actor(f"key:{request[api_key_key].id}", request_id=context.request_id, trace_id=context.trace_id)
