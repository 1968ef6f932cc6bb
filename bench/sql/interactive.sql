-- "interactive" baseline: one transfer per transaction, 8 round trips (BEGIN, 6 statements, END), written
-- the way a careful application would without the project's function; every trigger and constraint of the
-- schema is live and checks it (posting chain, balanced transaction, balance = last balance_after, floors).
-- :a is debited, :b credited, by :amt.
\set namt -:amt
\set lo least(:a, :b)
\set hi greatest(:a, :b)
\set dlo CASE WHEN :a = :lo THEN -:amt ELSE :amt END
\set dhi -:dlo
BEGIN;
-- 1. claim the idempotency key (its id names the transaction to come; the FK is checked at commit)
INSERT INTO idempotency_keys (scope, key, fingerprint, transaction_id, expires_at)
VALUES ('bench', gen_random_uuid()::text, sha256(uuid_send(gen_random_uuid())), gen_random_uuid(),
        now() + interval '1 day')
ON CONFLICT (scope, key) DO NOTHING
RETURNING transaction_id AS txid \gset
-- 2, 3. lock and update both balances in id order (no deadlocks); the floor is the CHECK constraint
UPDATE accounts SET balance = balance + :dlo, posting_count = posting_count + 1 WHERE id = :lo
RETURNING balance AS bal_lo, posting_count AS seq_lo \gset
UPDATE accounts SET balance = balance + :dhi, posting_count = posting_count + 1 WHERE id = :hi
RETURNING balance AS bal_hi, posting_count AS seq_hi \gset
\set bal_a CASE WHEN :a = :lo THEN :bal_lo ELSE :bal_hi END
\set seq_a CASE WHEN :a = :lo THEN :seq_lo ELSE :seq_hi END
\set bal_b CASE WHEN :b = :lo THEN :bal_lo ELSE :bal_hi END
\set seq_b CASE WHEN :b = :lo THEN :seq_lo ELSE :seq_hi END
-- 4. the transaction row
INSERT INTO transactions (id, posting_count, created_at) VALUES (:txid, 2, clock_timestamp());
-- 5. its audit entry (the service's chainer is not running during the baseline: entries stay in the outbox)
INSERT INTO audit_outbox (actor, action, subject, payload)
VALUES ('bench', 'transaction.posted', :txid,
        jsonb_build_object('postings', jsonb_build_array(
            jsonb_build_object('account', 'acct:' || :a::bigint, 'amount', :namt::bigint),
            jsonb_build_object('account', 'acct:' || :b::bigint, 'amount', :amt::bigint)),
          'reference', NULL, 'reverses', NULL));
-- 6. the two postings, each with its balance_after and account_sequence
INSERT INTO postings (transaction_id, position, account_id, currency, amount, balance_after, account_sequence,
                      created_at)
VALUES (:txid, 0, :a, 'USD', :namt, :bal_a, :seq_a, clock_timestamp()),
       (:txid, 1, :b, 'USD', :amt, :bal_b, :seq_b, clock_timestamp());
END;
