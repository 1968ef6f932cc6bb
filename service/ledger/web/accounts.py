"""Handlers for /v1/accounts."""

from __future__ import annotations

from aiohttp import web

from ledger import accounts, statements
from ledger.model import check_metadata_size
from ledger.web import render
from ledger.web.auth import actor
from ledger.web.bodies import query_instant, query_limit, query_text, read_json
from ledger.web.schemas import AccountIn
from ledger.web.state import connection, settings_key


async def create_account(request: web.Request) -> web.Response:
    body = await read_json(request, AccountIn)
    check_metadata_size(body.metadata, max_bytes=request.app[settings_key].metadata_size_max_bytes)
    async with connection(request) as conn:
        account = await accounts.create_account(
            conn,
            code=body.code,
            currency=body.currency,
            min_balance=body.min_balance,
            metadata=body.metadata,
            actor=actor(request),
        )
    return render.json_response(
        render.account(account), status=201, headers={"Location": f"/v1/accounts/{account.code}"}
    )


async def get_account(request: web.Request) -> web.Response:
    async with connection(request) as conn:
        account = await accounts.get_account(conn, code=request.match_info["code"])
    return render.json_response(render.account(account))


async def list_accounts(request: web.Request) -> web.Response:
    prefix = query_text(request, "prefix") or ""
    limit, cursor = query_limit(request), query_text(request, "cursor")
    async with connection(request) as conn:
        page = await accounts.list_accounts(conn, prefix=prefix, limit=limit, cursor=cursor)
    return render.json_response(render.page(page, render.account))


async def account_postings(request: web.Request) -> web.Response:
    limit, cursor = query_limit(request), query_text(request, "cursor")
    async with connection(request) as conn:
        page = await statements.statement(conn, account=request.match_info["code"], limit=limit, cursor=cursor)
    return render.json_response(render.page(page, render.statement_line))


async def account_balance(request: web.Request) -> web.Response:
    as_of = query_instant(request, "as_of")
    async with connection(request) as conn:
        balance = await statements.balance_as_of(conn, account=request.match_info["code"], as_of=as_of)
    return render.json_response(render.balance(balance))
