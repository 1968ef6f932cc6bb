"""Configuration, from the environment only: parsed once at start, every bad variable named in one error."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """One or more environment variables are missing or malformed; the message lists them all."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    data_dir: Path
    host: str
    port: int
    bootstrap_api_key: str | None
    log_level: str
    body_size_max_bytes: int
    db_pool_size_max: int
    db_statement_timeout_seconds: float
    db_acquire_timeout_seconds: float
    idempotency_ttl_seconds: int
    idempotency_key_wait_seconds: float
    idempotency_purge_interval_seconds: float
    audit_chain_interval_seconds: float
    rate_limit_per_second: float
    rate_limit_burst: int
    auth_cache_seconds: float
    group_commit_max_batch: int
    group_commit_wait_seconds: float
    group_commit_flushers: int
    metadata_size_max_bytes: int
    monitor_interval_seconds: float
    shutdown_timeout_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def read(name: str, default: T, parse: Callable[[str], T], rule: str) -> T:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return parse(raw)
            except ValueError:
                problems.append(f"{name}={raw!r}: {rule}")
                return default

        def positive_int(raw: str) -> int:
            value = int(raw)
            if value <= 0:
                raise ValueError(raw)
            return value

        def positive_float(raw: str) -> float:
            value = float(raw)
            if not value > 0:
                raise ValueError(raw)
            return value

        def non_negative_float(raw: str) -> float:
            value = float(raw)
            if not value >= 0:
                raise ValueError(raw)
            return value

        def batch_size(raw: str) -> int:
            value = int(raw)
            if not 1 <= value <= 1000:
                raise ValueError(raw)
            return value

        def port(raw: str) -> int:
            value = int(raw)
            if not 0 < value < 65536:
                raise ValueError(raw)
            return value

        def database_url(raw: str) -> str:
            if not raw.startswith(("postgresql://", "postgres://")):
                raise ValueError(raw)
            return raw

        def log_level(raw: str) -> str:
            if raw.lower() not in LOG_LEVELS:
                raise ValueError(raw)
            return raw.lower()

        def secret(raw: str) -> str:
            if len(raw) < 32:
                raise ValueError(raw)
            return raw

        settings = cls(
            database_url=read("LEDGER_DATABASE_URL", None, database_url, "must be a postgresql:// URL"),
            data_dir=read("LEDGER_DATA_DIR", Path(".ledger"), Path, "must be a path"),
            host=read("LEDGER_HOST", "127.0.0.1", str, "must be an address"),
            port=read("LEDGER_PORT", 8080, port, "must be a port number 1..65535"),
            bootstrap_api_key=read("LEDGER_BOOTSTRAP_API_KEY", None, secret, "must be at least 32 characters"),
            log_level=read("LEDGER_LOG_LEVEL", "info", log_level, f"must be one of {', '.join(LOG_LEVELS)}"),
            body_size_max_bytes=read("LEDGER_BODY_SIZE_MAX_BYTES", 1024 * 1024, positive_int,
                                     "must be a positive integer"),
            db_pool_size_max=read("LEDGER_DB_POOL_SIZE_MAX", 10, positive_int, "must be a positive integer"),
            db_statement_timeout_seconds=read("LEDGER_DB_STATEMENT_TIMEOUT_SECONDS", 5.0, positive_float,
                                              "must be a positive number"),
            db_acquire_timeout_seconds=read("LEDGER_DB_ACQUIRE_TIMEOUT_SECONDS", 2.0, positive_float,
                                            "must be a positive number"),
            idempotency_ttl_seconds=read("LEDGER_IDEMPOTENCY_TTL_SECONDS", 86400, positive_int,
                                         "must be a positive integer"),
            idempotency_key_wait_seconds=read("LEDGER_IDEMPOTENCY_KEY_WAIT_SECONDS", 2.0, positive_float,
                                              "must be a positive number"),
            idempotency_purge_interval_seconds=read("LEDGER_IDEMPOTENCY_PURGE_INTERVAL_SECONDS", 60.0,
                                                    positive_float, "must be a positive number"),
            audit_chain_interval_seconds=read("LEDGER_AUDIT_CHAIN_INTERVAL_SECONDS", 0.2, positive_float,
                                              "must be a positive number"),
            rate_limit_per_second=read("LEDGER_RATE_LIMIT_PER_SECOND", 1000.0, positive_float,
                                       "must be a positive number"),
            group_commit_max_batch=read("LEDGER_GROUP_COMMIT_MAX_BATCH", 64, batch_size, "must be an integer 1..1000"),
            group_commit_wait_seconds=read("LEDGER_GROUP_COMMIT_WAIT_SECONDS", 0.0, non_negative_float,
                                           "must be a number of seconds >= 0"),
            group_commit_flushers=read("LEDGER_GROUP_COMMIT_FLUSHERS", 2, positive_int, "must be a positive integer"),
            auth_cache_seconds=read("LEDGER_AUTH_CACHE_SECONDS", 10.0, non_negative_float,
                                    "must be a number of seconds >= 0"),
            rate_limit_burst=read("LEDGER_RATE_LIMIT_BURST", 2000, positive_int, "must be a positive integer"),
            metadata_size_max_bytes=read("LEDGER_METADATA_SIZE_MAX_BYTES", 16384, positive_int,
                                         "must be a positive integer"),
            monitor_interval_seconds=read("LEDGER_MONITOR_INTERVAL_SECONDS", 15.0, positive_float,
                                          "must be a positive number"),
            shutdown_timeout_seconds=read("LEDGER_SHUTDOWN_TIMEOUT_SECONDS", 10.0, positive_float,
                                          "must be a positive number"),
        )  # fmt: skip
        if problems:
            raise ConfigError("bad configuration:\n  " + "\n  ".join(problems))
        return settings
