-- 002_bank.sql — PostgreSQL schema, part 2: the mock bank (the same semantics
-- as db/migrations/002 for SQLite): one account per user, transfers with
-- idempotency keys, and a double-entry ledger of every movement.

-- The balance is a cache of SUM(ledger.delta_cents) for the account, kept in
-- the same transaction as the ledger rows; the CHECK makes an overdraft
-- impossible even if the code asked for one (store_pg.c tests the balance in
-- the UPDATE's WHERE instead, so that an overdraft does not abort the
-- caller's transaction).
CREATE TABLE accounts (
    user_id        BIGINT PRIMARY KEY REFERENCES users(id),
    balance_cents  BIGINT NOT NULL CHECK (balance_cents >= 0)
);

-- (from_id, idempotency_key) is unique: a retried request finds the first
-- transfer instead of making a second one.
CREATE TABLE transfers (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_id          BIGINT NOT NULL REFERENCES users(id),
    to_id            BIGINT NOT NULL REFERENCES users(id),
    amount_cents     BIGINT NOT NULL CHECK (amount_cents > 0),
    idempotency_key  TEXT   NOT NULL,
    status           TEXT   NOT NULL
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    reason           TEXT,
    created_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    UNIQUE (from_id, idempotency_key),
    CHECK (from_id <> to_id)
);

CREATE INDEX transfers_unfinished ON transfers(id) WHERE status IN ('pending', 'processing');

-- Every movement of money. A transfer writes two rows that sum to zero;
-- an opening balance is the one kind of row without a transfer.
CREATE TABLE ledger (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id    BIGINT REFERENCES transfers(id),
    account_id     BIGINT NOT NULL REFERENCES accounts(user_id),
    delta_cents    BIGINT NOT NULL,
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    ts_ms          BIGINT NOT NULL,
    memo           TEXT   NOT NULL
);

CREATE INDEX ledger_transfer ON ledger(transfer_id);
