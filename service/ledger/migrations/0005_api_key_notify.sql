-- Services cache authenticated API keys (ledger/keys.py, KeyCache). A revocation must still take effect at
-- once in every process: each one LISTENs on this channel and drops its cache when a key changes. The
-- notification is sent at commit, so no process can see it before the revocation is visible.
CREATE FUNCTION ledger_notify_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_api_keys', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_notify AFTER UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION ledger_notify_api_key_change();
