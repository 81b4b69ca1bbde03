-- The tamper-evident audit log (src/audit). An entry is inserted in the
-- transaction of the change it records, unsealed (no `seq`, no hashes), so
-- that writers never wait for one another. A sealer on every instance then
-- chains the committed entries, in batches, under the lock of the single
-- `audit_head` row: it gives each the next `seq` of a sequence shared by
-- every instance, the previous entry's hash and its own. `pruned_seq` and
-- `pruned_hash` name the last entry removed by retention, where
-- verification starts.
CREATE TABLE audit_log (
    event_id    TEXT PRIMARY KEY,
    seq         BIGINT UNIQUE,
    occurred_at BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    account_id  TEXT,
    client_id   TEXT,
    detail      TEXT NOT NULL,
    prev_hash   TEXT,
    hash        TEXT
);
CREATE INDEX audit_log_unsealed ON audit_log (occurred_at, event_id) WHERE seq IS NULL;
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
CREATE INDEX audit_log_kind ON audit_log (kind, occurred_at);
CREATE INDEX audit_log_client ON audit_log (client_id, occurred_at);
CREATE INDEX audit_log_time ON audit_log (occurred_at);

CREATE TABLE audit_head (
    id          BIGINT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL,
    pruned_seq  BIGINT NOT NULL,
    pruned_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, pruned_seq, pruned_hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
     0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints: a JWS by the Civitas signing key over the sequence
-- number and hash of an entry.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    signature  TEXT NOT NULL
);

-- An operator may lock an account: it cannot sign in while locked.
ALTER TABLE accounts ADD COLUMN locked_at BIGINT;

-- Roles of citizen accounts on Civitas itself (`admin`: the operator's
-- dashboard).
CREATE TABLE account_roles (
    account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, role)
);

-- The agency staff who own a client: they see its figures on the dashboard.
CREATE TABLE client_owners (
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (client_id, account_id)
);
CREATE INDEX client_owners_account ON client_owners (account_id);

-- A client the operator allowed the admin API (scope `civitas:admin`).
ALTER TABLE clients ADD COLUMN admin BIGINT NOT NULL DEFAULT 0;

-- Responses per day, endpoint and status class, summed over instances
-- (each adds its counts every minute); the dashboard's error rates.
CREATE TABLE endpoint_stats (
    day          BIGINT NOT NULL,
    endpoint     TEXT NOT NULL,
    status_class TEXT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (day, endpoint, status_class)
);
