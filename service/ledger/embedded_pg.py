"""An embedded PostgreSQL cluster from the machine's own binaries.

`make run` (with no `LEDGER_DATABASE_URL`) and the test suite both use it: a cluster under a data directory,
created on first use, kept between runs, listening on 127.0.0.1 only (no Unix socket, so no shared socket
directory to collide in), with a generated superuser password kept beside it (mode 0600).

PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` system user
(which Debian's `postgresql` package creates); the data directory must then be reachable by that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

SUPERUSER = "postgres"
DATABASE = "ledger"


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be created, started or stopped (the message says why)."""


@dataclass(frozen=True, slots=True)
class RunningCluster:
    port: int
    password: str

    def url(self, database: str = DATABASE, *, user: str = SUPERUSER, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}"


def find_bindir() -> Path:
    """The directory of initdb/pg_ctl: `pg_config --bindir`, else the newest Debian layout."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)  # noqa: S603
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    raise EmbeddedPostgresError("PostgreSQL server binaries not found: apt-get install postgresql")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """One cluster in `data_dir/pgdata`; the password lives in `data_dir/superuser-password`."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.password_file = self.data_dir / "superuser-password"
        self.log_file = self.pgdata / "server.log"
        self.durable = durable
        self.bindir = find_bindir()
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own argv)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def _hand_to_server_user(self, path: Path) -> None:
        if self._as_root:
            server = pwd.getpwnam(SUPERUSER)
            os.chown(path, server.pw_uid, server.pw_gid)

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def initialize(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            # The server user must be able to walk down to pgdata; our own files stay private.
            self.data_dir.chmod(0o711)
        password = secrets.token_urlsafe(24)
        self.pgdata.mkdir(mode=0o700)
        self._hand_to_server_user(self.pgdata)
        pwfile = self.data_dir / "initdb-pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._hand_to_server_user(pwfile)
        try:
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=scram-sha-256",
                f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            )  # fmt: skip
        except EmbeddedPostgresError as exc:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            if self._as_root and "Permission denied" in str(exc):
                raise EmbeddedPostgresError(
                    f"{exc}\nThe 'postgres' user cannot reach {self.data_dir}: set LEDGER_DATA_DIR to a "
                    "directory it can traverse (for example /var/tmp/ledger)."
                ) from exc
            raise
        finally:
            pwfile.unlink(missing_ok=True)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)

    def start(self, *, port: int | None = None) -> RunningCluster:
        if not self.initialized():
            self.initialize()
        port = port or free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
        if not self.durable:
            # Throwaway test clusters only: durability is not what those tests are about.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += " -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-o", options, "-w", "-t", "60",
                  "start")  # fmt: skip
        cluster = RunningCluster(port=port, password=self.password_file.read_text().strip())
        self._ensure_database(cluster)
        return cluster

    def _ensure_database(self, cluster: RunningCluster) -> None:
        import psycopg  # synchronous and only needed here, so imported late

        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')  # constant name: no user input

    def service_role_url(self, cluster: RunningCluster) -> str:
        """Log the service in as the least-privilege role the migrations granted (`ledger_app`), with a
        password generated on first use and kept beside the cluster."""
        import psycopg

        password_file = self.data_dir / "service-password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(24) + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE ledger_app LOGIN PASSWORD {}").format(sql.Literal(password)))
        return cluster.url(user="ledger_app", password=password)

    def admin_api_key(self) -> str:
        """A first-run admin API key for `make run`, generated once and kept beside the cluster (mode 0600)."""
        key_file = self.data_dir / "admin-api-key"
        if not key_file.exists():
            key_file.write_text("ldg_" + secrets.token_urlsafe(32) + "\n")
            key_file.chmod(0o600)
        return key_file.read_text().strip()

    def postmaster_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop")


@contextlib.contextmanager
def running(data_dir: Path, *, durable: bool = True) -> Iterator[RunningCluster]:
    """Start the cluster, yield it, and always stop it cleanly."""
    with started(data_dir, durable=durable) as (_cluster, running_cluster):
        yield running_cluster


@contextlib.contextmanager
def started(data_dir: Path, *, durable: bool = True) -> Iterator[tuple[EmbeddedPostgres, RunningCluster]]:
    cluster = EmbeddedPostgres(data_dir, durable=durable)
    running_cluster = cluster.start()
    try:
        yield cluster, running_cluster
    finally:
        cluster.stop()
