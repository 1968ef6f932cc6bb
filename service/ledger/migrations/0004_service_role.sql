-- Least privilege: the service works as `ledger_app`, which may read everything and append history (ledger
-- and audit log), but may not UPDATE or DELETE transactions, postings or audit entries, TRUNCATE anything, or
-- disable triggers (only the owner, who runs these migrations, can). Its only updates are balances (through
-- the posting engine), key revocations, and its own idempotency keys and audit outbox. Deployments create `ledger_app` as a LOGIN role with a password (deploy/postgres/initdb);
-- where it does not exist yet it is created here without LOGIN, to be enabled by an administrator.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_app') THEN
        CREATE ROLE ledger_app NOLOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO ledger_app;
GRANT SELECT, INSERT ON transactions, postings TO ledger_app;
-- Column privileges: SELECT ... FOR UPDATE needs UPDATE on at least one column, and balances are the only
-- columns that ever change.
GRANT SELECT, INSERT, UPDATE (balance, posting_count) ON accounts TO ledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO ledger_app;
GRANT SELECT ON _yoyo_migration TO ledger_app;
GRANT SELECT, INSERT, UPDATE (revoked_at) ON api_keys TO ledger_app;
-- The chainer runs inside the service: it moves entries from the outbox into the log, never edits the log.
GRANT SELECT, INSERT, DELETE ON audit_outbox TO ledger_app;
GRANT SELECT, INSERT ON audit_log TO ledger_app;
GRANT EXECUTE ON FUNCTION ledger_post_transaction(uuid, text, text, bytea, interval, text, text[], bigint[],
    text[], text, text, jsonb, uuid, text, text, text, jsonb) TO ledger_app;
