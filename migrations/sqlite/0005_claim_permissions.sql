-- Which verified claims (from eID proofing) a client may receive, as the
-- operator decided, with the legal basis of that decision.
CREATE TABLE client_claim_permissions (
    client_id   TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    claim       TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (client_id, claim)
);
