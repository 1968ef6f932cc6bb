"""Opaque cursors: the last key of a page, base64url-encoded with a version tag."""

from __future__ import annotations

import base64
import binascii

from ledger.errors import InvalidRequest

_PREFIX = "v1:"


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("cursor is not one this service issued") from None
    if not raw.startswith(_PREFIX):
        raise InvalidRequest("cursor is not one this service issued")
    return raw[len(_PREFIX) :]


def decode_int_cursor(cursor: str) -> int:
    value = decode_cursor(cursor)
    if not value.isdigit() or len(value) > 19:
        raise InvalidRequest("cursor is not one this service issued")
    return int(value)
