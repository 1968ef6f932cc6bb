"""Every DML statement the service runs, as named constants: `$n` parameters, explicit columns.

DDL lives only in `migrations/`. Never build SQL with f-strings.
"""

INSERT_ACCOUNT = """
WITH account AS (
    INSERT INTO accounts (code, currency, min_balance, metadata)
    VALUES ($1, $2, $3, $4)
    RETURNING code, currency, min_balance, balance, metadata, created_at
), audit AS (
    INSERT INTO audit_outbox (occurred_at, actor, action, subject, request_id, trace_id, payload)
    SELECT created_at, $5, 'account.created', code, $6, $7,
           jsonb_build_object('currency', currency, 'min_balance', min_balance, 'metadata', metadata)
      FROM account
)
SELECT code, currency, min_balance, balance, metadata, created_at FROM account
"""

SELECT_ACCOUNT = """
SELECT code, currency, min_balance, balance, metadata, created_at FROM accounts WHERE code = $1
"""

SELECT_ACCOUNT_ID = "SELECT id, currency FROM accounts WHERE code = $1"

# Codes use [a-z0-9_:-] only, all below '~' in byte order: [prefix, prefix || '~') is the prefix range.
LIST_ACCOUNTS = """
SELECT code, currency, min_balance, balance, metadata, created_at FROM accounts
 WHERE code >= $1 AND code < $1 || '~' AND code > $2
 ORDER BY code
 LIMIT $3
"""

POST_BATCH = """
SELECT item, outcome, refusal_status, refusal_body, transaction_id, created_at, position, account, amount, currency,
       balance_after
  FROM ledger_post_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
"""

SELECT_BATCH = "SELECT transaction_ids FROM transaction_batches WHERE first_transaction_id = $1"

POST_TRANSACTION = """
SELECT replayed, refusal_status, refusal_body, transaction_id, created_at, position, account, amount, currency,
       balance_after
  FROM ledger_post_transaction($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""

# A refusal that depends on the ledger's state is remembered, so that a retry gets the same answer. A row
# already there (a concurrent request with the same key won) is returned instead.
STORE_IDEMPOTENT_REFUSAL = """
INSERT INTO idempotency_keys AS k (scope, key, fingerprint, response_status, response_body, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, transaction_id = NULL, response_status = EXCLUDED.response_status,
        response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    WHERE k.expires_at < now()
RETURNING true AS stored
"""

SELECT_IDEMPOTENCY_KEY = """
SELECT fingerprint, transaction_id, response_status, response_body FROM idempotency_keys
 WHERE scope = $1 AND key = $2
"""

# Small batches through the expiry index: no long lock, no pause for writers.
PURGE_EXPIRED_IDEMPOTENCY_KEYS = """
DELETE FROM idempotency_keys
 WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys WHERE expires_at < now() LIMIT $1)
"""

COUNT_IDEMPOTENCY_KEYS = "SELECT count(*) FROM idempotency_keys"

SELECT_TRANSACTIONS = """
SELECT t.id, t.description, t.reference, t.metadata, t.created_at, t.reverses,
       a.code AS account, p.amount, p.currency, p.balance_after
  FROM transactions AS t
  JOIN postings AS p ON p.transaction_id = t.id
  JOIN accounts AS a ON a.id = p.account_id
 WHERE t.id = ANY($1::uuid[])
 ORDER BY t.id, p.position
"""

# An account's postings, newest first; the window for listing its transactions.
SELECT_ACCOUNT_POSTINGS = """
SELECT p.transaction_id, p.account_sequence, p.amount, p.currency, p.balance_after, p.created_at,
       t.description
  FROM postings AS p
  JOIN transactions AS t ON t.id = p.transaction_id
 WHERE p.account_id = $1 AND p.account_sequence < $2
 ORDER BY p.account_sequence DESC
 LIMIT $3
"""

SELECT_BALANCE_AS_OF = """
SELECT balance_after FROM postings
 WHERE account_id = $1 AND created_at <= $2
 ORDER BY created_at DESC, account_sequence DESC
 LIMIT 1
"""

SELECT_APPLIED_MIGRATIONS = "SELECT migration_id FROM _yoyo_migration"

# ---- API keys

INSERT_API_KEY = """
WITH api_key AS (
    INSERT INTO api_keys (id, name, scopes, secret_sha256, expires_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (secret_sha256) DO NOTHING
    RETURNING id, name, scopes, created_at, expires_at, revoked_at
), audit AS (
    INSERT INTO audit_outbox (occurred_at, actor, action, subject, request_id, trace_id, payload)
    SELECT created_at, $6, 'api_key.created', id::text, $7, $8,
           jsonb_build_object('name', name, 'scopes', scopes, 'expires_at', expires_at)
      FROM api_key
)
SELECT id, name, scopes, created_at, expires_at, revoked_at FROM api_key
"""

SELECT_API_KEY_BY_DIGEST = """
SELECT id, name, scopes, created_at, expires_at, revoked_at, secret_sha256 FROM api_keys WHERE secret_sha256 = $1
"""

LIST_API_KEYS = """
SELECT id, name, scopes, created_at, expires_at, revoked_at FROM api_keys WHERE id > $1 ORDER BY id LIMIT $2
"""

REVOKE_API_KEY = """
WITH revoked AS (
    UPDATE api_keys SET revoked_at = clock_timestamp() WHERE id = $1 AND revoked_at IS NULL
    RETURNING id, name, scopes, created_at, expires_at, revoked_at
), audit AS (
    INSERT INTO audit_outbox (occurred_at, actor, action, subject, request_id, trace_id, payload)
    SELECT revoked_at, $2, 'api_key.revoked', id::text, $3, $4, jsonb_build_object('name', name) FROM revoked
)
SELECT id, name, scopes, created_at, expires_at, revoked_at FROM revoked
"""

SELECT_API_KEY = "SELECT id, name, scopes, created_at, expires_at, revoked_at FROM api_keys WHERE id = $1"

# ---- audit log (ledger.audit)

# Entries whose writing transaction is older than every running one: nothing can be inserted before them
# any more, so chaining them now fixes their order for good.
SELECT_FINISHED_OUTBOX = """
SELECT id, occurred_at, actor, action, subject, request_id, trace_id, payload FROM audit_outbox
 WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY id
 LIMIT $1
"""

SELECT_LAST_AUDIT_LINK = "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1"

INSERT_AUDIT_LOG = """
INSERT INTO audit_log (sequence, occurred_at, actor, action, subject, request_id, trace_id, payload,
                       previous_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

DELETE_OUTBOX = "DELETE FROM audit_outbox WHERE id = ANY($1::bigint[])"

TRY_ADVISORY_LOCK = "SELECT pg_try_advisory_lock($1)"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock($1)"

SELECT_AUDIT_LOG = """
SELECT sequence, occurred_at, actor, action, subject, request_id, trace_id, payload, previous_hash, hash
  FROM audit_log WHERE sequence > $1 ORDER BY sequence LIMIT $2
"""

SELECT_AUDIT_CHAIN = """
SELECT sequence, occurred_at, actor, action, subject, request_id, trace_id, payload, previous_hash, hash
  FROM audit_log ORDER BY sequence
"""

SELECT_CHAIN_STATUS = """
SELECT count(*) AS pending, coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0) AS lag_seconds
  FROM audit_outbox
"""

# ---- invariant checks (ledger.verify): each returns up to 10 offending rows, none when the invariant holds.

CHECK_TRANSACTIONS_BALANCED = """
SELECT transaction_id::text AS subject, currency || ' sums to ' || sum(amount) AS problem
  FROM postings GROUP BY transaction_id, currency HAVING sum(amount) <> 0 LIMIT 10
"""

CHECK_TRANSACTION_POSTING_COUNTS = """
SELECT t.id::text AS subject, 'declares ' || t.posting_count || ' postings, has ' || count(p.position) AS problem
  FROM transactions AS t LEFT JOIN postings AS p ON p.transaction_id = t.id
 GROUP BY t.id, t.posting_count
HAVING count(p.position) <> t.posting_count OR count(p.position) NOT BETWEEN 2 AND 100
 LIMIT 10
"""

CHECK_AMOUNTS_NOT_ZERO = """
SELECT transaction_id::text || '/' || position AS subject, 'amount is zero' AS problem
  FROM postings WHERE amount = 0 LIMIT 10
"""

CHECK_POSTING_CURRENCIES = """
SELECT p.transaction_id::text || '/' || p.position AS subject,
       'posting in ' || p.currency || ' on account ' || a.code || ' in ' || a.currency AS problem
  FROM postings AS p JOIN accounts AS a ON a.id = p.account_id
 WHERE p.currency <> a.currency LIMIT 10
"""

CHECK_BALANCES_MATCH_POSTINGS = """
SELECT a.code AS subject,
       'balance ' || a.balance || ' but postings sum to ' || coalesce(s.total, 0)
       || ' (' || a.posting_count || ' postings recorded, ' || coalesce(s.n, 0) || ' found)' AS problem
  FROM accounts AS a
  LEFT JOIN (SELECT account_id, sum(amount) AS total, count(*) AS n FROM postings GROUP BY account_id) AS s
    ON s.account_id = a.id
 WHERE a.balance <> coalesce(s.total, 0) OR a.posting_count <> coalesce(s.n, 0)
 LIMIT 10
"""

CHECK_BALANCE_AFTER_CHAIN = """
SELECT a.code || ' #' || c.account_sequence AS subject,
       'balance_after ' || c.balance_after || ', running sum ' || c.running
       || ', position in history ' || c.ordinal AS problem
  FROM (SELECT account_id, account_sequence, balance_after,
               sum(amount) OVER w AS running, row_number() OVER w AS ordinal
          FROM postings WINDOW w AS (PARTITION BY account_id ORDER BY account_sequence)) AS c
  JOIN accounts AS a ON a.id = c.account_id
 WHERE c.balance_after <> c.running OR c.account_sequence <> c.ordinal
 LIMIT 10
"""

CHECK_FLOORS_HELD = """
SELECT a.code AS subject, 'balance ' || a.balance || ' below floor ' || a.min_balance AS problem
  FROM accounts AS a WHERE a.min_balance IS NOT NULL AND a.balance < a.min_balance
UNION ALL
SELECT a.code || ' after ' || last.transaction_id::text,
       'balance_after ' || last.balance_after || ' below floor ' || a.min_balance
  FROM (SELECT DISTINCT ON (account_id, transaction_id) account_id, transaction_id, balance_after
          FROM postings ORDER BY account_id, transaction_id, account_sequence DESC) AS last
  JOIN accounts AS a ON a.id = last.account_id
 WHERE a.min_balance IS NOT NULL AND last.balance_after < a.min_balance
 LIMIT 10
"""

CHECK_CURRENCIES_SUM_TO_ZERO = """
SELECT currency AS subject, 'balances sum to ' || sum(balance) AS problem
  FROM accounts GROUP BY currency HAVING sum(balance) <> 0 LIMIT 10
"""

CHECK_REVERSALS_MIRROR = """
SELECT r.id::text AS subject, 'does not negate ' || r.reverses::text AS problem
  FROM transactions AS r
 WHERE r.reverses IS NOT NULL AND EXISTS (
       (SELECT account_id, -amount FROM postings WHERE transaction_id = r.reverses
        EXCEPT ALL SELECT account_id, amount FROM postings WHERE transaction_id = r.id)
       UNION ALL
       (SELECT account_id, amount FROM postings WHERE transaction_id = r.id
        EXCEPT ALL SELECT account_id, -amount FROM postings WHERE transaction_id = r.reverses))
 LIMIT 10
"""

CHECK_IDEMPOTENCY_KEYS = """
SELECT k.scope || '/' || k.key AS subject, 'names missing transaction ' || k.transaction_id::text AS problem
  FROM idempotency_keys AS k
 WHERE k.transaction_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM transactions AS t WHERE t.id = k.transaction_id)
 LIMIT 10
"""

# A bulk batch lists transactions that exist, each once, and in no other batch (what its key replays).
CHECK_BATCHES_COMPLETE = """
SELECT b.first_transaction_id::text AS subject, 'lists a missing or repeated transaction' AS problem
  FROM transaction_batches AS b
 WHERE (SELECT count(*) FROM transactions AS t WHERE t.id = ANY (b.transaction_ids)) <> cardinality(b.transaction_ids)
    OR (SELECT count(DISTINCT x) FROM unnest(b.transaction_ids) AS x) <> cardinality(b.transaction_ids)
UNION ALL
SELECT x::text, 'is listed by more than one batch'
  FROM transaction_batches AS b, unnest(b.transaction_ids) AS x
 GROUP BY x HAVING count(*) > 1
 LIMIT 10
"""

# Every transaction was recorded in the audit trail (chained, or still in the outbox).
CHECK_TRANSACTIONS_AUDITED = """
SELECT t.id::text AS subject, 'has no audit entry' AS problem
  FROM transactions AS t
 WHERE NOT EXISTS (SELECT 1 FROM audit_log AS l WHERE l.subject = t.id::text AND l.action LIKE 'transaction.%')
   AND NOT EXISTS (SELECT 1 FROM audit_outbox AS o WHERE o.subject = t.id::text AND o.action LIKE 'transaction.%')
 LIMIT 10
"""

# ---- the monitor (ledger.telemetry)

ESTIMATE_IDEMPOTENCY_KEYS = (
    "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'idempotency_keys'::regclass"
)

# Twenty accounts from a random point of the id space (their histories capped so the check stays cheap):
# how many have a balance other than the sum of their postings. One statement, one snapshot.
CHECK_SAMPLED_BALANCES = """
SELECT count(*) FROM (
    SELECT a.id, a.balance FROM accounts AS a
     WHERE a.id >= (SELECT floor(random() * max(id)) FROM accounts) AND a.posting_count <= 100000
     ORDER BY a.id LIMIT 20
) AS s
WHERE s.balance <> coalesce((SELECT sum(p.amount) FROM postings AS p WHERE p.account_id = s.id), 0)
"""
