"""The per-process API key cache: trusted only while its change listener is live, emptied on each change,
and never repopulated by a lookup that started before a change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ledger.keys import ApiKey, KeyCache

KEY = ApiKey(uuid.uuid4(), "k", ["read"], datetime.now(UTC), None, None)


def test_nothing_is_cached_while_the_listener_is_down() -> None:
    cache = KeyCache(ttl_seconds=10)
    cache.put(b"d", KEY, read_in_generation=cache.generation)
    assert cache.get(b"d") is None
    cache.set_live(True)
    cache.put(b"d", KEY, read_in_generation=cache.generation)
    assert cache.get(b"d") is KEY
    cache.set_live(False)
    assert cache.get(b"d") is None


def test_a_change_empties_the_cache_and_a_lookup_from_before_it_is_not_kept() -> None:
    cache = KeyCache(ttl_seconds=10)
    cache.set_live(True)
    before = cache.generation  # a request reads the key from the database...
    cache.clear()  # ...a revocation's notification arrives meanwhile...
    cache.put(b"d", KEY, read_in_generation=before)  # ...so what it read may be stale: not cached
    assert cache.get(b"d") is None
    cache.put(b"d", KEY, read_in_generation=cache.generation)
    assert cache.get(b"d") is KEY
    cache.clear()
    assert cache.get(b"d") is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = KeyCache(ttl_seconds=0)
    cache.set_live(True)
    cache.put(b"d", KEY, read_in_generation=cache.generation)
    assert cache.get(b"d") is None
