"""The ledger's nouns as plain values, and the rules a transaction must satisfy before it reaches the database."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from ledger.errors import FieldError, UnbalancedTransaction, ValidationFailed
from ledger.money import INT64_MAX, INT64_MIN

ACCOUNT_CODE_PATTERN = re.compile(r"^[a-z0-9_-]+(:[a-z0-9_-]+)*$")
ACCOUNT_CODE_MAX_LENGTH = 128
POSTINGS_MIN = 2
POSTINGS_MAX = 100

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    currency: str
    min_balance: int | None
    balance: int
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewPosting:
    """A posting as a client asks for it; `currency`, when given, must be the account's."""

    account: str
    amount: int
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount: int
    currency: str
    balance_after: int


@dataclass(frozen=True, slots=True)
class Transaction:
    id: uuid.UUID
    postings: list[Posting]
    description: str | None
    reference: str | None
    metadata: dict[str, Any]
    created_at: datetime
    reverses: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One posting in an account's statement, with the account's balance after it."""

    transaction_id: uuid.UUID
    amount: int
    currency: str
    balance_after: int
    description: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    account: str
    currency: str
    balance: int
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = field(default=None)


def valid_account_code(code: str) -> bool:
    return len(code) <= ACCOUNT_CODE_MAX_LENGTH and ACCOUNT_CODE_PATTERN.fullmatch(code) is not None


def new_transaction_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): time-ordered, so new rows land at the right edge of the primary key index."""
    unix_ms = time.time_ns() // 1_000_000
    value = (unix_ms & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


def check_postings(postings: list[NewPosting]) -> None:
    """Refuse what can be refused without the database: counts, zero and out-of-range amounts, and a total
    that is not zero. The sum per currency needs the accounts' currencies, so the posting engine (in the
    database, under the account locks) checks that part."""
    errors: list[FieldError] = []
    if not POSTINGS_MIN <= len(postings) <= POSTINGS_MAX:
        errors.append(FieldError("/postings", f"must have {POSTINGS_MIN} to {POSTINGS_MAX} postings"))
    for index, posting in enumerate(postings):
        if posting.amount == 0:
            errors.append(FieldError(f"/postings/{index}/amount", "must not be zero"))
        elif not INT64_MIN <= posting.amount <= INT64_MAX:
            errors.append(FieldError(f"/postings/{index}/amount", "must fit in signed 64 bits"))
        if not valid_account_code(posting.account):
            errors.append(FieldError(f"/postings/{index}/account", "is not a valid account code"))
    if errors:
        raise ValidationFailed(errors)
    by_currency: dict[str | None, int] = defaultdict(int)
    for posting in postings:
        by_currency[posting.currency] += posting.amount
    if sum(by_currency.values()) != 0:
        raise UnbalancedTransaction(f"the postings sum to {sum(by_currency.values())}, not zero")
    declared = {currency: total for currency, total in by_currency.items() if currency is not None}
    if None not in by_currency and any(total != 0 for total in declared.values()):
        raise UnbalancedTransaction("the postings do not sum to zero in " + ", ".join(
            sorted(currency for currency, total in declared.items() if total != 0)))  # fmt: skip


def check_metadata_size(metadata: dict[str, Any], *, max_bytes: int, pointer: str = "/metadata") -> None:
    try:
        size = len(orjson.dumps(metadata))
    except TypeError:  # found by schemathesis: JSON allows integers no 64-bit encoder (nor column) takes
        raise ValidationFailed([FieldError(pointer, "holds an integer outside the 64-bit range")]) from None
    if size > max_bytes:
        raise ValidationFailed([FieldError(pointer, f"is {size} bytes of JSON; at most {max_bytes} are allowed")])


def reversal_of(original: Transaction) -> list[NewPosting]:
    """The postings that undo `original`: every amount negated, in the same order."""
    return [NewPosting(account=p.account, amount=-p.amount, currency=p.currency) for p in original.postings]
