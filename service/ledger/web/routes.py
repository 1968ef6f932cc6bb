"""The route table: every path the service answers, in one place."""

from __future__ import annotations

from aiohttp import web

from ledger.web import accounts, admin, docs, health, transactions


def add_routes(app: web.Application) -> None:
    app.add_routes(
        [
            web.get("/healthz", health.healthz),
            web.get("/readyz", health.readyz),
            web.get("/metrics", health.metrics),
            web.get("/openapi.json", docs.openapi_json),
            web.get("/docs", docs.docs_page),
            web.get("/problems/{slug}", docs.problem_page),
            web.post("/v1/accounts", accounts.create_account),
            web.get("/v1/accounts", accounts.list_accounts),
            web.get("/v1/accounts/{code}", accounts.get_account),
            web.get("/v1/accounts/{code}/postings", accounts.account_postings),
            web.get("/v1/accounts/{code}/balance", accounts.account_balance),
            web.post("/v1/transactions", transactions.post_transaction),
            web.get("/v1/transactions", transactions.list_transactions),
            web.post("/v1/transactions/batch", transactions.post_batch),
            # `batch` is not a transaction id: without the lookahead, GET /v1/transactions/batch would be
            # routed here and the path would claim methods the API document does not give it.
            web.get("/v1/transactions/{id:(?!batch$)[^/]+}", transactions.get_transaction),
            web.post("/v1/transactions/{id:(?!batch$)[^/]+}/reverse", transactions.reverse_transaction),
            web.post("/v1/keys", admin.create_key),
            web.get("/v1/keys", admin.list_keys),
            web.delete("/v1/keys/{id}", admin.revoke_key),
            web.get("/v1/audit", admin.list_audit),
        ]
    )
