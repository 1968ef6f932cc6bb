"""Configuration comes from the environment only and fails fast, naming every bad variable at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import ConfigError, Settings


def test_defaults_without_any_variable() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.data_dir == Path(".ledger")
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.body_size_max_bytes == 1024 * 1024
    assert settings.idempotency_ttl_seconds == 86400
    assert settings.log_level == "info"


def test_every_bad_variable_is_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(
            {
                "LEDGER_PORT": "70000",
                "LEDGER_DATABASE_URL": "mysql://nope",
                "LEDGER_DB_POOL_SIZE_MAX": "0",
                "LEDGER_BOOTSTRAP_API_KEY": "short",
                "LEDGER_DB_STATEMENT_TIMEOUT_SECONDS": "-1",
            }
        )
    message = str(error.value)
    for name in (
        "LEDGER_PORT",
        "LEDGER_DATABASE_URL",
        "LEDGER_DB_POOL_SIZE_MAX",
        "LEDGER_BOOTSTRAP_API_KEY",
        "LEDGER_DB_STATEMENT_TIMEOUT_SECONDS",
    ):
        assert name in message
    assert "short" not in message.replace("LEDGER_BOOTSTRAP_API_KEY='short'", "")


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {"LEDGER_PORT": "9000", "LEDGER_LOG_LEVEL": "DEBUG", "LEDGER_DATABASE_URL": "postgresql://u@h/db"}
    )
    assert settings.port == 9000 and settings.log_level == "debug" and settings.database_url == "postgresql://u@h/db"
