"""`make chaos`, short: every fault drill against a local stack (embedded PostgreSQL, the loopback fault
proxy, the service as a child process), each with its checks; plus the proxy's toxics on their own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_drill_passes_its_checks_on_the_local_stack() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chaos.run", "--backend", "local", "--short"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report_md = ROOT / result.stdout.strip().splitlines()[-1].split("report in ")[1]
    report = json.loads((report_md.parent / "report.json").read_text())
    assert {r["name"] for r in report} == {
        "latency", "reset", "link-down", "bandwidth", "half-open", "postgres-kill", "service-kill"
    }  # fmt: skip
    for drill in report:
        assert drill["passed"], drill
        assert drill["details"]["acknowledged"] > 0
    outages = [d for d in report if "readyz_went_unready" in d["checks"]]
    assert len(outages) == 4


def test_the_proxy_toxics_do_what_they_say() -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen()
    proxy = FaultProxy("127.0.0.1", upstream.getsockname()[1]).start()
    opened: list[socket.socket] = [upstream]
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        server, _ = upstream.accept()
        opened += [client, server]
        client.sendall(b"ping")
        assert server.recv(4) == b"ping"
        proxy.set(latency_ms=200)
        started = time.monotonic()
        client.sendall(b"slow")
        assert server.recv(4) == b"slow" and time.monotonic() - started >= 0.19
        proxy.set(timeout=True)
        client.sendall(b"lost")
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.recv(4)
        proxy.reset_peers()
        with pytest.raises(ConnectionResetError):
            client.recv(4)
        proxy.set(down=True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        proxy.set()
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
        time.sleep(0.3)  # let the proxy finish with that connection before it stops
    finally:
        proxy.stop()
        for sock in opened:
            sock.close()
