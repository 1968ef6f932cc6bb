-- The posting engine's database half: one call, one round trip, per transaction.
--
-- Protocol (docs/adr/0002-concurrency.md): READ COMMITTED; claim the idempotency key (a concurrent retry
-- with the same key waits here up to p_key_wait, then replays, or gets 55P03 -> idempotency-key-in-use); lock the touched accounts FOR UPDATE in id order (no
-- deadlocks); check unknown accounts, currencies, per-currency balance and floors in that precedence;
-- update balances; then write the transaction and its postings (each with balance_after). No client
-- round trip happens while the account locks are held.
--
-- Refusals are raised with SQLSTATEs of class 'LD', mapped to problem types in ledger/db.py:
--   LDUNK unknown-account, LDCUR currency-mismatch, LDUNB unbalanced-transaction,
--   LDINS insufficient-funds, LDIDR idempotency-key-reused, LDREV already-reversed.
CREATE FUNCTION ledger_post_transaction(
    p_id uuid,
    p_idempotency_scope text,
    p_idempotency_key text,
    p_fingerprint bytea,
    p_idempotency_ttl interval,
    p_key_wait text,
    p_accounts text[],
    p_amounts bigint[],
    p_currencies text[],
    p_description text,
    p_reference text,
    p_metadata jsonb,
    p_reverses uuid,
    p_actor text,
    p_request_id text,
    p_trace_id text,
    p_audit_payload jsonb
) RETURNS TABLE (
    replayed boolean,
    refusal_status smallint,
    refusal_body jsonb,
    transaction_id uuid,
    created_at timestamptz,
    "position" smallint,
    account text,
    amount bigint,
    currency text,
    balance_after bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    existing record;
    locked record;
    account_ids bigint[] := '{}';
    new_balances bigint[] := '{}';
    posting_counts bigint[] := '{}';
    currencies text[] := '{}';
    currency_sums numeric[] := '{}';
    slot integer;
    missing text;
    below_floor text;
    now_ts timestamptz;
BEGIN
    -- Only this wait is bounded so: a request with the same key still in flight after p_key_wait is
    -- answered 409 (SQLSTATE 55P03 lock_not_available), not queued behind it until the statement timeout.
    PERFORM set_config('lock_timeout', p_key_wait, true);
    INSERT INTO idempotency_keys AS k (scope, key, fingerprint, transaction_id, expires_at)
    VALUES (p_idempotency_scope, p_idempotency_key, p_fingerprint, p_id, now() + p_idempotency_ttl)
    ON CONFLICT (scope, key) DO UPDATE
        -- An expired key may be used again: take it over. A live one is left as it is.
        SET fingerprint = EXCLUDED.fingerprint, transaction_id = EXCLUDED.transaction_id,
            response_status = NULL, response_body = NULL,
            created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        WHERE k.expires_at < now();
    IF NOT FOUND THEN
        SELECT k.fingerprint, k.transaction_id, k.response_status, k.response_body INTO existing
          FROM idempotency_keys AS k
         WHERE k.scope = p_idempotency_scope AND k.key = p_idempotency_key;
        IF existing.fingerprint <> p_fingerprint THEN
            RAISE EXCEPTION 'idempotency key reused with a different request' USING ERRCODE = 'LDIDR';
        END IF;
        RETURN QUERY SELECT true, existing.response_status, existing.response_body, existing.transaction_id,
            NULL::timestamptz, NULL::smallint, NULL::text, NULL::bigint, NULL::text, NULL::bigint;
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '0', true);

    -- Named before the balances are looked at; a racing second reversal still meets the unique index.
    IF p_reverses IS NOT NULL AND EXISTS (SELECT 1 FROM transactions AS t WHERE t.reverses = p_reverses) THEN
        RAISE EXCEPTION 'transaction % is already reversed', p_reverses USING ERRCODE = 'LDREV';
    END IF;

    FOR locked IN
        SELECT a.id, a.code, a.currency, a.balance, a.min_balance, d.delta, d.n,
               d.declared_min, d.declared_max
          FROM accounts AS a
          JOIN (SELECT u.code, sum(u.amount) AS delta, count(*) AS n,
                       min(u.currency) AS declared_min, max(u.currency) AS declared_max
                  FROM unnest(p_accounts, p_amounts, p_currencies) AS u (code, amount, currency)
                 GROUP BY u.code) AS d ON d.code = a.code
         ORDER BY a.id
           FOR UPDATE OF a
    LOOP
        IF locked.declared_min IS NOT NULL
                AND (locked.declared_min <> locked.currency OR locked.declared_max <> locked.currency) THEN
            RAISE EXCEPTION 'account % holds %', locked.code, locked.currency
                USING ERRCODE = 'LDCUR', DETAIL = locked.code;
        END IF;
        account_ids := account_ids || locked.id;
        new_balances := new_balances || (locked.balance + locked.delta)::bigint;
        posting_counts := posting_counts || locked.n;
        IF locked.min_balance IS NOT NULL AND locked.balance + locked.delta < locked.min_balance THEN
            -- Checked after the loop, so that an unknown or unbalanced request is named as such first.
            below_floor := coalesce(below_floor, locked.code);
        END IF;
        slot := array_position(currencies, locked.currency);
        IF slot IS NULL THEN
            currencies := currencies || locked.currency;
            currency_sums := currency_sums || locked.delta;
        ELSE
            currency_sums[slot] := currency_sums[slot] + locked.delta;
        END IF;
    END LOOP;

    IF cardinality(account_ids) <> (SELECT count(DISTINCT c) FROM unnest(p_accounts) AS c) THEN
        SELECT string_agg(DISTINCT c, ', ') INTO missing FROM unnest(p_accounts) AS c
         WHERE NOT EXISTS (SELECT 1 FROM accounts AS a WHERE a.code = c);
        RAISE EXCEPTION 'unknown accounts: %', missing USING ERRCODE = 'LDUNK', DETAIL = missing;
    END IF;
    FOR slot IN 1 .. cardinality(currencies) LOOP
        IF currency_sums[slot] <> 0 THEN
            RAISE EXCEPTION 'postings in % sum to %', currencies[slot], currency_sums[slot]
                USING ERRCODE = 'LDUNB', DETAIL = currencies[slot];
        END IF;
    END LOOP;
    IF below_floor IS NOT NULL THEN
        RAISE EXCEPTION 'account % would go below its floor', below_floor
            USING ERRCODE = 'LDINS', DETAIL = below_floor;
    END IF;

    UPDATE accounts AS a SET balance = u.balance, posting_count = a.posting_count + u.n
      FROM unnest(account_ids, new_balances, posting_counts) AS u (id, balance, n)
     WHERE a.id = u.id;

    -- Taken while the account locks are held, so an account's postings are in time order.
    now_ts := clock_timestamp();
    INSERT INTO transactions (id, description, reference, metadata, reverses, posting_count, created_at)
    VALUES (p_id, p_description, p_reference, p_metadata, p_reverses, cardinality(p_accounts), now_ts);
    INSERT INTO audit_outbox (occurred_at, actor, action, subject, request_id, trace_id, payload)
    VALUES (now_ts, p_actor, CASE WHEN p_reverses IS NULL THEN 'transaction.posted' ELSE 'transaction.reversed' END,
            p_id::text, p_request_id, p_trace_id, p_audit_payload);

    RETURN QUERY
    WITH request AS (
        SELECT u.code, u.amount, (u.ord - 1)::smallint AS pos
          FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS u (code, amount, ord)
    ), inserted AS (
        INSERT INTO postings AS p (transaction_id, position, account_id, currency, amount, balance_after,
                                   account_sequence, created_at)
        SELECT p_id, r.pos, a.id, a.currency, r.amount,
               a.balance - sum(r.amount) OVER whole + sum(r.amount) OVER running,
               a.posting_count - count(*) OVER whole + row_number() OVER running,
               now_ts
          FROM request AS r JOIN accounts AS a ON a.code = r.code
        WINDOW whole AS (PARTITION BY a.id), running AS (PARTITION BY a.id ORDER BY r.pos)
        RETURNING p.position, p.amount, p.currency, p.balance_after
    )
    SELECT false, NULL::smallint, NULL::jsonb, p_id, now_ts, i.position, r.code, i.amount, i.currency, i.balance_after
      FROM inserted AS i JOIN request AS r ON r.pos = i.position
     ORDER BY i.position;
END $$;
