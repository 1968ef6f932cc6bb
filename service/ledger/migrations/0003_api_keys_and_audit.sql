-- API keys and the tamper-evident audit log.

-- Keys are random secrets shown once; only their SHA-256 is stored (a 256-bit random secret needs no slow
-- hash: there is nothing to brute-force). Only `revoked_at` may ever change, and only once.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    scopes        text[] NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    CONSTRAINT api_keys_secret_unique UNIQUE (secret_sha256),
    CONSTRAINT api_keys_scopes_valid CHECK (
        cardinality(scopes) BETWEEN 1 AND 3 AND scopes <@ ARRAY['read', 'write', 'admin']),
    CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT api_keys_secret_length CHECK (octet_length(secret_sha256) = 32)
);

CREATE FUNCTION ledger_guard_api_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
            OR (NEW.id, NEW.name, NEW.scopes, NEW.secret_sha256, NEW.created_at, NEW.expires_at)
               IS DISTINCT FROM (OLD.id, OLD.name, OLD.scopes, OLD.secret_sha256, OLD.created_at, OLD.expires_at) THEN
        RAISE EXCEPTION 'api keys are only ever revoked, once' USING ERRCODE = 'LDAPP';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_api_key();

-- Every state change appends an entry here, in the same database transaction as the change. Writers never
-- wait for each other on the chain: a single chainer (ledger/audit.py) moves finished entries into
-- audit_log. `txid` lets it know when an entry can no longer be overtaken: once txid is older than every
-- running transaction (the snapshot's xmin), no earlier-started writer can still add one before it.
CREATE TABLE audit_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    action      text NOT NULL,
    subject     text NOT NULL,
    request_id  text,
    trace_id    text,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- The chained log: gap-free sequence, each entry's hash = SHA-256(previous hash || canonical entry).
CREATE TABLE audit_log (
    sequence      bigint PRIMARY KEY,
    occurred_at   timestamptz NOT NULL,
    actor         text NOT NULL,
    action        text NOT NULL,
    subject       text NOT NULL,
    request_id    text,
    trace_id      text,
    payload       jsonb NOT NULL,
    chained_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    previous_hash bytea NOT NULL,
    hash          bytea NOT NULL,
    CONSTRAINT audit_log_sequence_positive CHECK (sequence >= 1),
    CONSTRAINT audit_log_hash_length CHECK (octet_length(hash) = 32 AND octet_length(previous_hash) = 32)
);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_history_change();

-- The links (not the hashes, which need the canonical JSON of ledger/audit.py): each entry follows the
-- previous one by sequence and carries its hash. The read is the primary key.
CREATE FUNCTION ledger_check_audit_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous bytea;
BEGIN
    IF NEW.sequence = 1 THEN
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    ELSE
        SELECT hash INTO previous FROM audit_log WHERE sequence = NEW.sequence - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit entry % has no predecessor', NEW.sequence USING ERRCODE = 'LDCHN';
        END IF;
    END IF;
    IF NEW.previous_hash <> previous THEN
        RAISE EXCEPTION 'audit entry % does not link to its predecessor', NEW.sequence USING ERRCODE = 'LDCHN';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_linked BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION ledger_check_audit_link();
