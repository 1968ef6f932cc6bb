"""Request and response bodies as pydantic models: strict parsing of requests (no floats or strings for
amounts, no unknown fields), and the JSON Schemas of the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from ledger.money import INT64_MAX, INT64_MIN

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
AccountCode = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9_-]+(:[a-z0-9_-]+)*$", examples=["sohag:wallet"])
]
Currency = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{2,9}$", examples=["BDT"])]
Metadata = Annotated[dict[str, JsonValue], Field(description="Free-form JSON object, stored as given.")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountIn(_Request):
    code: AccountCode
    currency: Currency
    min_balance: Annotated[int, Field(ge=INT64_MIN, le=0)] | None = Field(
        0, description="The floor the balance may not go below (<= 0); null for none."
    )
    metadata: Metadata = Field(default_factory=dict)


class PostingIn(_Request):
    account: AccountCode
    amount: Annotated[Int64, Field(description="Minor units, non-zero: negative debits, positive credits.")]
    currency: Currency | None = Field(None, description="If given, must be the account's currency.")


class TransactionIn(_Request):
    postings: Annotated[list[PostingIn], Field(min_length=2, max_length=100)]
    description: Annotated[str, Field(max_length=1000)] | None = None
    reference: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        None, description="Unique external id: a second transaction with it is refused."
    )
    metadata: Metadata = Field(default_factory=dict)


BATCH_SIZE_MAX = 1000


class BatchIn(_Request):
    transactions: Annotated[list[TransactionIn], Field(min_length=1, max_length=BATCH_SIZE_MAX)] = Field(
        description="Posted all or nothing, in this order: floors apply as if one after the other."
    )


class ReversalIn(_Request):
    description: Annotated[str, Field(max_length=1000)] | None = None
    metadata: Metadata = Field(default_factory=dict)


class AccountOut(_Response):
    code: str
    currency: str
    min_balance: int | None
    balance: int
    metadata: dict[str, JsonValue]
    created_at: datetime


class PostingOut(_Response):
    account: str
    amount: int
    currency: str
    balance_after: int


class TransactionOut(_Response):
    id: UUID
    postings: list[PostingOut]
    description: str | None
    reference: str | None
    metadata: dict[str, JsonValue]
    created_at: datetime
    reverses: UUID | None


class StatementLineOut(_Response):
    transaction_id: UUID
    amount: int
    currency: str
    balance_after: int
    description: str | None
    created_at: datetime


class BalanceOut(_Response):
    account: str
    currency: str
    balance: int
    as_of: datetime


class AccountPage(_Response):
    data: list[AccountOut]
    next_cursor: str | None


class BatchOut(_Response):
    transactions: list[TransactionOut]


class TransactionPage(_Response):
    data: list[TransactionOut]
    next_cursor: str | None


class StatementPage(_Response):
    data: list[StatementLineOut]
    next_cursor: str | None


class FieldErrorOut(_Response):
    pointer: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["/problems/insufficient-funds"])
    title: str
    status: int
    detail: str
    instance: str
    trace_id: str
    errors: list[FieldErrorOut] | None = None


class Health(_Response):
    status: Literal["ok", "unavailable"]
    detail: str | None = None


class KeyIn(_Request):
    model_config = ConfigDict(extra="forbid", strict=False)  # expires_at arrives as an RFC 3339 string

    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Literal["read", "write", "admin"]], Field(min_length=1, max_length=3)]
    expires_at: AwareDatetime | None = None


class KeyOut(_Response):
    id: UUID
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    secret: str = Field(description="The key's secret: shown this once, stored only as a hash.")


class KeyPage(_Response):
    data: list[KeyOut]
    next_cursor: str | None


class AuditEntryOut(_Response):
    sequence: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str
    request_id: str | None
    trace_id: str | None
    payload: dict[str, JsonValue]
    previous_hash: str = Field(description="Hex SHA-256 of the previous entry (zeros for the first).")
    hash: str = Field(description="Hex SHA-256(previous_hash || canonical JSON of this entry).")


class ChainOut(_Response):
    pending: int = Field(description="Entries written but not chained yet.")
    lag_seconds: float = Field(description="Age of the oldest entry not chained yet.")


class AuditPage(_Response):
    data: list[AuditEntryOut]
    next_cursor: str | None
    chain: ChainOut
