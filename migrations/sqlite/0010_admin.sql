-- Locking and erasing an account find its rows by account id: grants
-- (revoked at lock, removed at erasure), session records, pending
-- back-channel logouts and the mandates it granted.
CREATE INDEX grants_account ON grants (account_id);
CREATE INDEX session_clients_account ON session_clients (account_id);
CREATE INDEX logout_deliveries_account ON logout_deliveries (account_id);
CREATE INDEX mandates_granted_by ON mandates (granted_by);
