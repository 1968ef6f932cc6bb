"""Applying and checking the SQL migrations (yoyo, over a synchronous psycopg connection)."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def migration_ids() -> list[str]:
    """The ids yoyo records for our migrations: file names without `.sql`, in order."""
    return sorted(path.stem for path in MIGRATIONS_DIR.glob("*.sql"))


def yoyo_url(database_url: str) -> str:
    """yoyo picks its driver from the URL scheme; we use psycopg 3."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgres", "postgresql"}:
        raise ValueError("database URL must start with postgresql://")
    return f"postgresql+psycopg://{rest}"


def apply_migrations(database_url: str) -> list[str]:
    """Apply what is pending under yoyo's lock (safe with several migrators); return the ids applied."""
    from yoyo import get_backend, read_migrations  # heavy imports, needed only here

    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    return [migration.id for migration in pending]
