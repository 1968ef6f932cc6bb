"""Fault drills: one scenario per fault, each with its hypothesis and its checks.

During every drill a client load posts transfers and, like a real payment client, retries any error or
timeout with the same idempotency key until it gets an answer. A readiness probe polls /readyz. After the
fault is healed: every transaction acknowledged with a 2xx exists exactly once; none exists that no client
sent; `verify` passes; /readyz went unready during an outage and was ready again within 10 s after it;
requests during the outage got prompt 503 problems (bounded by the service's timeouts), not hangs.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from chaos.stack import Stack

RECOVERY_BOUND_SECONDS = 10.0
# The service answers within its acquire (2 s) plus statement (3 s) timeouts plus slack; anything slower
# during an outage counts as a hang.
PROMPT_BOUND_SECONDS = 8.0
CLIENT_TIMEOUT_SECONDS = 15.0
ACCOUNTS = 20


@dataclass
class Drill:
    name: str
    hypothesis: str
    inject: Callable[[Stack], None]
    heal: Callable[[Stack], None]
    outage: bool  # /readyz is expected to go unready while the fault lasts
    repeat_inject_every: float | None = None  # re-apply (e.g. reset peers) while the fault lasts


def _kill_postgres(stack: Stack) -> None:
    stack.kill_postgres()


def _start_postgres(stack: Stack) -> None:
    stack.start_postgres()


DRILLS = [
    Drill("latency", "200 ms more on every database round trip slows payments down but fails none",
          lambda s: s.toxics(latency_ms=200), lambda s: s.toxics(), outage=False),
    Drill("reset", "connections reset in the middle of transactions lose no acknowledged payment and create "
          "none twice: the transaction either committed (the retry replays it) or rolled back",
          lambda s: s.reset_peers(), lambda s: s.toxics(), outage=False, repeat_inject_every=0.7),
    Drill("link-down", "with the database unreachable the service answers 503 promptly, says unready, and "
          "recovers by itself within 10 s of the link coming back",
          lambda s: s.toxics(down=True), lambda s: s.toxics(), outage=True),
    Drill("bandwidth", "a squeezed link (32 kbit/s) slows payments but loses none",
          lambda s: s.toxics(bandwidth_kbps=32), lambda s: s.toxics(), outage=False),
    Drill("half-open", "a link that accepts but never answers makes requests time out into 503s, not hangs, "
          "and the service recovers once it answers again",
          lambda s: s.toxics(timeout=True), lambda s: s.toxics(), outage=True),
    Drill("postgres-kill", "PostgreSQL killed with SIGKILL and restarted under load: every acknowledged "
          "payment survives crash recovery, and the service reconnects by itself",
          _kill_postgres, _start_postgres, outage=True),
    Drill("service-kill", "the service killed with SIGKILL and restarted under load: clients retrying with "
          "their keys get exactly-once effects",
          lambda s: s.kill_service(), lambda s: s.start_service(), outage=True),
]  # fmt: skip


@dataclass
class Attempt:
    started: float
    elapsed: float
    status: int  # 0 = no answer (connection refused or reset, timeout)
    slug: str | None = None


@dataclass
class Payment:
    key: str
    body: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    transaction_id: str | None = None
    refused: bool = False
    replayed_after_ambiguity: bool | None = None  # the retry of an unanswered attempt was a replay


@dataclass
class DrillResult:
    name: str
    hypothesis: str
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


class Client:
    """Payment clients plus a readiness probe, on one event loop."""

    def __init__(self, stack: Stack, run: str) -> None:
        self.stack = stack
        self.run = run
        self.payments: list[Payment] = []
        self.readiness: list[tuple[float, int]] = []
        self.stopping = False

    def code(self, index: int) -> str:
        return f"chaos-{self.run}:acct-{index}"

    async def _post(
        self, session: aiohttp.ClientSession, path: str, body: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any], bool]:
        headers = {"Authorization": f"Bearer {self.stack.api_key}"}
        if key:
            headers["Idempotency-Key"] = key
        async with session.post(self.stack.url + path, json=body, headers=headers) as response:
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            return response.status, await response.json(content_type=None), replayed

    async def open_accounts(self, session: aiohttp.ClientSession) -> None:
        world = f"chaos-{self.run}:world"
        account = {"code": world, "currency": "BDT", "min_balance": None}
        status, body, _ = await self._post(session, "/v1/accounts", account, None)
        assert status == 201, body
        for index in range(ACCOUNTS):
            account = {"code": self.code(index), "currency": "BDT"}
            status, body, _ = await self._post(session, "/v1/accounts", account, None)
            assert status == 201, body
            payment = Payment(f"chaos-{self.run}-fund-{index}",
                              {"postings": [{"account": world, "amount": -1_000_000},
                                            {"account": self.code(index), "amount": 1_000_000}]})  # fmt: skip
            await self.pay(session, payment, give_up_at=time.monotonic() + 30)

    async def pay(self, session: aiohttp.ClientSession, payment: Payment, *, give_up_at: float) -> None:
        self.payments.append(payment)
        ambiguous = False
        while time.monotonic() < give_up_at:
            started = time.monotonic()
            try:
                status, body, replayed = await asyncio.wait_for(
                    self._post(session, "/v1/transactions", payment.body, payment.key), CLIENT_TIMEOUT_SECONDS
                )
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                status, body, replayed = 0, {}, False
            payment.attempts.append(Attempt(started, time.monotonic() - started, status, _slug(body)))
            if status == 201:
                payment.transaction_id = body["id"]
                if ambiguous:  # did the unanswered attempt commit after all? The replay header says so.
                    payment.replayed_after_ambiguity = replayed
                return
            if status == 422:
                payment.refused = True
                return
            ambiguous = ambiguous or status == 0 or status >= 500
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def load(self, session: aiohttp.ClientSession, *, until: Callable[[], bool], workers: int = 6) -> None:
        async def worker() -> None:
            while not until():
                source, destination = random.sample(range(ACCOUNTS), 2)
                body = {"postings": [{"account": self.code(source), "amount": -random.randint(1, 50)},
                                     {"account": self.code(destination), "amount": 0}]}  # fmt: skip
                body["postings"][1]["amount"] = -body["postings"][0]["amount"]
                payment = Payment(f"chaos-{self.run}-{uuid.uuid4()}", body)
                await self.pay(session, payment, give_up_at=time.monotonic() + 60)

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def probe(self, session: aiohttp.ClientSession, *, until: Callable[[], bool]) -> None:
        while not until():
            started = time.monotonic()  # a probe counts at the moment it asked
            try:
                async with session.get(self.stack.url + "/readyz", timeout=aiohttp.ClientTimeout(total=3)) as response:
                    status = response.status
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                status = 0
            self.readiness.append((started, status))
            await asyncio.sleep(0.2)


def _slug(body: dict[str, Any]) -> str | None:
    value = body.get("type") if isinstance(body, dict) else None
    return str(value).rsplit("/", 1)[-1] if value else None


async def _held_transactions(stack: Stack, session: aiohttp.ClientSession, run: str) -> set[str]:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    held: set[str] = set()

    async def pages(path: str) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            url = stack.url + path + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            async with session.get(url, headers=headers) as response:
                page = await response.json()
            items += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    for account in await pages(f"/v1/accounts?prefix=chaos-{run}:&limit=500"):
        held |= {t["id"] for t in await pages(f"/v1/transactions?account={account['code']}&limit=500")}
    return held


def _ready_since(client: Client, instant: float) -> bool:
    return any(t > instant and status == 200 for t, status in client.readiness)


async def run_drill(stack: Stack, drill: Drill, *, fault_seconds: float, calm_seconds: float) -> DrillResult:
    result = DrillResult(drill.name, drill.hypothesis)
    run = uuid.uuid4().hex[:8]
    client = Client(stack, run)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await client.open_accounts(session)
        phase = {"load_until": float("inf")}
        load = asyncio.create_task(client.load(session, until=lambda: time.monotonic() > phase["load_until"]))
        probe = asyncio.create_task(client.probe(session, until=lambda: time.monotonic() > phase["load_until"]))
        await asyncio.sleep(calm_seconds)
        fault_started = time.monotonic()
        await asyncio.to_thread(drill.inject, stack)
        while time.monotonic() - fault_started < fault_seconds:
            await asyncio.sleep(drill.repeat_inject_every or 0.1)
            if drill.repeat_inject_every:
                await asyncio.to_thread(drill.inject, stack)
        fault_ended = time.monotonic()
        await asyncio.to_thread(drill.heal, stack)
        healed = time.monotonic()
        # Keep the load on until the service is ready again (or the recovery bound has passed), then a
        # little longer, so that the retries of the outage's payments resolve.
        deadline = healed + RECOVERY_BOUND_SECONDS + 1
        while time.monotonic() < deadline and not _ready_since(client, healed):  # noqa: ASYNC110 (polls a list)
            await asyncio.sleep(0.1)
        phase["load_until"] = time.monotonic() + calm_seconds
        await load
        await probe
        held = await _held_transactions(stack, session, run)

    acknowledged = {p.transaction_id for p in client.payments if p.transaction_id}
    unresolved = [p for p in client.payments if p.transaction_id is None and not p.refused]
    during = [a for p in client.payments for a in p.attempts if fault_started <= a.started <= fault_ended]
    unready = [t for t, status in client.readiness if fault_started <= t <= healed and status != 200]
    ready_again = next((t for t, status in client.readiness if t > healed and status == 200), None)
    ambiguous = [p for p in client.payments if any(a.status == 0 or a.status >= 500 for a in p.attempts)]
    result.checks["acknowledged_exist_exactly_once"] = acknowledged <= held
    result.checks["none_exists_that_no_client_sent"] = len(held - acknowledged) <= len(unresolved)
    verify_report = await asyncio.to_thread(stack.verify)
    result.checks["verify_passes"] = verify_report is None
    if drill.outage:
        result.checks["readyz_went_unready"] = bool(unready)
        result.checks["ready_again_within_10s"] = (
            ready_again is not None and ready_again - healed <= RECOVERY_BOUND_SECONDS
        )
        hung = [a for a in during if a.status in (0, 503) and a.elapsed > PROMPT_BOUND_SECONDS]
        result.checks["outage_answers_were_prompt"] = not hung
    statuses: dict[str, int] = {}
    for attempt in during:
        statuses[str(attempt.status)] = statuses.get(str(attempt.status), 0) + 1
    result.details = {
        "payments": len(client.payments),
        "acknowledged": len(acknowledged),
        "held": len(held),
        "unresolved_keys": len(unresolved),
        "refused": sum(p.refused for p in client.payments),
        "attempts_during_fault_by_status": statuses,
        "max_attempt_seconds_during_fault": round(max((a.elapsed for a in during), default=0.0), 3),
        "ambiguous_payments": len(ambiguous),
        "ambiguous_resolved_as_replay": sum(1 for p in ambiguous if p.replayed_after_ambiguity),
        "ambiguous_resolved_as_first_post": sum(1 for p in ambiguous if p.replayed_after_ambiguity is False),
        "recovery_seconds": round(ready_again - healed, 2) if ready_again is not None else None,
        "verify": verify_report or "ok",
    }
    return result
