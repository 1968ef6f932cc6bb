"""The invariant check: one function, used by `python -m ledger verify`, the tests, load runs and drills.

Each check is a query that returns the rows breaking one invariant of docs/design (numbers below); a
healthy ledger returns none. The report names the invariant and up to ten offenders for each broken one.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ledger import sql
from ledger.audit import verify_chain


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    invariant: str
    query: str


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    invariant: str
    subject: str
    problem: str


CHECKS: tuple[Check, ...] = (
    Check("transactions_balanced", "1: a transaction's postings sum to zero per currency",
          sql.CHECK_TRANSACTIONS_BALANCED),
    Check("transaction_posting_counts", "1: a transaction has 2..100 postings, as many as it declares",
          sql.CHECK_TRANSACTION_POSTING_COUNTS),
    Check("amounts_not_zero", "1: every posting's amount is non-zero", sql.CHECK_AMOUNTS_NOT_ZERO),
    Check("posting_currencies", "1: a posting's currency is its account's currency", sql.CHECK_POSTING_CURRENCIES),
    Check("balances_match_postings", "3: an account's balance equals the sum of its postings",
          sql.CHECK_BALANCES_MATCH_POSTINGS),
    Check("balance_after_chain", "3: each posting's balance_after is the running sum of its account's postings",
          sql.CHECK_BALANCE_AFTER_CHAIN),
    Check("currencies_sum_to_zero", "3: the balances of each currency sum to zero",
          sql.CHECK_CURRENCIES_SUM_TO_ZERO),
    Check("floors_held", "4: no balance is below its account's min_balance", sql.CHECK_FLOORS_HELD),
    Check("reversals_mirror", "2: a reversal negates exactly the postings it reverses", sql.CHECK_REVERSALS_MIRROR),
    Check("idempotency_keys", "5: every idempotency key names a transaction that exists", sql.CHECK_IDEMPOTENCY_KEYS),
    Check("batches_complete", "5: a batch's idempotency key replays exactly the transactions it posted",
          sql.CHECK_BATCHES_COMPLETE),
    Check("transactions_audited", "7: every transaction has an audit entry", sql.CHECK_TRANSACTIONS_AUDITED),
)  # fmt: skip
AUDIT_CHAIN = Check("audit_chain", "7: the audit log's hash chain verifies, with no gap", "")


async def verify(conn: asyncpg.Connection) -> list[Violation]:
    """Run every check in one REPEATABLE READ snapshot, so concurrent writes cannot cause false alarms."""
    violations: list[Violation] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for check in CHECKS:
            for row in await conn.fetch(check.query):
                violations.append(Violation(check.name, check.invariant, row["subject"], row["problem"]))
        for subject, problem in await verify_chain(conn):
            violations.append(Violation(AUDIT_CHAIN.name, AUDIT_CHAIN.invariant, subject, problem))
    return violations


async def verify_database(database_url: str) -> list[Violation]:
    """`verify` on its own connection: what the CLI, load runs and chaos drills call."""
    conn = await asyncpg.connect(database_url)
    try:
        return await verify(conn)
    finally:
        await conn.close()


def report(violations: list[Violation]) -> str:
    if not violations:
        return f"ledger verified: every invariant holds ({len(CHECKS) + 1} checks)"
    lines = ["LEDGER INVARIANTS BROKEN:"]
    for check in (*CHECKS, AUDIT_CHAIN):
        broken = [v for v in violations if v.check == check.name]
        if broken:
            lines.append(f"- {check.name} (invariant {check.invariant}):")
            lines.extend(f"    {v.subject}: {v.problem}" for v in broken)
    return "\n".join(lines)
