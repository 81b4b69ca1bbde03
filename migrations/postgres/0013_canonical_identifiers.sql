-- The form of a binding's stored identifier and hashes: 0 as the upstream
-- returned it (earlier versions), 1 canonical (src/eid/identifier.rs).
-- Rows at 0 are recomputed once at start-up (src/eid/recompute.rs); a row
-- written by an earlier version's INSERT gets 0 and is recomputed at the
-- next start-up.
ALTER TABLE eid_bindings ADD COLUMN identifier_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX eid_bindings_identifier_version ON eid_bindings (identifier_version);
