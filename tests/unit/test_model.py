"""The domain's own checks, before any database is involved."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from ledger.errors import UnbalancedTransaction, ValidationFailed
from ledger.model import NewPosting, Posting, Transaction, check_postings, new_transaction_id, reversal_of


def _pointers(error: ValidationFailed) -> set[str]:
    return {e.pointer for e in error.errors}


def test_a_balanced_transfer_passes() -> None:
    check_postings([NewPosting("a", -600), NewPosting("b", 600)])


def test_fewer_than_two_or_more_than_100_postings_are_refused() -> None:
    with pytest.raises(ValidationFailed) as one:
        check_postings([NewPosting("a", 0)])
    assert "/postings" in _pointers(one.value)
    with pytest.raises(ValidationFailed):
        check_postings([NewPosting("a", 1), NewPosting("b", -1)] * 51)


def test_zero_and_out_of_range_amounts_are_refused_with_pointers() -> None:
    with pytest.raises(ValidationFailed) as error:
        check_postings([NewPosting("a", 0), NewPosting("b", 2**63), NewPosting("c", -(2**63))])
    assert _pointers(error.value) == {"/postings/0/amount", "/postings/1/amount"}


def test_invalid_account_codes_are_refused() -> None:
    with pytest.raises(ValidationFailed) as error:
        check_postings([NewPosting("A B", -1), NewPosting("b::c", 1)])
    assert _pointers(error.value) == {"/postings/0/account", "/postings/1/account"}


def test_a_nonzero_total_is_unbalanced() -> None:
    with pytest.raises(UnbalancedTransaction):
        check_postings([NewPosting("a", -600), NewPosting("b", 500)])


def test_declared_currencies_must_each_sum_to_zero() -> None:
    with pytest.raises(UnbalancedTransaction, match="BDT, USD"):
        check_postings([NewPosting("a", -5, "BDT"), NewPosting("b", 5, "USD")])
    check_postings([NewPosting("a", -5, "BDT"), NewPosting("b", 5, "BDT"), NewPosting("c", 1), NewPosting("d", -1)])


def test_reversal_negates_every_posting_in_order() -> None:
    original = Transaction(
        id=uuid.uuid4(),
        postings=[Posting("a", -600, "BDT", 400), Posting("b", 600, "BDT", 600)],
        description=None,
        reference=None,
        metadata={},
        created_at=datetime.now(UTC),
        reverses=None,
    )
    assert reversal_of(original) == [NewPosting("a", 600, "BDT"), NewPosting("b", -600, "BDT")]


def test_transaction_ids_are_uuid7_and_time_ordered() -> None:
    ids = [new_transaction_id() for _ in range(1000)]
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == 1000
    prefixes = [i.int >> 80 for i in ids]
    assert prefixes == sorted(prefixes)
