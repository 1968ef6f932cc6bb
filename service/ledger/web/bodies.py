"""Reading a request: JSON bodies through a pydantic model, headers and query parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ledger.errors import FieldError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from ledger.web.state import settings_key

ModelT = TypeVar("ModelT", bound=BaseModel)

LIMIT_DEFAULT = 50
LIMIT_MAX = 500
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def _pointer(location: tuple[int | str, ...]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in location)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json(request: web.Request, model: type[ModelT], *, optional: bool = False) -> ModelT:
    """Parse the body strictly into `model`: 415 if not JSON, 413 if too large, 400 if malformed, 422 if
    invalid (with a JSON pointer per field). An `optional` body may be absent, meaning `{}`."""
    if optional and not request.body_exists:
        return model.model_validate({})
    if not _is_json(request.content_type):
        raise UnsupportedMediaType(f"expected application/json, got {request.content_type}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[settings_key].body_size_max_bytes
        raise PayloadTooLarge(f"the body may be at most {limit} bytes") from None
    except ConnectionResetError:
        # The client left before sending its whole body: nothing was done, and nobody reads this answer.
        raise InvalidRequest("the connection closed before the body was complete") from None
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in problems):
            raise InvalidRequest("the body is not valid JSON") from None
        raise ValidationFailed([FieldError(_pointer(e["loc"]), e["msg"]) for e in problems]) from None
    # NUL and lone surrogates can only arrive as \u escapes (the parser refuses them raw), so a body without
    # any escape needs no walk: most do not have one.
    unstorable = list(_unstorable_strings(parsed.model_dump(), ())) if b"\\u" in raw else []
    if unstorable:
        detail = "must not contain NUL characters or unpaired surrogates"
        raise ValidationFailed([FieldError(_pointer(location), detail) for location in unstorable])
    return parsed


def _unstorable_strings(value: object, location: tuple[int | str, ...]) -> Iterator[tuple[int | str, ...]]:
    """Where the body holds text PostgreSQL cannot store: NUL (`\\u0000`) or a lone UTF-16 surrogate, both
    valid JSON escapes. Keys are checked as well as values."""
    if isinstance(value, str):
        if not _storable(value):
            yield location
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _storable(key):
                yield (*location, key)
            yield from _unstorable_strings(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_strings(item, (*location, index))


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise InvalidRequest("the Idempotency-Key header is required")
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest("Idempotency-Key must be 1..255 printable ASCII characters")
    return key


def query_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return LIMIT_DEFAULT
    if not raw.isdigit() or not 1 <= int(raw) <= LIMIT_MAX:
        raise InvalidRequest(f"limit must be an integer from 1 to {LIMIT_MAX}")
    return int(raw)


def query_text(request: web.Request, name: str, *, required: bool = False) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise InvalidRequest(f"{name} may be given once")
    if not values:
        if required:
            raise InvalidRequest(f"the query parameter {name} is required")
        return None
    if not _storable(values[0]):
        raise InvalidRequest(f"{name} must not contain NUL characters")
    return values[0]


def check_query_names(request: web.Request, allowed: frozenset[str]) -> None:
    """Unknown query parameters are refused, as unknown body fields are: a typo must not pass silently."""
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        raise InvalidRequest(
            f"unknown query parameter {shown}; this route takes: {', '.join(sorted(allowed)) or 'none'}"
        )


def query_instant(request: web.Request, name: str) -> datetime | None:
    raw = query_text(request, name)
    if raw is None:
        return None
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an RFC 3339 date-time with a UTC offset") from None
    if instant.tzinfo is None:
        raise InvalidRequest(f"{name} must carry a UTC offset (for example 2026-01-31T00:00:00Z)")
    return instant
