-- Server-wide secrets shared by every instance (the pairwise-subject key).
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Citizens. The id is internal and opaque; credentials bind to it, never to
-- the email or display name.
CREATE TABLE accounts (
    account_id     TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    email          TEXT,
    email_verified BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

-- Consent given by a citizen to a client, per scope set (remembered).
CREATE TABLE consents (
    account_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    claims     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

-- A grant: what one code redemption (or refresh chain) authorises. Revoking
-- it revokes every token issued from it.
CREATE TABLE grants (
    grant_id   TEXT PRIMARY KEY,
    code_hash  TEXT,
    client_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    sid        TEXT,
    scope      TEXT NOT NULL,
    claims     TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    acr        TEXT NOT NULL,
    amr        TEXT NOT NULL,
    offline    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX grants_code_hash ON grants (code_hash);
CREATE INDEX grants_sid ON grants (sid);

-- Refresh tokens, stored as hashes; rotated at every use.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (grant_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- Relying parties that received tokens in a browser session (for logout).
CREATE TABLE session_clients (
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    account_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);

-- Back-channel logout deliveries: a durable queue with retries.
CREATE TABLE logout_deliveries (
    delivery_id     TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    uri             TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    sid             TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    abandoned_at    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at);
