"""Handlers for /v1/transactions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from aiohttp import web
from pydantic import BaseModel

from ledger import posting
from ledger.errors import NotFound
from ledger.model import NewPosting, Transaction, check_metadata_size
from ledger.web import render
from ledger.web.auth import actor, api_key_key
from ledger.web.bodies import idempotency_key, query_limit, query_text, read_json
from ledger.web.schemas import BatchIn, ReversalIn, TransactionIn
from ledger.web.state import committer_key, connection, settings_key


def _transaction_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no transaction {raw}") from None


def _created(transaction: Transaction, replayed: bool) -> web.Response:
    headers = {"Location": f"/v1/transactions/{transaction.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return render.json_response(render.transaction(transaction), status=201, headers=headers)


def _idempotency(request: web.Request, body: BaseModel) -> posting.IdempotencyKey:
    settings = request.app[settings_key]
    return posting.IdempotencyKey(
        scope=str(request[api_key_key].id),
        key=idempotency_key(request),
        fingerprint=posting.request_fingerprint(method=request.method, route=request.path, body=body.model_dump()),
        ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        in_flight_wait=timedelta(seconds=settings.idempotency_key_wait_seconds),
    )


async def post_transaction(request: web.Request) -> web.Response:
    idempotency_key(request)  # a missing key is refused before the body is read
    body = await read_json(request, TransactionIn)
    check_metadata_size(body.metadata, max_bytes=request.app[settings_key].metadata_size_max_bytes)
    postings = [NewPosting(p.account, p.amount, p.currency) for p in body.postings]
    new = posting.NewTransaction(postings, body.description, body.reference, body.metadata)
    outcome = await request.app[committer_key].submit(
        posting.Submission(new, _idempotency(request, body), actor(request))
    )

    async def load(transaction_id: uuid.UUID) -> Transaction:
        async with connection(request) as conn:
            return await posting.get_transaction(conn, transaction_id=transaction_id)

    transaction, replayed = await posting.settle(outcome, load)
    return _created(transaction, replayed)


async def post_batch(request: web.Request) -> web.Response:
    idempotency_key(request)
    body = await read_json(request, BatchIn)
    max_bytes = request.app[settings_key].metadata_size_max_bytes
    for transaction in body.transactions:
        check_metadata_size(transaction.metadata, max_bytes=max_bytes)
    new = [
        posting.NewTransaction(
            [NewPosting(p.account, p.amount, p.currency) for p in t.postings], t.description, t.reference, t.metadata
        )
        for t in body.transactions
    ]
    async with connection(request) as conn:
        transactions, replayed = await posting.post_batch(
            conn, transactions=new, idempotency=_idempotency(request, body), actor=actor(request)
        )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return render.json_response({"transactions": [render.transaction(t) for t in transactions]}, status=201,
                                headers=headers)  # fmt: skip


async def reverse_transaction(request: web.Request) -> web.Response:
    idempotency_key(request)
    transaction_id = _transaction_id(request)
    body = await read_json(request, ReversalIn, optional=True)
    check_metadata_size(body.metadata, max_bytes=request.app[settings_key].metadata_size_max_bytes)
    async with connection(request) as conn:
        transaction, replayed = await posting.reverse_transaction(
            conn,
            transaction_id=transaction_id,
            idempotency=_idempotency(request, body),
            actor=actor(request),
            description=body.description,
            metadata=body.metadata,
        )
    return _created(transaction, replayed)


async def get_transaction(request: web.Request) -> web.Response:
    transaction_id = _transaction_id(request)
    async with connection(request) as conn:
        transaction = await posting.get_transaction(conn, transaction_id=transaction_id)
    return render.json_response(render.transaction(transaction))


async def list_transactions(request: web.Request) -> web.Response:
    account = query_text(request, "account", required=True)
    assert account is not None
    limit, cursor = query_limit(request), query_text(request, "cursor")
    async with connection(request) as conn:
        page = await posting.list_transactions(conn, account=account, limit=limit, cursor=cursor)
    return render.json_response(render.page(page, render.transaction))
