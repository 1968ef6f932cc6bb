"""Money is an integer number of minor units in a signed 64-bit range; never a float."""

from __future__ import annotations

import re

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

CURRENCY_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{2,9}$")


def is_int64(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX
