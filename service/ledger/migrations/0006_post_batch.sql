-- Many transactions in one call (docs/adr/0006-group-commit-and-batches.md), for two callers:
--
--   * group commit (p_atomic = false): concurrent POST /v1/transactions coalesced by the service into one
--     database transaction. Each transaction stands alone: each has its own idempotency key, and a refused
--     one (unknown account, currency, unbalanced, floor, duplicate reference) is answered and remembered
--     under its key without failing its neighbours.
--   * the bulk API (p_atomic = true): POST /v1/transactions/batch, all or nothing, one idempotency key for
--     the batch; the first refusal aborts the call (SQLSTATE class LD, HINT = the transaction's index).
--
-- The protocol is the one of ledger_post_transaction (ADR 0002), widened to a set: claim the keys (in key
-- order, so two batches never wait on each other's keys in a cycle), lock every account the batch touches
-- FOR UPDATE in id order (one statement: no deadlocks between batches), check, then update each account's
-- balance once for the whole batch (a hot account's updates coalesced), and write the transactions, their
-- audit entries and their postings, each posting with its running balance_after and account_sequence in
-- the batch's order. Floors apply as if the transactions were posted one after the other, in order.

-- A bulk batch, as its idempotency key replays it: the key's transaction_id is the batch's first
-- transaction, and this row lists them all in order.
CREATE TABLE transaction_batches (
    first_transaction_id uuid PRIMARY KEY
        REFERENCES transactions (id) DEFERRABLE INITIALLY DEFERRED,
    transaction_ids      uuid[] NOT NULL,
    created_at           timestamptz NOT NULL,
    CONSTRAINT transaction_batches_size CHECK (cardinality(transaction_ids) BETWEEN 1 AND 1000),
    CONSTRAINT transaction_batches_first CHECK (transaction_ids[1] = first_transaction_id)
);

CREATE TRIGGER transaction_batches_append_only BEFORE UPDATE OR DELETE ON transaction_batches
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER transaction_batches_no_truncate BEFORE TRUNCATE ON transaction_batches
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_history_change();

-- At commit: a batch lists existing transactions, each once.
CREATE FUNCTION ledger_check_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(DISTINCT t) FROM unnest(NEW.transaction_ids) AS t) <> cardinality(NEW.transaction_ids)
            OR (SELECT count(*) FROM transactions WHERE id = ANY (NEW.transaction_ids))
               <> cardinality(NEW.transaction_ids) THEN
        RAISE EXCEPTION 'batch % lists missing or repeated transactions', NEW.first_transaction_id
            USING ERRCODE = 'LDCHN';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER transaction_batches_complete AFTER INSERT ON transaction_batches
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_batch();

CREATE FUNCTION ledger_post_batch(
    p_atomic boolean,
    p_scopes text[],            -- idempotency keys: one per transaction (group commit), or one for the
    p_keys text[],              -- batch (p_atomic); the scope is the API key that sent it
    p_fingerprints bytea[],
    p_ttl interval,
    p_key_wait text,
    p_ids uuid[],               -- per transaction
    p_descriptions text[],
    p_references text[],
    p_metadata jsonb[],
    p_request_ids text[],
    p_trace_ids text[],
    p_audit_payloads jsonb[],
    p_items integer[],          -- per posting: the index (1-based) of its transaction in p_ids
    p_accounts text[],
    p_amounts bigint[],
    p_currencies text[],
    p_actors text[]             -- per transaction
) RETURNS TABLE (
    item integer,
    outcome text,               -- posted | replayed | refused
    refusal_status smallint,
    refusal_body jsonb,         -- {"slug", "detail"}: as ledger/errors.py remembers a refusal
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
    n integer := cardinality(p_ids);
    live boolean[] := array_fill(true, ARRAY[n]);
    refused_status smallint[] := array_fill(NULL::smallint, ARRAY[n]);
    refused_slug text[] := array_fill(NULL::text, ARRAY[n]);
    refused_detail text[] := array_fill(NULL::text, ARRAY[n]);
    claimed uuid[];
    existing record;
    bad record;
    i integer;
    again boolean;
    acc_ids bigint[];
    acc_codes text[];
    acc_currencies text[];
    acc_balances bigint[];
    acc_floors bigint[];
    acc_counts bigint[];
    now_ts timestamptz;
BEGIN
    IF n = 0 OR n > 1000 OR cardinality(p_keys) <> (CASE WHEN p_atomic THEN 1 ELSE n END)
            OR cardinality(p_scopes) <> cardinality(p_keys) THEN
        RAISE EXCEPTION 'ledger_post_batch: bad arguments' USING ERRCODE = '22023';
    END IF;

    -- 1. Idempotency keys. Only this wait is bounded (see ledger_post_transaction).
    PERFORM set_config('lock_timeout', p_key_wait, true);
    WITH claim AS (
        INSERT INTO idempotency_keys AS k (scope, key, fingerprint, transaction_id, expires_at)
        SELECT u.scope, u.key, u.fingerprint, p_ids[u.ord], now() + p_ttl
          FROM unnest(p_scopes, p_keys, p_fingerprints) WITH ORDINALITY AS u (scope, key, fingerprint, ord)
         ORDER BY u.scope, u.key
        ON CONFLICT (scope, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, transaction_id = EXCLUDED.transaction_id,
                response_status = NULL, response_body = NULL,
                created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
            WHERE k.expires_at < now()
        RETURNING k.transaction_id
    )
    SELECT coalesce(array_agg(c.transaction_id), '{}') INTO claimed FROM claim AS c;
    PERFORM set_config('lock_timeout', '0', true);

    IF cardinality(claimed) < cardinality(p_keys) THEN
        FOR i IN 1 .. cardinality(p_keys) LOOP
            CONTINUE WHEN p_ids[i] = ANY (claimed);
            SELECT k.fingerprint, k.transaction_id, k.response_status, k.response_body INTO existing
              FROM idempotency_keys AS k WHERE k.scope = p_scopes[i] AND k.key = p_keys[i];
            IF existing.fingerprint <> p_fingerprints[i] THEN
                IF p_atomic THEN
                    RAISE EXCEPTION 'idempotency key reused with a different request' USING ERRCODE = 'LDIDR';
                END IF;
                refused_status[i] := 422;
                refused_slug[i] := 'idempotency-key-reused';
                refused_detail[i] := NULL;
            ELSE
                RETURN QUERY SELECT CASE WHEN p_atomic THEN 0 ELSE i END, 'replayed', existing.response_status,
                    existing.response_body, existing.transaction_id, NULL::timestamptz, NULL::smallint,
                    NULL::text, NULL::bigint, NULL::text, NULL::bigint;
            END IF;
            IF p_atomic THEN
                RETURN;
            END IF;
            live[i] := false;
        END LOOP;
    END IF;
    IF NOT (true = ANY (live)) THEN
        RETURN QUERY SELECT s.ord::integer, 'refused', s.status, jsonb_build_object('slug', s.slug, 'detail', s.detail),
            NULL::uuid, NULL::timestamptz, NULL::smallint, NULL::text, NULL::bigint, NULL::text, NULL::bigint
          FROM unnest(refused_status, refused_slug, refused_detail) WITH ORDINALITY AS s (status, slug, detail, ord)
         WHERE s.slug IS NOT NULL;
        RETURN;
    END IF;

    -- 2. Lock every account the live transactions touch, in id order, in one statement.
    SELECT array_agg(a.id), array_agg(a.code), array_agg(a.currency), array_agg(a.balance),
           array_agg(a.min_balance), array_agg(a.posting_count)
      INTO acc_ids, acc_codes, acc_currencies, acc_balances, acc_floors, acc_counts
      FROM (SELECT a.id, a.code, a.currency, a.balance, a.min_balance, a.posting_count
              FROM accounts AS a
             WHERE a.code = ANY (ARRAY(SELECT DISTINCT u.code FROM unnest(p_items, p_accounts) AS u (item, code)
                                        WHERE live[u.item]))
             ORDER BY a.id
               FOR UPDATE) AS a;

    -- 3. What can be refused from the request and the accounts alone, in the single engine's precedence:
    -- unknown accounts, then a currency mismatch, then a currency that does not sum to zero.
    FOR bad IN
        WITH p AS (
            SELECT u.item, u.ord, u.code, u.amount, u.currency AS declared, a.currency AS actual
              FROM unnest(p_items, p_accounts, p_amounts, p_currencies) WITH ORDINALITY
                       AS u (item, code, amount, currency, ord)
              LEFT JOIN unnest(acc_codes, acc_currencies) AS a (code, currency) ON a.code = u.code
             WHERE live[u.item]
        ), per_item AS (
            SELECT p.item,
                   string_agg(DISTINCT p.code, ', ') FILTER (WHERE p.actual IS NULL) AS unknown,
                   (array_agg(p.code ORDER BY p.ord) FILTER (WHERE p.declared <> p.actual))[1] AS mismatched
              FROM p GROUP BY p.item
        ), unbalanced AS (
            SELECT s.item, min(s.actual) AS currency
              FROM (SELECT p.item, p.actual FROM p WHERE p.actual IS NOT NULL
                     GROUP BY p.item, p.actual HAVING sum(p.amount) <> 0) AS s
             GROUP BY s.item
        )
        SELECT i.item, coalesce(i.unknown, i.mismatched, u.currency) AS subject,
               CASE WHEN i.unknown IS NOT NULL THEN 'unknown-account'
                    WHEN i.mismatched IS NOT NULL THEN 'currency-mismatch'
                    ELSE 'unbalanced-transaction' END AS slug,
               CASE WHEN i.unknown IS NOT NULL THEN 'no account with code ' || i.unknown
                    WHEN i.mismatched IS NOT NULL THEN 'account ' || i.mismatched || ' holds another currency'
                    ELSE 'the postings in ' || u.currency || ' do not sum to zero' END AS detail
          FROM per_item AS i LEFT JOIN unbalanced AS u ON u.item = i.item
         WHERE i.unknown IS NOT NULL OR i.mismatched IS NOT NULL OR u.currency IS NOT NULL
         ORDER BY i.item
    LOOP
        IF p_atomic THEN
            RAISE EXCEPTION '%', bad.detail USING HINT = bad.item::text, DETAIL = bad.subject,
                ERRCODE = CASE bad.slug WHEN 'unknown-account' THEN 'LDUNK' WHEN 'currency-mismatch' THEN 'LDCUR'
                               ELSE 'LDUNB' END;
        END IF;
        live[bad.item] := false;
        refused_status[bad.item] := 422;
        refused_slug[bad.item] := bad.slug;
        refused_detail[bad.item] := bad.detail;
    END LOOP;

    -- 4. Floors, as if the transactions were posted one after the other: refuse the first transaction that
    -- takes an account below its floor, then look again without it (its postings may have funded a later
    -- one). Then references: taken already, or by an earlier transaction of this batch.
    LOOP
        LOOP
            SELECT s.item, s.code INTO bad FROM (
                SELECT d.item, d.code, a.floor,
                       a.balance + sum(d.delta) OVER (PARTITION BY d.code ORDER BY d.item) AS after
                  FROM (SELECT u.item, u.code, sum(u.amount) AS delta
                          FROM unnest(p_items, p_accounts, p_amounts) AS u (item, code, amount)
                         WHERE live[u.item] GROUP BY u.item, u.code) AS d
                  JOIN unnest(acc_codes, acc_balances, acc_floors) AS a (code, balance, floor) ON a.code = d.code
            ) AS s
             WHERE s.floor IS NOT NULL AND s.after < s.floor
             ORDER BY s.item, s.code
             LIMIT 1;
            EXIT WHEN NOT FOUND;
            IF p_atomic THEN
                RAISE EXCEPTION 'account % would go below its floor', bad.code USING ERRCODE = 'LDINS',
                    DETAIL = bad.code, HINT = bad.item::text;
            END IF;
            live[bad.item] := false;
            refused_status[bad.item] := 422;
            refused_slug[bad.item] := 'insufficient-funds';
            refused_detail[bad.item] := 'account ' || bad.code || ' would go below its minimum balance';
        END LOOP;
        again := false;
        FOR bad IN
            SELECT r.ord::integer AS item FROM unnest(p_references) WITH ORDINALITY AS r (reference, ord)
             WHERE live[r.ord] AND r.reference IS NOT NULL
               AND (EXISTS (SELECT 1 FROM transactions AS t WHERE t.reference = r.reference)
                    OR EXISTS (SELECT 1 FROM unnest(p_references) WITH ORDINALITY AS e (reference, ord)
                                WHERE e.reference = r.reference AND e.ord < r.ord AND live[e.ord]))
             ORDER BY r.ord
        LOOP
            IF p_atomic THEN
                RAISE EXCEPTION 'duplicate reference' USING ERRCODE = '23505',
                    CONSTRAINT = 'transactions_reference_unique', HINT = bad.item::text;
            END IF;
            live[bad.item] := false;
            refused_status[bad.item] := 409;
            refused_slug[bad.item] := 'duplicate-reference';
            refused_detail[bad.item] := NULL;
            again := true;
        END LOOP;
        EXIT WHEN NOT again;
    END LOOP;

    -- 5. Refusals are answered and remembered under their keys (not a reused key: that one is not ours).
    IF NOT p_atomic THEN
        UPDATE idempotency_keys AS k
           SET transaction_id = NULL, response_status = s.status,
               response_body = jsonb_build_object('slug', s.slug, 'detail', s.detail)
          FROM unnest(p_scopes, p_keys, refused_status, refused_slug, refused_detail)
                   AS s (scope, key, status, slug, detail)
         WHERE k.scope = s.scope AND k.key = s.key AND s.slug IS NOT NULL AND s.slug <> 'idempotency-key-reused';
        RETURN QUERY SELECT s.ord::integer, 'refused', s.status, jsonb_build_object('slug', s.slug, 'detail', s.detail),
            NULL::uuid, NULL::timestamptz, NULL::smallint, NULL::text, NULL::bigint, NULL::text, NULL::bigint
          FROM unnest(refused_status, refused_slug, refused_detail) WITH ORDINALITY AS s (status, slug, detail, ord)
         WHERE s.slug IS NOT NULL;
        IF NOT (true = ANY (live)) THEN
            RETURN;
        END IF;
    END IF;

    -- 6. Write: each account's balance once; then transactions, audit entries and postings.
    UPDATE accounts AS a SET balance = a.balance + d.delta, posting_count = a.posting_count + d.n
      FROM (SELECT u.code, sum(u.amount) AS delta, count(*) AS n
              FROM unnest(p_items, p_accounts, p_amounts) AS u (item, code, amount)
             WHERE live[u.item] GROUP BY u.code) AS d
     WHERE a.code = d.code;

    -- Taken while the account locks are held, so an account's postings are in time order.
    now_ts := clock_timestamp();
    INSERT INTO transactions (id, description, reference, metadata, reverses, posting_count, created_at)
    SELECT t.id, t.description, t.reference, t.metadata, NULL, c.n, now_ts
      FROM unnest(p_ids, p_descriptions, p_references, p_metadata) WITH ORDINALITY
               AS t (id, description, reference, metadata, ord)
      JOIN (SELECT u.item, count(*) AS n FROM unnest(p_items) AS u (item) GROUP BY u.item) AS c ON c.item = t.ord
     WHERE live[t.ord]
     ORDER BY t.ord;
    INSERT INTO audit_outbox (occurred_at, actor, action, subject, request_id, trace_id, payload)
    SELECT now_ts, t.actor, 'transaction.posted', t.id::text, t.request_id, t.trace_id, t.payload
      FROM unnest(p_ids, p_actors, p_request_ids, p_trace_ids, p_audit_payloads) WITH ORDINALITY
               AS t (id, actor, request_id, trace_id, payload, ord)
     WHERE live[t.ord]
     ORDER BY t.ord;
    IF p_atomic THEN
        INSERT INTO transaction_batches (first_transaction_id, transaction_ids, created_at)
        VALUES (p_ids[1], p_ids, now_ts);
    END IF;

    RETURN QUERY
    WITH request AS (
        SELECT u.item, u.code, u.amount,
               (row_number() OVER (PARTITION BY u.item ORDER BY u.ord) - 1)::smallint AS pos
          FROM unnest(p_items, p_accounts, p_amounts) WITH ORDINALITY AS u (item, code, amount, ord)
         WHERE live[u.item]
    ), inserted AS (
        INSERT INTO postings AS p (transaction_id, position, account_id, currency, amount, balance_after,
                                   account_sequence, created_at)
        SELECT p_ids[r.item], r.pos, a.id, a.currency, r.amount,
               a.balance + sum(r.amount) OVER running,
               a.posting_count + row_number() OVER running,
               now_ts
          FROM request AS r
          JOIN unnest(acc_ids, acc_codes, acc_currencies, acc_balances, acc_counts)
                   AS a (id, code, currency, balance, posting_count) ON a.code = r.code
        WINDOW running AS (PARTITION BY a.id ORDER BY r.item, r.pos)
         ORDER BY r.item, r.pos
        RETURNING p.transaction_id, p.position, p.amount, p.currency, p.balance_after
    )
    SELECT r.item, 'posted', NULL::smallint, NULL::jsonb, i.transaction_id, now_ts, i.position, r.code, i.amount,
           i.currency, i.balance_after
      FROM inserted AS i JOIN request AS r ON p_ids[r.item] = i.transaction_id AND r.pos = i.position
     ORDER BY r.item, i.position;
END $$;

GRANT SELECT, INSERT ON transaction_batches TO ledger_app;
GRANT EXECUTE ON FUNCTION ledger_post_batch(boolean, text[], text[], bytea[], interval, text, uuid[], text[],
    text[], jsonb[], text[], text[], jsonb[], integer[], text[], bigint[], text[], text[]) TO ledger_app;
