"""The systems under drill, and how faults reach them.

`LocalStack`: where no Docker engine runs (CI here): an embedded PostgreSQL, the fault proxy of
chaos/proxy.py between it and the service, and the service as a child process; process faults are real
signals to real processes. `ComposeStack`: `make up`'s stack, the real toxiproxy through its HTTP API and
`docker compose kill` / `start` for process faults. Both offer the same operations to the drills.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from chaos.proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[1]


class Stack(Protocol):
    url: str
    api_key: str
    database_url: str | None  # superuser/owner URL straight to PostgreSQL (never through the faults)

    def toxics(self, **toxics: object) -> None: ...
    def reset_peers(self) -> None: ...
    def kill_postgres(self) -> None: ...
    def start_postgres(self) -> None: ...
    def kill_service(self) -> None: ...
    def start_service(self) -> None: ...
    def verify(self) -> str | None: ...
    def close(self) -> None: ...


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, *, timeout_seconds: float = 60) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready in {timeout_seconds} s")


class LocalStack:
    def __init__(self) -> None:
        from ledger import embedded_pg, schema

        self._base = Path(tempfile.mkdtemp(prefix="ledger-chaos-"))
        self._base.chmod(0o711)
        self._cluster = embedded_pg.EmbeddedPostgres(self._base / "data", durable=True)
        self._proxy: FaultProxy | None = None
        self._service: subprocess.Popen[bytes] | None = None
        try:
            self._build(schema)
        except BaseException:
            self.close()  # never leave a cluster or a service behind
            raise

    def _build(self, schema: Any) -> None:
        running = self._cluster.start()
        self._pg_port = running.port
        self.database_url: str | None = running.url()
        schema.apply_migrations(running.url())
        self._proxy = FaultProxy("127.0.0.1", self._pg_port).start()
        service_url = self._cluster.service_role_url(running)
        self._service_database_url = service_url.replace(f":{self._pg_port}/", f":{self._proxy.port}/")
        self.api_key = "ldg_chaos-" + os.urandom(16).hex()  # pragma: allowlist secret
        self._port = _free_port()
        self.url = f"http://127.0.0.1:{self._port}"
        self.start_service()

    def toxics(self, **toxics: object) -> None:
        assert self._proxy is not None
        self._proxy.set(**toxics)

    def reset_peers(self) -> None:
        assert self._proxy is not None
        self._proxy.reset_peers()

    def kill_postgres(self) -> None:
        pid = self._cluster.postmaster_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def start_postgres(self) -> None:
        # The killed postmaster's backends notice its death and exit; until they have, a new one refuses to
        # start on the same data directory, so retry for a while. Crash recovery replays the WAL.
        deadline = time.monotonic() + 60
        while True:
            try:
                self._cluster.start(port=self._pg_port)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def start_service(self) -> None:
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": self._service_database_url,
            "LEDGER_PORT": str(self._port),
            "LEDGER_BOOTSTRAP_API_KEY": self.api_key,
            "LEDGER_LOG_LEVEL": "warning",
            "LEDGER_RATE_LIMIT_PER_SECOND": "1000000",
            "LEDGER_DB_STATEMENT_TIMEOUT_SECONDS": "3",
            "LEDGER_DB_ACQUIRE_TIMEOUT_SECONDS": "2",
        }
        log = (self._base / "service.log").open("ab")
        self._service = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_ready(self.url)

    def kill_service(self) -> None:
        if self._service is not None:
            self._service.kill()
            self._service.wait(timeout=10)
            self._service = None

    def verify(self) -> str | None:
        return run_verify(self.database_url)

    def close(self) -> None:
        if self._service is not None:
            self._service.send_signal(signal.SIGTERM)
            try:
                self._service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._service.kill()
        if self._proxy is not None:
            self._proxy.stop()
        try:
            self._cluster.stop()
        finally:
            shutil.rmtree(self._base, ignore_errors=True)


def run_verify(database_url: str | None) -> str | None:
    """None when every invariant holds, else the report."""
    if database_url is None:
        return None
    import asyncio

    from ledger.verify import report, verify_database

    violations = asyncio.run(verify_database(database_url))
    return report(violations) if violations else None


class ComposeStack:
    """`make up`'s stack: ledger on 127.0.0.1:8080 reaching postgres through toxiproxy's `postgres` proxy."""

    def __init__(self) -> None:
        self.url = os.environ.get("LEDGER_URL", "http://127.0.0.1:8080")
        self.api_key = os.environ.get("LEDGER_API_KEY") or _env_file_value("LEDGER_BOOTSTRAP_API_KEY")
        self.database_url = os.environ.get("CHAOS_DATABASE_URL")  # else verify runs in the migrate container
        self._toxiproxy = os.environ.get("TOXIPROXY_URL", "http://127.0.0.1:8474")
        wait_ready(self.url)

    def _api(self, method: str, path: str, body: object | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self._toxiproxy}{path}", data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def toxics(self, **toxics: object) -> None:
        self._api("POST", "/reset")  # removes every toxic and re-enables every proxy
        if toxics.get("down"):
            self._api("POST", "/proxies/postgres", {"enabled": False})
        if toxics.get("latency_ms"):
            latency = {"name": "latency", "type": "latency", "attributes": {"latency": toxics["latency_ms"]}}
            self._api("POST", "/proxies/postgres/toxics", latency)
        if toxics.get("bandwidth_kbps"):
            rate = int(toxics["bandwidth_kbps"]) // 8  # type: ignore[call-overload]
            for stream in ("upstream", "downstream"):
                self._api("POST", "/proxies/postgres/toxics",
                          {"name": f"bandwidth-{stream}", "type": "bandwidth", "stream": stream,
                           "attributes": {"rate": rate}})  # fmt: skip
        if toxics.get("timeout"):
            self._api("POST", "/proxies/postgres/toxics",
                      {"name": "timeout", "type": "timeout", "attributes": {"timeout": 0}})  # fmt: skip

    def reset_peers(self) -> None:
        self._api("POST", "/proxies/postgres/toxics",
                  {"name": "reset", "type": "reset_peer", "attributes": {"timeout": 0}})  # fmt: skip
        time.sleep(0.2)
        self._api("DELETE", "/proxies/postgres/toxics/reset")

    def _compose(self, *args: str) -> None:
        subprocess.run(["docker", "compose", *args], cwd=ROOT, check=True)  # noqa: S607

    def kill_postgres(self) -> None:
        self._compose("kill", "-s", "SIGKILL", "postgres")

    def start_postgres(self) -> None:
        self._compose("start", "postgres")

    def kill_service(self) -> None:
        self._compose("kill", "-s", "SIGKILL", "ledger")

    def start_service(self) -> None:
        self._compose("start", "ledger")
        wait_ready(self.url)

    def verify(self) -> str | None:
        if self.database_url:
            return run_verify(self.database_url)
        result = subprocess.run(
            ["docker", "compose", "run", "--rm", "--no-deps", "-T", "migrate", "verify"],  # noqa: S607
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return None if result.returncode == 0 else result.stdout + result.stderr

    def close(self) -> None:
        self._api("POST", "/reset")


def _env_file_value(name: str) -> str:
    env_file = ROOT / ".env"
    for line in env_file.read_text().splitlines() if env_file.exists() else []:
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise SystemExit(f"{name} not found: set LEDGER_API_KEY or {name} in .env")
