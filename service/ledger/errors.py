"""Every refusal the ledger can give, as one exception tree.

    LedgerError                       (status, slug, title; rendered as an RFC 9457 problem)
    ├── InvalidRequest            400 invalid-request        malformed JSON, bad query, missing header
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not-found
    ├── MethodNotAllowed          405 method-not-allowed
    ├── AccountExists             409 account-exists
    ├── DuplicateReference        409 duplicate-reference
    ├── AlreadyReversed           409 already-reversed
    ├── IdempotencyKeyInUse       409 idempotency-key-in-use
    ├── PayloadTooLarge           413 payload-too-large
    ├── UnsupportedMediaType      415 unsupported-media-type
    ├── ValidationFailed          422 validation-error       with field errors as JSON pointers
    ├── UnbalancedTransaction     422 unbalanced-transaction
    ├── UnknownAccount            422 unknown-account
    ├── CurrencyMismatch          422 currency-mismatch
    ├── InsufficientFunds         422 insufficient-funds
    ├── IdempotencyKeyReused      422 idempotency-key-reused
    ├── RateLimited               429 rate-limited           per API key token bucket; carries Retry-After
    ├── Unavailable               503 unavailable            database down; carries Retry-After
    └── InternalError             500 internal-error         never carries details

Database errors are translated into this tree at one boundary (`ledger.db.translate_errors`); the HTTP
layer renders it (`ledger.web.problems`). The order above is the README's error catalogue order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: `pointer` is an RFC 6901 JSON pointer into the request body."""

    pointer: str
    detail: str


class LedgerError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        # True when this refusal is the remembered answer to an earlier request with the same idempotency key.
        self.replayed = False

    def remembered(self) -> dict[str, object]:
        """What an idempotency key stores of this refusal, to give it again (see `from_remembered`)."""
        return {"slug": self.slug, "detail": self.detail}


class InvalidRequest(LedgerError):
    status, slug, title = 400, "invalid-request", "The request is malformed"


class Unauthorized(LedgerError):
    status, slug, title = 401, "unauthorized", "Authentication is required"


class Forbidden(LedgerError):
    status, slug, title = 403, "forbidden", "The API key lacks the scope for this"


class NotFound(LedgerError):
    status, slug, title = 404, "not-found", "No such resource"


class MethodNotAllowed(LedgerError):
    status, slug, title = 405, "method-not-allowed", "The resource does not support this method"


class AccountExists(LedgerError):
    status, slug, title = 409, "account-exists", "An account with this code exists"


class DuplicateReference(LedgerError):
    status, slug, title = 409, "duplicate-reference", "A transaction with this reference exists"


class AlreadyReversed(LedgerError):
    status, slug, title = 409, "already-reversed", "The transaction has already been reversed"


class IdempotencyKeyInUse(LedgerError):
    status, slug, title = 409, "idempotency-key-in-use", "A request with this idempotency key is in flight"
    retry_after_seconds = 1


class PayloadTooLarge(LedgerError):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class UnsupportedMediaType(LedgerError):
    status, slug, title = 415, "unsupported-media-type", "The request body must be application/json"


class ValidationFailed(LedgerError):
    status, slug, title = 422, "validation-error", "The request body is invalid"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e.pointer or '/'}: {e.detail}" for e in errors))
        self.errors = errors

    def remembered(self) -> dict[str, object]:
        return {**super().remembered(), "errors": [{"pointer": e.pointer, "detail": e.detail} for e in self.errors]}


class UnbalancedTransaction(LedgerError):
    status, slug, title = 422, "unbalanced-transaction", "The postings do not sum to zero per currency"


class UnknownAccount(LedgerError):
    status, slug, title = 422, "unknown-account", "A posting names an account that does not exist"


class CurrencyMismatch(LedgerError):
    status, slug, title = 422, "currency-mismatch", "A posting's currency is not its account's currency"


class InsufficientFunds(LedgerError):
    status, slug, title = 422, "insufficient-funds", "An account would go below its minimum balance"


class IdempotencyKeyReused(LedgerError):
    status, slug, title = 422, "idempotency-key-reused", "The idempotency key was used for another request"


class RateLimited(LedgerError):
    status, slug, title = 429, "rate-limited", "Too many requests for this API key"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(LedgerError):
    status, slug, title = 503, "unavailable", "The ledger is temporarily unavailable"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class InternalError(LedgerError):
    status, slug, title = 500, "internal-error", "Internal error"


def from_remembered(body: dict[str, object]) -> LedgerError:
    """Rebuild a remembered refusal (see `LedgerError.remembered`), marked as a replay."""
    kind = next((k for k in all_problem_classes() if k.slug == body.get("slug")), InternalError)
    raw_detail = body.get("detail")
    detail = str(raw_detail) if raw_detail is not None else None
    refusal: LedgerError
    if kind is ValidationFailed:
        raw = body.get("errors")
        items = raw if isinstance(raw, list) else []
        refusal = ValidationFailed([FieldError(str(e["pointer"]), str(e["detail"])) for e in items], detail)
    else:
        refusal = kind(detail)
    refusal.replayed = True
    return refusal


def all_problem_classes() -> list[type[LedgerError]]:
    """Every concrete refusal, in catalogue order (used by the README test and the OpenAPI document)."""
    return list(LedgerError.__subclasses__())
