"""A stateful property test: random sequences of account openings, posts, retries, reversals and bad
requests against the running service and against an in-memory model of the ledger; after every step the
two must agree on every answer and every balance, and `verify` must pass at the end of each run."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from ledger.verify import report, verify
from tests.conftest import AUTH, empty_tables
from tests.live import LiveServer

CODES = ["a", "b", "c", "d:x", "e:y"]
CURRENCIES = ["BDT", "USD"]


@dataclass
class ModelAccount:
    currency: str
    floor: int | None
    balance: int = 0


@dataclass
class ModelTransaction:
    postings: list[tuple[str, int]]
    reversed: bool = False


@dataclass
class Model:
    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    transactions: dict[str, ModelTransaction] = field(default_factory=dict)

    def outcome(self, postings: list[tuple[str, int]], balances: dict[str, int] | None = None) -> str:
        """The refusal the ledger must give, in its precedence order, or 'ok'."""
        static = self.static_outcome(postings)
        if static != "ok":
            return static
        balances = balances if balances is not None else {c: a.balance for c, a in self.accounts.items()}
        by_account: dict[str, int] = {}
        for code, amount in postings:
            by_account[code] = by_account.get(code, 0) + amount
        for code, delta in by_account.items():
            floor = self.accounts[code].floor
            if floor is not None and balances[code] + delta < floor:
                return "insufficient-funds"
        return "ok"

    def static_outcome(self, postings: list[tuple[str, int]]) -> str:
        """What can be refused from the request and the accounts alone: unknown, then unbalanced."""
        if any(code not in self.accounts for code, _ in postings):
            return "unknown-account"
        by_currency: dict[str, int] = {}
        for code, amount in postings:
            by_currency[self.accounts[code].currency] = by_currency.get(self.accounts[code].currency, 0) + amount
        return "unbalanced-transaction" if any(by_currency.values()) else "ok"

    def batch_outcome(self, batch: list[list[tuple[str, int]]]) -> tuple[int, str]:
        """All or nothing: the first transaction refused on its own (unknown, unbalanced), else the first
        refused by a floor when they are applied one after the other; (-1, 'ok') if none is."""
        for index, postings in enumerate(batch):
            static = self.static_outcome(postings)
            if static != "ok":
                return index, static
        balances = {c: a.balance for c, a in self.accounts.items()}
        for index, postings in enumerate(batch):
            if self.outcome(postings, balances) != "ok":
                return index, "insufficient-funds"
            for code, amount in postings:
                balances[code] += amount
        return -1, "ok"

    def apply(self, postings: list[tuple[str, int]]) -> None:
        for code, amount in postings:
            self.accounts[code].balance += amount


class LedgerMachine(RuleBasedStateMachine):
    server: LiveServer
    database_url: str

    def __init__(self) -> None:
        super().__init__()
        empty_tables(self.database_url, keep_api_keys=True)
        self.http = httpx.Client(base_url=self.server.url, timeout=30, headers=AUTH)
        self.model = Model()
        self.sent: dict[str, tuple[list[tuple[str, int]], httpx.Response]] = {}

    transactions = Bundle("transactions")
    keys = Bundle("keys")

    @initialize()
    def open_the_world(self) -> None:
        for currency in CURRENCIES:
            code = f"world:{currency.lower()}"
            response = self.http.post("/v1/accounts", json={"code": code, "currency": currency, "min_balance": None})
            assert response.status_code == 201
            self.model.accounts[code] = ModelAccount(currency, None)

    @rule(code=st.sampled_from(CODES), currency=st.sampled_from(CURRENCIES), floor=st.sampled_from([0, -50, None]))
    def open_account(self, code: str, currency: str, floor: int | None) -> None:
        response = self.http.post("/v1/accounts", json={"code": code, "currency": currency, "min_balance": floor})
        if code in self.model.accounts:
            assert response.status_code == 409 and response.json()["type"] == "/problems/account-exists"
        else:
            assert response.status_code == 201, response.text
            self.model.accounts[code] = ModelAccount(currency, floor)

    def _post(self, postings: list[tuple[str, int]], key: str) -> httpx.Response:
        body = {"postings": [{"account": code, "amount": amount} for code, amount in postings]}
        return self.http.post("/v1/transactions", json=body, headers={"Idempotency-Key": key})

    def _expect(self, response: httpx.Response, postings: list[tuple[str, int]]) -> str | None:
        expected = self.model.outcome(postings)
        if expected == "ok":
            assert response.status_code == 201, response.text
            self.model.apply(postings)
            transaction_id: str = response.json()["id"]
            self.model.transactions[transaction_id] = ModelTransaction(postings)
            return transaction_id
        assert response.status_code == 422, response.text
        assert response.json()["type"] == f"/problems/{expected}"
        return None

    @rule(
        target=keys,
        legs=st.lists(
            st.tuples(st.sampled_from([*CODES, "world:bdt", "world:usd", "ghost"]), st.integers(1, 120)),
            min_size=1,
            max_size=3,
        ),
        sink=st.sampled_from([*CODES, "world:bdt", "world:usd"]),
    )
    def post_transaction(self, legs: list[tuple[str, int]], sink: str) -> str:
        postings = [(code, -amount) for code, amount in legs] + [(sink, sum(amount for _, amount in legs))]
        key = str(uuid.uuid4())
        response = self._post(postings, key)
        if self._expect(response, postings) is not None:
            self.sent[key] = (postings, response)
        return key

    @rule(
        batch=st.lists(
            st.tuples(st.sampled_from([*CODES, "world:bdt", "world:usd", "ghost"]), st.integers(1, 120),
                      st.sampled_from([*CODES, "world:bdt", "world:usd"])),
            min_size=1,
            max_size=4,
        ),
    )  # fmt: skip
    def post_a_batch(self, batch: list[tuple[str, int, str]]) -> None:
        transactions = [[(source, -amount), (sink, amount)] for source, amount, sink in batch]
        body = {"transactions": [{"postings": [{"account": c, "amount": a} for c, a in t]} for t in transactions]}
        response = self.http.post("/v1/transactions/batch", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        index, expected = self.model.batch_outcome(transactions)
        if expected == "ok":
            assert response.status_code == 201, response.text
            posted = response.json()["transactions"]
            assert len(posted) == len(transactions)
            for postings, transaction in zip(transactions, posted, strict=True):
                self.model.apply(postings)
                self.model.transactions[transaction["id"]] = ModelTransaction(postings)
            return
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"] == f"/problems/{expected}"
        assert problem["detail"].startswith(f"/transactions/{index}: "), problem

    @rule(key=keys)
    def retry_with_the_same_key(self, key: str) -> None:
        if key not in self.sent:
            return
        postings, first = self.sent[key]
        response = self._post(postings, key)
        assert response.status_code == 201
        assert response.headers["Idempotent-Replayed"] == "true"
        assert response.json() == first.json()

    @rule(key=keys, amount=st.integers(1, 5))
    def reuse_a_key_for_another_request(self, key: str, amount: int) -> None:
        if key not in self.sent:
            return
        response = self._post([("world:bdt", -amount), ("world:bdt", amount + 1000), ("world:bdt", -1000)], key)
        assert response.status_code == 422 and response.json()["type"] == "/problems/idempotency-key-reused"

    @rule(key=keys)
    def reverse(self, key: str) -> None:
        if key not in self.sent:
            return
        postings, first = self.sent[key]
        transaction_id = first.json()["id"]
        response = self.http.post(
            f"/v1/transactions/{transaction_id}/reverse", headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        if self.model.transactions[transaction_id].reversed:
            assert response.status_code == 409 and response.json()["type"] == "/problems/already-reversed"
            return
        negated = [(code, -amount) for code, amount in postings]
        if self._expect(response, negated) is not None:
            self.model.transactions[transaction_id].reversed = True

    @rule(body=st.sampled_from([b"{", b"[]", b'{"postings": 5}', b'{"postings": [{"account": "a", "amount": 1.5}]}']))
    def send_a_bad_request(self, body: bytes) -> None:
        response = self.http.post(
            "/v1/transactions",
            content=body,
            headers={"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"},
        )
        assert response.status_code in {400, 422}
        assert response.headers["Content-Type"] == "application/problem+json"

    @invariant()
    def balances_agree_with_the_model(self) -> None:
        listed = self.http.get("/v1/accounts", params={"limit": "500"}).json()["data"]
        assert {a["code"]: a["balance"] for a in listed} == {c: a.balance for c, a in self.model.accounts.items()}

    def teardown(self) -> None:
        self.http.close()

        async def check() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                violations = await verify(conn)
            finally:
                await conn.close()
            assert violations == [], report(violations)

        asyncio.run(check())


@pytest.mark.slow
def test_the_service_agrees_with_a_model_ledger(live_server: LiveServer, database_url: str) -> None:
    LedgerMachine.server = live_server
    LedgerMachine.database_url = database_url
    runner = LedgerMachine.TestCase()
    runner.settings = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    runner.runTest()
