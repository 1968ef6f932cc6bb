"""The OpenAPI 3.1 document of the whole API, built from the route table's schemas (kept true by tests)."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ledger import __version__, errors
from ledger.web import schemas
from ledger.web.bodies import LIMIT_DEFAULT, LIMIT_MAX

_MODELS: list[type[BaseModel]] = [
    schemas.AccountIn, schemas.TransactionIn, schemas.BatchIn, schemas.ReversalIn, schemas.BatchOut,
    schemas.AccountOut, schemas.TransactionOut,
    schemas.BalanceOut, schemas.AccountPage, schemas.TransactionPage, schemas.StatementPage, schemas.Problem,
    schemas.Health, schemas.KeyIn, schemas.NewKeyOut, schemas.KeyOut, schemas.KeyPage, schemas.AuditPage,
]  # fmt: skip


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(model)}}}
    if headers:
        response["headers"] = headers
    return response


def _problems(*statuses: int) -> dict[str, Any]:
    """Problem responses for these statuses (plus 500 and 503, which any database-backed route may give)."""
    by_status: dict[int, list[str]] = {}
    for kind in errors.all_problem_classes():
        by_status.setdefault(kind.status, []).append(kind.slug)
    responses = {}
    for status in sorted({*statuses, 500, 503}):
        responses[str(status)] = {
            "description": "Problem: " + ", ".join(f"`{slug}`" for slug in by_status[status]),
            "content": {"application/problem+json": {"schema": _ref(schemas.Problem)}},
        }
    return responses


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_CODE = {
    "name": "code", "in": "path", "required": True, "description": "The account code, e.g. `sohag:wallet`.",
    "schema": {"type": "string", "pattern": r"^[a-z0-9_-]+(:[a-z0-9_-]+)*$", "maxLength": 128},
}  # fmt: skip
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_LIMIT = _query(
    "limit", f"Page size (default {LIMIT_DEFAULT}).", {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX}
)
_CURSOR = _query("cursor", "`next_cursor` of the previous page.", {"type": "string"})
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "Unique per intended effect; a retry with the same key and body replays the first answer.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
}  # fmt: skip
_REPLAYED = {
    "Idempotent-Replayed": {"description": "`true` when this answer replays an earlier request with the same key.",
                            "schema": {"type": "string", "enum": ["true"]}},
    "Location": {"description": "The transaction's URL.", "schema": {"type": "string"}},
}  # fmt: skip


def _body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _paths() -> dict[str, Any]:
    return {
        "/v1/accounts": {
            "post": {
                "operationId": "createAccount", "summary": "Open an account", "tags": ["accounts"],
                "requestBody": _body(schemas.AccountIn),
                "responses": {"201": _json(schemas.AccountOut, "The new account"),
                              **_problems(400, 409, 413, 415, 422)},
            },
            "get": {
                "operationId": "listAccounts", "summary": "List accounts by code, optionally under a prefix",
                "tags": ["accounts"],
                "parameters": [_query("prefix", "Only codes starting with this.", {"type": "string"}), _LIMIT, _CURSOR],
                "responses": {"200": _json(schemas.AccountPage, "A page of accounts"), **_problems(400)},
            },
        },
        "/v1/accounts/{code}": {
            "get": {
                "operationId": "getAccount", "summary": "An account with its balance", "tags": ["accounts"],
                "parameters": [_CODE],
                "responses": {"200": _json(schemas.AccountOut, "The account"), **_problems(404)},
            },
        },
        "/v1/accounts/{code}/postings": {
            "get": {
                "operationId": "getStatement", "summary": "The account's postings, newest first, with balance_after",
                "tags": ["accounts"], "parameters": [_CODE, _LIMIT, _CURSOR],
                "responses": {"200": _json(schemas.StatementPage, "A page of the statement"), **_problems(400, 404)},
            },
        },
        "/v1/accounts/{code}/balance": {
            "get": {
                "operationId": "getBalance", "summary": "The balance now, or at an instant", "tags": ["accounts"],
                "parameters": [_CODE, _query("as_of", "RFC 3339 instant (default: now).",
                                             {"type": "string", "format": "date-time"})],
                "responses": {"200": _json(schemas.BalanceOut, "The balance"), **_problems(400, 404)},
            },
        },
        "/v1/transactions": {
            "post": {
                "operationId": "postTransaction",
                "summary": "Post a transaction (postings summing to zero per currency)",
                "tags": ["transactions"], "parameters": [_IDEMPOTENCY_KEY], "requestBody": _body(schemas.TransactionIn),
                "responses": {"201": _json(schemas.TransactionOut, "The transaction", _REPLAYED),
                              **_problems(400, 409, 413, 415, 422)},
            },
            "get": {
                "operationId": "listTransactions", "summary": "An account's transactions, newest first",
                "tags": ["transactions"],
                "parameters": [_query("account", "The account code.", {"type": "string"}, required=True),
                               _LIMIT, _CURSOR],
                "responses": {"200": _json(schemas.TransactionPage, "A page of transactions"), **_problems(400, 404)},
            },
        },
        "/v1/transactions/batch": {
            "post": {
                "operationId": "postTransactionBatch",
                "summary": "Post up to 1,000 transactions at once, all or nothing, under one idempotency key",
                "description": "One database call: much cheaper per transaction than one request each. If any "
                               "transaction is refused, none is posted, and the problem's detail starts with the "
                               "JSON pointer of the first refused one (`/transactions/3: ...`).",
                "tags": ["transactions"], "parameters": [_IDEMPOTENCY_KEY], "requestBody": _body(schemas.BatchIn),
                "responses": {"201": _json(schemas.BatchOut, "The transactions, in the request's order",
                                           {"Idempotent-Replayed": _REPLAYED["Idempotent-Replayed"]}),
                              **_problems(400, 409, 413, 415, 422)},
            },
        },
        "/v1/transactions/{id}": {
            "get": {
                "operationId": "getTransaction", "summary": "A transaction with its postings", "tags": ["transactions"],
                "parameters": [_ID],
                "responses": {"200": _json(schemas.TransactionOut, "The transaction"), **_problems(404)},
            },
        },
        "/v1/transactions/{id}/reverse": {
            "post": {
                "operationId": "reverseTransaction", "summary": "Reverse a transaction (at most once)",
                "tags": ["transactions"], "parameters": [_ID, _IDEMPOTENCY_KEY],
                "requestBody": _body(schemas.ReversalIn, required=False),
                "responses": {"201": _json(schemas.TransactionOut, "The reversal", _REPLAYED),
                              **_problems(400, 404, 409, 413, 415, 422)},
            },
        },
        "/v1/keys": {
            "post": {
                "operationId": "createKey", "summary": "Create an API key (its secret is shown this once)",
                "tags": ["admin"], "requestBody": _body(schemas.KeyIn),
                "responses": {"201": _json(schemas.NewKeyOut, "The key with its secret"),
                              **_problems(400, 413, 415, 422)},
            },
            "get": {
                "operationId": "listKeys", "summary": "List API keys (never their secrets)", "tags": ["admin"],
                "parameters": [_LIMIT, _CURSOR],
                "responses": {"200": _json(schemas.KeyPage, "A page of keys"), **_problems(400)},
            },
        },
        "/v1/keys/{id}": {
            "delete": {
                "operationId": "revokeKey", "summary": "Revoke an API key, at once", "tags": ["admin"],
                "parameters": [_ID],
                "responses": {"200": _json(schemas.KeyOut, "The revoked key"), **_problems(404)},
            },
        },
        "/v1/audit": {
            "get": {
                "operationId": "listAudit", "summary": "Audit entries in sequence order, with the chain's lag",
                "tags": ["admin"],
                "parameters": [_query("after", "Entries after this sequence (default 0).",
                                      {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}), _LIMIT, _CURSOR],
                "responses": {"200": _json(schemas.AuditPage, "A page of audit entries"), **_problems(400)},
            },
        },
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics (keep it internal)",
                             "tags": ["service"],
                             "responses": {"200": {"description": "Prometheus text exposition",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/healthz": {"get": {"operationId": "healthz", "summary": "The process is alive", "tags": ["service"],
                             "responses": {"200": _json(schemas.Health, "Alive")}}},
        "/readyz": {"get": {"operationId": "readyz", "summary": "The database answers and is migrated",
                            "tags": ["service"],
                            "responses": {"200": _json(schemas.Health, "Ready"),
                                          "503": _json(schemas.Health, "Not ready")}}},
        "/problems/{slug}": {"get": {
            "operationId": "getProblemType", "summary": "What a problem type means", "tags": ["service"],
            "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "A page about the problem type",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}, **_problems(404)}}},
    }  # fmt: skip


def _secured(paths: dict[str, Any]) -> dict[str, Any]:
    """Every /v1 operation needs a bearer key: add the requirement and its 401, 403 and 429 problems."""
    for path, item in paths.items():
        if path.startswith("/v1/"):
            for operation in item.values():
                operation["security"] = [{"bearer": []}]
                operation["responses"].update(_problems(401, 403, 429))
                operation["responses"] = dict(sorted(operation["responses"].items()))
    return paths


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in _MODELS], ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ledger",
            "version": __version__,
            "description": "A double-entry payment ledger. Money is integer minor units; every refusal is an "
            "RFC 9457 problem whose `type` is `/problems/<slug>`.",
        },
        "paths": _secured(_paths()),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from POST /v1/keys, "
                    "`python -m ledger keys create`, or LEDGER_BOOTSTRAP_API_KEY.",
                },
            },
        },
    }


@functools.cache
def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(METHOD, route template) -> the query parameter names the document declares for it."""
    declared: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            declared[(method.upper(), path)] = frozenset(names)
    return declared
