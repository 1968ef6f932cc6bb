from __future__ import annotations

import pytest

from ledger.errors import InvalidRequest
from ledger.pagination import decode_cursor, decode_int_cursor, encode_cursor


def test_cursors_round_trip_and_are_opaque() -> None:
    assert decode_cursor(encode_cursor("sohag:wallet")) == "sohag:wallet"
    assert decode_int_cursor(encode_cursor(42)) == 42
    assert "sohag" not in encode_cursor("sohag:wallet")


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90LXZlcnNpb25lZA", encode_cursor("x"), encode_cursor(-1)])
def test_foreign_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_int_cursor(cursor)
