"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.api import fund, open_account


@pytest.fixture
async def ledger(client):
    """The service with `world` (no floor) and alice, bob, carol (floor 0); alice holds 100."""
    await open_account(client, "world", min_balance=None)
    for code in ("alice", "bob", "carol"):
        await open_account(client, code)
    await fund(client, "alice", 100)
    return client
