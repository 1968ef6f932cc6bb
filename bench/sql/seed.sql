-- The accounts every run starts from (copied into each run's database from the template):
-- acct:1 .. acct:10000 (ids 1..10000, in USD, floor 0, each funded with 10^12 minor units) and `world`
-- (id 10001, no floor) that the funding comes from. Transfers move 1..1000 units, so no floor ever refuses
-- during a run (the hot account could be debited 10^9 times before reaching its floor).
INSERT INTO accounts (code, currency, min_balance)
SELECT 'acct:' || g, 'USD', 0 FROM generate_series(1, 10000) AS g ORDER BY g;
INSERT INTO accounts (code, currency, min_balance) VALUES ('world', 'USD', NULL);
-- Funding through the project's own function: 102 transactions of (world, 99 accounts) or fewer.
DO $$
DECLARE
    first integer := 1;
    last integer;
    codes text[];
    amounts bigint[];
BEGIN
    WHILE first <= 10000 LOOP
        last := least(first + 98, 10000);
        SELECT array_agg('acct:' || g ORDER BY g), array_agg(1000000000000::bigint ORDER BY g)
          INTO codes, amounts FROM generate_series(first, last) AS g;
        PERFORM * FROM ledger_post_transaction(
            gen_random_uuid(), 'bench-seed', 'fund-' || first, sha256(convert_to('fund-' || first, 'UTF8')),
            interval '1 day', '2000ms', 'world'::text || codes, (-1000000000000::bigint * (last - first + 1)) || amounts,
            array_fill(NULL::text, ARRAY[last - first + 2]), 'funding', NULL, '{}'::jsonb, NULL, 'bench-seed',
            NULL, NULL, '{}'::jsonb);
        first := last + 1;
    END LOOP;
END $$;
