"""Handlers for /v1/keys and /v1/audit (admin scope)."""

from __future__ import annotations

import uuid

from aiohttp import web

from ledger import audit, keys
from ledger.errors import InvalidRequest, NotFound
from ledger.web import render
from ledger.web.auth import actor
from ledger.web.bodies import query_limit, query_text, read_json
from ledger.web.schemas import KeyIn
from ledger.web.state import connection, key_cache_key


async def create_key(request: web.Request) -> web.Response:
    body = await read_json(request, KeyIn)
    async with connection(request) as conn:
        created = await keys.create_key(
            conn, name=body.name, scopes=list(body.scopes), expires_at=body.expires_at, actor=actor(request)
        )
    assert created is not None  # a fresh 256-bit secret does not collide
    return render.json_response({**render.api_key(created.key), "secret": created.secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    limit, cursor = query_limit(request), query_text(request, "cursor")
    async with connection(request) as conn:
        page = await keys.list_keys(conn, limit=limit, cursor=cursor)
    return render.json_response(render.page(page, render.api_key))


async def revoke_key(request: web.Request) -> web.Response:
    try:
        key_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound(f"no API key {request.match_info['id']}") from None
    async with connection(request) as conn:
        key = await keys.revoke_key(conn, key_id=key_id, actor=actor(request))
    # The change notification will clear every process's cache; this one's is cleared now, so that the
    # very next request here is refused even before the notification arrives.
    request.app[key_cache_key].clear()
    return render.json_response(render.api_key(key))


async def list_audit(request: web.Request) -> web.Response:
    raw_after = query_text(request, "after")
    after = None
    if raw_after is not None:
        if not raw_after.isdigit() or len(raw_after) > 18:
            raise InvalidRequest("after must be a non-negative integer sequence")
        after = int(raw_after)
    start = audit.after_from_cursor(query_text(request, "cursor"), after)
    limit = query_limit(request)
    async with connection(request) as conn:
        page = await audit.list_entries(conn, after=start, limit=limit)
        status = await audit.chain_status(conn)
    body = render.page(page, render.audit_entry)
    body["chain"] = {"pending": status.pending, "lag_seconds": status.lag_seconds}
    return render.json_response(body)
