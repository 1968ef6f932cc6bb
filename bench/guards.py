"""What idempotency and the audit trail cost on the posting path, in the database, measured in one run.

    .venv/bin/python bench/guards.py [--seconds 8] [--clients 8] [--reps 3]

pgbench calls the project's `ledger_post_transaction` (idempotency key claimed, audit outbox entry written)
and, interleaved with it, a copy of that function with both removed (made from the migration's own text),
on the same throwaway durable cluster with 2,000 accounts without floors. It prints the transfers per
second of each and the ratio guarded / bare (median of the repeats). The HTTP layer is left out on purpose:
this isolates the database work the two guards add.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg

from ledger import embedded_pg, schema

ROOT = Path(__file__).resolve().parents[1]
CALL = (
    "SELECT count(*) FROM {fn}(gen_random_uuid(), 'bench', gen_random_uuid()::text, '\\x01'::bytea, '1 day', "
    "'2s', ARRAY['acct-' || :a, 'acct-' || :b], ARRAY[-(:amt)::bigint, (:amt)::bigint], ARRAY[NULL, NULL]::text[], "
    "NULL, NULL, '{{}}'::jsonb, NULL, 'bench', NULL, NULL, '{{}}'::jsonb);"
)
PICK = "\\set a random(1, 1000)\n\\set b random(1001, 2000)\n\\set amt random(1, 100)\n"


def bare_function() -> str:
    """The posting function without its idempotency claim and without its audit entry."""
    source = (ROOT / "service/ledger/migrations/0002_post_transaction.sql").read_text()
    source = source.replace("CREATE FUNCTION ledger_post_transaction(", "CREATE FUNCTION ledger_post_bare(")
    claim_start = source.index("    PERFORM set_config('lock_timeout', p_key_wait, true);")
    claim_end_marker = "    PERFORM set_config('lock_timeout', '0', true);"
    claim_end = source.index(claim_end_marker) + len(claim_end_marker)
    source = source[:claim_start] + source[claim_end:]
    audit_start = source.index("    INSERT INTO audit_outbox")
    audit_end_marker = "p_id::text, p_request_id, p_trace_id, p_audit_payload);"
    audit_end = source.index(audit_end_marker) + len(audit_end_marker)
    return source[:audit_start] + source[audit_end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ledger-guards-"))
    base.chmod(0o711)
    try:
        with embedded_pg.started(base / "data", durable=True) as (_cluster, running):
            schema.apply_migrations(running.url())
            with psycopg.connect(running.url(), autocommit=True) as conn:
                conn.execute(bare_function())  # a scratch cluster: the migration's own text, renamed
                conn.execute("INSERT INTO accounts (code, currency, min_balance) "
                             "SELECT 'acct-' || g, 'BDT', NULL FROM generate_series(1, 2000) AS g")  # fmt: skip
                conn.execute("VACUUM ANALYZE")
            scripts = {}
            for name, function in (("guarded", "ledger_post_transaction"), ("bare", "ledger_post_bare")):
                script = base / f"{name}.sql"
                script.write_text(PICK + CALL.format(fn=function) + "\n")
                script.chmod(0o644)
                scripts[name] = script
            env = {**os.environ, "PGPASSWORD": running.password}
            results: dict[str, list[float]] = {"guarded": [], "bare": []}
            for rep in range(args.reps):
                for name, script in scripts.items():
                    output = subprocess.run(
                        ["pgbench", "-n", "-M", "prepared", "-c", str(args.clients), "-j", str(args.clients),
                         "-T", str(args.seconds), "-h", "127.0.0.1", "-p", str(running.port), "-U", "postgres",
                         "-f", str(script), "ledger"],
                        env=env, capture_output=True, text=True, check=True,
                    ).stdout  # fmt: skip
                    tps = float(re.search(r"tps = ([0-9.]+)", output).group(1))  # type: ignore[union-attr]
                    results[name].append(tps)
                    print(f"guards: repeat {rep + 1} {name}: {tps:.0f} transfers/s", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    guarded, bare = statistics.median(results["guarded"]), statistics.median(results["bare"])
    print(f"guards: median guarded {guarded:.0f}/s, bare {bare:.0f}/s, guarded / bare = {guarded / bare:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
