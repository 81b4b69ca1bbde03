-- The WebAuthn user handle of each account (a random UUID): credentials are
-- bound to it, never to the email or display name.
ALTER TABLE accounts ADD COLUMN user_handle TEXT;
CREATE UNIQUE INDEX accounts_user_handle ON accounts (user_handle);

-- Passkeys. `passkey` is webauthn-rs's credential record (public key,
-- counter, flags); the other columns are what the account page shows.
CREATE TABLE passkeys (
    credential_id      TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    passkey            TEXT NOT NULL,
    backup_eligible    BIGINT NOT NULL,
    backup_state       BIGINT NOT NULL,
    sign_count         BIGINT NOT NULL,
    aaguid             TEXT,
    transports         TEXT NOT NULL,
    attestation_format TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    last_used_at       BIGINT
);
CREATE INDEX passkeys_account ON passkeys (account_id);

-- One-time recovery codes, stored only as hashes (80-bit codes).
CREATE TABLE recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_account ON recovery_codes (account_id);

-- What happened to an account, for the citizen and the operator.
CREATE TABLE audit_events (
    event_id   TEXT PRIMARY KEY,
    account_id TEXT,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_events_account ON audit_events (account_id, created_at);
