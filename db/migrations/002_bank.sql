-- 002_bank.sql — the mock bank: one account per user, transfers with
-- idempotency keys, and a double-entry ledger of every movement.

-- The balance is a cache of SUM(ledger.delta_cents) for the account, kept in
-- the same transaction as the ledger rows; the CHECK makes an overdraft
-- impossible even if the code asked for one.
CREATE TABLE accounts (
    user_id        INTEGER PRIMARY KEY REFERENCES users(id),
    balance_cents  INTEGER NOT NULL CHECK (balance_cents >= 0)
) STRICT;

-- (from_id, idempotency_key) is unique: a retried request finds the first
-- transfer instead of making a second one.
CREATE TABLE transfers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    from_id          INTEGER NOT NULL REFERENCES users(id),
    to_id            INTEGER NOT NULL REFERENCES users(id),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents > 0),
    idempotency_key  TEXT    NOT NULL,
    status           TEXT    NOT NULL
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    reason           TEXT,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    UNIQUE (from_id, idempotency_key),
    CHECK (from_id <> to_id)
) STRICT;

CREATE INDEX transfers_unfinished ON transfers(status) WHERE status IN ('pending', 'processing');

-- Every movement of money. A transfer writes two rows that sum to zero;
-- an opening balance is the one kind of row without a transfer.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id    INTEGER REFERENCES transfers(id),
    account_id     INTEGER NOT NULL REFERENCES accounts(user_id),
    delta_cents    INTEGER NOT NULL,
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    ts_ms          INTEGER NOT NULL,
    memo           TEXT    NOT NULL
) STRICT;

CREATE INDEX ledger_transfer ON ledger(transfer_id);

-- Users created before the bank existed get their opening balance now.
INSERT INTO accounts(user_id, balance_cents) SELECT id, 100000 FROM users;
INSERT INTO ledger(transfer_id, account_id, delta_cents, balance_after, ts_ms, memo)
    SELECT NULL, id, 100000, 100000, created_ms, 'opening balance' FROM users;
