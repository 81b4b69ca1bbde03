-- The signed record of the last pruning (src/audit/retention.rs): a JWS
-- (`typ` `audit-prune+jwt`) by the ES256 signing key over the entry
-- retention removed last (`pruned_seq`, `pruned_hash`). Verification and
-- the signer of checkpoints accept a pruned marker only if this record, or
-- a signed checkpoint, names it: a writer of the database who moves the
-- marker to hide a prefix of the log cannot sign one.
ALTER TABLE audit_head ADD COLUMN pruned_proof TEXT;

-- The operator's signed acceptance (src/audit/accept.rs, `civitas audit
-- accept`): a JWS (`typ` `audit-accept+jwt`) over an entry and its hash;
-- entries up to it that no checkpoint covered in time (a crash, a stop)
-- are no longer reported.
ALTER TABLE audit_head ADD COLUMN accepted_proof TEXT;
