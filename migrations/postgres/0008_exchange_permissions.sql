-- Token exchange (RFC 8693) policy: which client may exchange a token for
-- one whose audience is which downstream resource (may_act), as the
-- operator decided.
CREATE TABLE exchange_permissions (
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, resource)
);
