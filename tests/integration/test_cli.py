"""The CLI as an operator runs it: migrate, configuration errors, and `serve` on the embedded cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ADMIN_SECRET


def _ledger(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger", *args], env=env, capture_output=True, text=True, timeout=60)


def test_bad_configuration_names_every_bad_variable_and_exits_2() -> None:
    env = {**os.environ, "LEDGER_PORT": "http", "LEDGER_LOG_LEVEL": "chatty", "LEDGER_DATABASE_URL": "mysql://x"}
    result = _ledger("migrate", env=env)
    assert result.returncode == 2
    for name in ("LEDGER_PORT", "LEDGER_LOG_LEVEL", "LEDGER_DATABASE_URL"):
        assert name in result.stderr


def test_migrate_is_idempotent(database_url: str) -> None:
    result = _ledger("migrate", env={**os.environ, "LEDGER_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "already up to date" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(
    url: str, body: dict[str, object] | None = None, key: str | None = None, *, secret: str = ADMIN_SECRET
) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {secret}")
    if key:
        request.add_header("Idempotency-Key", key)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "LEDGER_DATA_DIR": str(data_dir), "LEDGER_PORT": str(port), "LEDGER_LOG_LEVEL": "debug"}
    env.pop("LEDGER_DATABASE_URL", None)
    env.pop("LEDGER_BOOTSTRAP_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", "--migrate"], env=env, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _request(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("the service did not become ready within 60 s")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def test_serve_on_embedded_postgres_keeps_data_across_restarts_and_stops_cleanly() -> None:
    """What `make run` does: create the cluster and a first admin key on first start, keep both on the second,
    serve as the least-privilege role, stop the cluster on SIGTERM."""
    base = Path(tempfile.mkdtemp(prefix="ledger-run-"))
    base.chmod(0o711)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = _serve(base / "data", port)
    secret = (base / "data" / "admin-api-key").read_text().strip()
    try:
        assert _request(f"{url}/v1/accounts", {"code": "world", "currency": "BDT", "min_balance": None},
                        secret=secret)[0] == 201  # fmt: skip
        assert _request(f"{url}/v1/accounts", {"code": "sohag:wallet", "currency": "BDT"}, secret=secret)[0] == 201
        postings = [{"account": "world", "amount": -600}, {"account": "sohag:wallet", "amount": 600}]
        assert _request(f"{url}/v1/transactions", {"postings": postings}, key="first", secret=secret)[0] == 201
    finally:
        output = _stop(process)
    assert "authenticate with Authorization: Bearer $(cat" in output
    assert secret not in output
    assert "embedded PostgreSQL stopped" in output
    assert not (base / "data" / "pgdata" / "postmaster.pid").exists()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("route") == "/v1/transactions" and line.get("status") == 201 for line in lines)

    process = _serve(base / "data", port)
    try:
        status, account = _request(f"{url}/v1/accounts/sohag:wallet", secret=secret)
        assert status == 200 and account["balance"] == 600
    finally:
        _stop(process)
