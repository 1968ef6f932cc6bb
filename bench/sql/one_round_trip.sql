-- "one round trip" baseline: the project's own ledger_post_transaction(), called as the service calls it
-- (fresh transaction id and idempotency key, fingerprint, audit payload), one statement per transfer.
-- :a is debited, :b credited, by :amt.
\set namt -:amt
SELECT * FROM ledger_post_transaction(
    gen_random_uuid(), 'bench', gen_random_uuid()::text, sha256(uuid_send(gen_random_uuid())),
    interval '1 day', '2000ms',
    ARRAY['acct:' || :a::bigint, 'acct:' || :b::bigint], ARRAY[:namt, :amt]::bigint[], ARRAY[NULL, NULL]::text[],
    NULL, NULL, '{}'::jsonb, NULL, 'bench', NULL, NULL,
    jsonb_build_object('postings', jsonb_build_array(
        jsonb_build_object('account', 'acct:' || :a::bigint, 'amount', :namt::bigint),
        jsonb_build_object('account', 'acct:' || :b::bigint, 'amount', :amt::bigint)),
      'reference', NULL, 'reverses', NULL));
