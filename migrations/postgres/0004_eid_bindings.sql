-- A citizen's proven national identity. One identity binds to one account
-- (unique keyed hash of scheme, country and person identifier); the
-- identifier itself is stored only encrypted (AES-256-GCM).
CREATE TABLE eid_bindings (
    account_id            TEXT PRIMARY KEY REFERENCES accounts (account_id) ON DELETE CASCADE,
    identity_hash         TEXT NOT NULL UNIQUE,
    connector             TEXT NOT NULL,
    scheme                TEXT NOT NULL,
    country               TEXT NOT NULL,
    person_identifier_enc TEXT NOT NULL,
    given_name            TEXT,
    family_name           TEXT,
    birthdate             TEXT,
    level                 TEXT NOT NULL,
    verified_at           BIGINT NOT NULL,
    created_at            BIGINT NOT NULL
);
