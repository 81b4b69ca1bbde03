-- A scheme-independent keyed hash of country and person identifier, so that
-- business-register data (which names people by national identifier) can be
-- matched to eID-proven citizens without storing identifiers in the clear.
ALTER TABLE eid_bindings ADD COLUMN person_hash TEXT;
CREATE INDEX eid_bindings_person ON eid_bindings (person_hash);

-- Legal persons from a national business register (ISO 6523 style: country
-- plus register code).
CREATE TABLE organizations (
    org_id        TEXT PRIMARY KEY,
    country       TEXT NOT NULL,
    register_code TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Statutory representatives (board members) as the register lists them.
CREATE TABLE org_representatives (
    org_id      TEXT NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    person_hash TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    since       BIGINT NOT NULL,
    PRIMARY KEY (org_id, person_hash)
);

-- Mandates granted by a representative of an organization to a citizen.
CREATE TABLE mandates (
    mandate_id             TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    representative_account TEXT,
    representative_person  TEXT,
    invitation_hash        TEXT UNIQUE,
    powers                 TEXT NOT NULL,
    valid_from             BIGINT NOT NULL,
    valid_until            BIGINT,
    may_delegate           BIGINT NOT NULL,
    parent_id              TEXT,
    granted_by             TEXT NOT NULL,
    granted_at             BIGINT NOT NULL,
    accepted_at            BIGINT,
    revoked_at             BIGINT,
    revoked_by             TEXT,
    min_level              TEXT NOT NULL
);
CREATE INDEX mandates_org ON mandates (org_id);
CREATE INDEX mandates_representative ON mandates (representative_account);
CREATE INDEX mandates_parent ON mandates (parent_id);
