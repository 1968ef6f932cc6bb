-- The ledger: accounts, transactions, postings and idempotency keys.
--
-- The database is the last line of defence: every invariant of docs/invariants is enforced here too,
-- by named constraints and triggers, so that a bug in the service (or a hand-written statement) cannot
-- create or destroy money. See docs/adr/0002-concurrency.md for the locking protocol.

CREATE TABLE accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "C" collation: byte order, so prefix searches are index range scans.
    code          text COLLATE "C" NOT NULL,
    currency      text NOT NULL,
    min_balance   bigint,
    balance       bigint NOT NULL DEFAULT 0,
    posting_count bigint NOT NULL DEFAULT 0,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT accounts_code_unique UNIQUE (code),
    -- Target of the postings' composite foreign key: a posting's currency is its account's currency.
    CONSTRAINT accounts_id_currency_unique UNIQUE (id, currency),
    CONSTRAINT accounts_code_format CHECK (
        code ~ '^[a-z0-9_-]+(:[a-z0-9_-]+)*$' AND char_length(code) <= 128),
    CONSTRAINT accounts_currency_format CHECK (currency ~ '^[A-Z][A-Z0-9]{2,9}$'),
    CONSTRAINT accounts_min_balance_not_positive CHECK (min_balance <= 0),
    CONSTRAINT accounts_balance_floor CHECK (min_balance IS NULL OR balance >= min_balance),
    CONSTRAINT accounts_posting_count_not_negative CHECK (posting_count >= 0),
    CONSTRAINT accounts_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
) WITH (fillfactor = 70);  -- room for HOT updates of hot balances (shared/perf: flat over long runs)

CREATE TABLE transactions (
    id            uuid PRIMARY KEY,
    description   text,
    reference     text,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    reverses      uuid REFERENCES transactions (id),
    posting_count integer NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT transactions_posting_count_range CHECK (posting_count BETWEEN 2 AND 100),
    CONSTRAINT transactions_not_self_reversing CHECK (reverses <> id),
    CONSTRAINT transactions_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);
CREATE UNIQUE INDEX transactions_reference_unique ON transactions (reference) WHERE reference IS NOT NULL;
-- A transaction is reversed at most once.
CREATE UNIQUE INDEX transactions_reverses_unique ON transactions (reverses) WHERE reverses IS NOT NULL;

CREATE TABLE postings (
    transaction_id   uuid NOT NULL REFERENCES transactions (id),
    position         smallint NOT NULL,
    account_id       bigint NOT NULL,
    currency         text NOT NULL,
    amount           bigint NOT NULL,
    balance_after    bigint NOT NULL,
    -- 1, 2, 3 ... per account: the account's history is a gap-free chain.
    account_sequence bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT postings_pkey PRIMARY KEY (transaction_id, position),
    CONSTRAINT postings_account_currency_fkey
        FOREIGN KEY (account_id, currency) REFERENCES accounts (id, currency),
    CONSTRAINT postings_account_sequence_unique UNIQUE (account_id, account_sequence),
    CONSTRAINT postings_amount_not_zero CHECK (amount <> 0),
    CONSTRAINT postings_position_range CHECK (position BETWEEN 0 AND 99),
    CONSTRAINT postings_account_sequence_positive CHECK (account_sequence >= 1)
);
CREATE INDEX postings_account_time ON postings (account_id, created_at, account_sequence);

-- One row per (API key, Idempotency-Key): either the transaction it created, or the refusal it got (a
-- refusal that depends on the ledger's state, such as insufficient funds, is replayed as it was).
CREATE TABLE idempotency_keys (
    scope           text NOT NULL,
    key             text NOT NULL,
    fingerprint     bytea NOT NULL,
    transaction_id  uuid,
    response_status smallint,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_outcome CHECK (
        (transaction_id IS NOT NULL AND response_status IS NULL AND response_body IS NULL)
        OR (transaction_id IS NULL AND response_status BETWEEN 400 AND 499 AND response_body IS NOT NULL)),
    -- Deferred: the key is claimed first (so a concurrent retry waits on it), the transaction written after.
    CONSTRAINT idempotency_keys_transaction_fkey FOREIGN KEY (transaction_id)
        REFERENCES transactions (id) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT idempotency_keys_key_format CHECK (key ~ '^[\x20-\x7e]{1,255}$')
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- History is append-only: no UPDATE, DELETE or TRUNCATE of transactions and postings, ever.
CREATE FUNCTION ledger_refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger history is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'LDAPP';
END $$;

CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_history_change();

-- Each posting continues its account's chain: balance_after = previous balance_after + amount.
-- The read is the unique (account_id, account_sequence) index.
CREATE FUNCTION ledger_check_posting_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous_balance bigint;
BEGIN
    IF NEW.account_sequence = 1 THEN
        previous_balance := 0;
    ELSE
        SELECT balance_after INTO previous_balance FROM postings
         WHERE account_id = NEW.account_id AND account_sequence = NEW.account_sequence - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'posting % of account % has no predecessor', NEW.account_sequence, NEW.account_id
                USING ERRCODE = 'LDCHN';
        END IF;
    END IF;
    IF NEW.balance_after <> previous_balance + NEW.amount THEN
        RAISE EXCEPTION 'posting % of account %: balance_after % <> % + %', NEW.account_sequence,
            NEW.account_id, NEW.balance_after, previous_balance, NEW.amount USING ERRCODE = 'LDCHN';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER postings_chain BEFORE INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_check_posting_chain();

-- At commit: the transaction's postings sum to zero per currency, there are as many as the transaction
-- declares (2..100), and the account has taken this posting into its balance.
CREATE FUNCTION ledger_check_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    declared integer;
    actual integer;
    unbalanced text;
BEGIN
    SELECT posting_count INTO declared FROM transactions WHERE id = NEW.transaction_id;
    SELECT count(*) INTO actual FROM postings WHERE transaction_id = NEW.transaction_id;
    IF actual <> declared THEN
        RAISE EXCEPTION 'transaction % has % postings, declares %', NEW.transaction_id, actual, declared
            USING ERRCODE = 'LDUNB';
    END IF;
    SELECT string_agg(currency, ', ') INTO unbalanced FROM (
        SELECT currency FROM postings WHERE transaction_id = NEW.transaction_id
         GROUP BY currency HAVING sum(amount) <> 0) AS s;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'transaction % does not sum to zero in %', NEW.transaction_id, unbalanced
            USING ERRCODE = 'LDUNB';
    END IF;
    PERFORM 1 FROM accounts WHERE id = NEW.account_id AND posting_count >= NEW.account_sequence;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % did not take posting % into its balance', NEW.account_id,
            NEW.account_sequence USING ERRCODE = 'LDCHN';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction_balanced();

-- At commit: a transaction carries the postings it declares (a transaction with none would slip past the
-- per-posting check above).
CREATE FUNCTION ledger_check_transaction_postings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actual integer;
BEGIN
    SELECT count(*) INTO actual FROM postings WHERE transaction_id = NEW.id;
    IF actual <> NEW.posting_count THEN
        RAISE EXCEPTION 'transaction % has % postings, declares %', NEW.id, actual, NEW.posting_count
            USING ERRCODE = 'LDUNB';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER transactions_have_postings AFTER INSERT ON transactions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction_postings();

-- At commit: an account's balance is the balance_after of its last posting (0 with none), so with the
-- chain above, balance = sum of postings. Identity fields never change.
CREATE FUNCTION ledger_check_account_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    expected bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.code <> OLD.code OR NEW.currency <> OLD.currency
            OR NEW.created_at <> OLD.created_at OR NEW.min_balance IS DISTINCT FROM OLD.min_balance
            OR NEW.posting_count < OLD.posting_count) THEN
        RAISE EXCEPTION 'account %: identity, floor and history are immutable', NEW.code USING ERRCODE = 'LDAPP';
    END IF;
    IF NEW.posting_count = 0 THEN
        expected := 0;
    ELSE
        SELECT balance_after INTO expected FROM postings
         WHERE account_id = NEW.id AND account_sequence = NEW.posting_count;
    END IF;
    IF expected IS DISTINCT FROM NEW.balance THEN
        RAISE EXCEPTION 'account % balance % does not match its postings (%)', NEW.code, NEW.balance, expected
            USING ERRCODE = 'LDCHN';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER accounts_balance_matches_postings AFTER INSERT OR UPDATE ON accounts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_account_balance();
