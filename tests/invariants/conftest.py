from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.config import Settings
from tests.conftest import ADMIN_SECRET
from tests.live import LiveServer


@pytest.fixture(scope="module")
def live_server(service_database_url: str) -> Iterator[LiveServer]:
    settings = Settings.from_env(
        {
            "LEDGER_DATABASE_URL": service_database_url,
            "LEDGER_DB_POOL_SIZE_MAX": "10",
            "LEDGER_BOOTSTRAP_API_KEY": ADMIN_SECRET,
            "LEDGER_RATE_LIMIT_PER_SECOND": "100000",
        }
    )
    with LiveServer(settings) as server:
        yield server
