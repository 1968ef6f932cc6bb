-- The per-posting checks of 0001, once per INSERT statement instead of once per row (ADR 0006).
--
-- Measured: the deferred per-row trigger `postings_balanced` ran four queries for every posting at commit
-- (its transaction's declared count, its postings counted, their sums per currency, its account's count),
-- and the BEFORE trigger `postings_chain` one more: with 100 transfers in one call, dropping the first
-- alone nearly doubled throughput. A statement-level trigger sees all the statement's new rows at once
-- (a transition table) and checks them in three set-based queries.
--
-- What is checked does not change; when does, a little: at the end of the INSERT statement instead of at
-- commit. So a transaction's postings must be inserted by one statement, after its accounts' balances were
-- updated (what both posting functions and bench/sql/interactive.sql do, and what shared/perf recommends).
-- The chain is checked against the table after the statement, so a predecessor inserted by the same
-- statement counts, as it did for the row trigger.

DROP TRIGGER postings_balanced ON postings;
DROP TRIGGER postings_chain ON postings;

CREATE FUNCTION ledger_check_new_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- Each posting continues its account's chain: balance_after = previous balance_after + amount.
    SELECT n.account_id, n.account_sequence, n.balance_after, n.amount, p.balance_after AS previous INTO bad
      FROM new_postings AS n
      LEFT JOIN postings AS p ON p.account_id = n.account_id AND p.account_sequence = n.account_sequence - 1
     WHERE (n.account_sequence = 1 AND n.balance_after <> n.amount)
        OR (n.account_sequence > 1 AND (p.account_id IS NULL OR n.balance_after <> p.balance_after + n.amount))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'posting % of account %: balance_after % does not follow %', bad.account_sequence,
            bad.account_id, bad.balance_after, coalesce(bad.previous::text, 'a missing predecessor')
            USING ERRCODE = 'LDCHN';
    END IF;

    -- Each transaction touched carries exactly the postings it declares (all of them: earlier ones too).
    SELECT t.id, t.posting_count INTO bad
      FROM (SELECT DISTINCT n.transaction_id FROM new_postings AS n) AS s
      JOIN transactions AS t ON t.id = s.transaction_id
     WHERE t.posting_count <> (SELECT count(*) FROM postings AS p WHERE p.transaction_id = s.transaction_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction % does not have the % postings it declares', bad.id, bad.posting_count
            USING ERRCODE = 'LDUNB';
    END IF;

    -- ...summing to zero per currency (with the count above, the new rows are all of its postings).
    SELECT n.transaction_id, n.currency INTO bad
      FROM new_postings AS n GROUP BY n.transaction_id, n.currency HAVING sum(n.amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transaction % does not sum to zero in %', bad.transaction_id, bad.currency
            USING ERRCODE = 'LDUNB';
    END IF;

    -- ...and each account has taken its postings into its balance (its posting count covers them).
    SELECT n.account_id, n.account_sequence INTO bad
      FROM new_postings AS n JOIN accounts AS a ON a.id = n.account_id
     WHERE a.posting_count < n.account_sequence
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % did not take posting % into its balance', bad.account_id,
            bad.account_sequence USING ERRCODE = 'LDCHN';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER postings_checked AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_postings();

DROP FUNCTION ledger_check_transaction_balanced();
DROP FUNCTION ledger_check_posting_chain();
