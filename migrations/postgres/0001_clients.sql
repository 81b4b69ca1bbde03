-- Relying parties registered with Civitas (RFC 7591). Secrets are stored only
-- as SHA-256 hashes; the metadata is the validated registration as JSON.
CREATE TABLE clients (
    client_id               TEXT PRIMARY KEY,
    secret_hash             TEXT,
    registration_token_hash TEXT,
    metadata                TEXT NOT NULL,
    first_party             BIGINT NOT NULL DEFAULT 0,
    subject_type            TEXT NOT NULL DEFAULT 'pairwise',
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
