-- The highest level of assurance each passkey may sign in at: the level of
-- the context that enrolled it (low for a new account or a recovery code,
-- the proven level for eID recovery, the session's level for a passkey
-- added in a session), raised only by an eID proof in a session of that
-- passkey. A sign-in reaches the lower of this and what the eID binding
-- and the authenticator allow.
ALTER TABLE passkeys ADD COLUMN max_level TEXT NOT NULL DEFAULT 'low';

-- Passkeys enrolled before levels were stored: nothing says in which
-- context they were enrolled, so they count at low, except the one passkey
-- that provably is the one the eID was proven with: the account's only
-- passkey, registered before the binding was last verified, on an account
-- that never removed a passkey nor used a recovery code or eID recovery
-- (so every full session of the account was a session of that passkey,
-- and the eID proof was made in one of them).
UPDATE passkeys SET max_level = (
    SELECT b.level FROM eid_bindings b WHERE b.account_id = passkeys.account_id
)
WHERE EXISTS (
        SELECT 1 FROM eid_bindings b
        WHERE b.account_id = passkeys.account_id AND b.verified_at >= passkeys.created_at
    )
    AND (SELECT COUNT(*) FROM passkeys p WHERE p.account_id = passkeys.account_id) = 1
    AND NOT EXISTS (
        SELECT 1 FROM audit_log l
        WHERE l.account_id = passkeys.account_id
          AND l.kind IN ('passkey.removed', 'recovery_code.used', 'eid.recovery')
    )
    AND NOT EXISTS (
        SELECT 1 FROM audit_events e
        WHERE e.account_id = passkeys.account_id
          AND e.kind IN ('passkey.removed', 'recovery_code.used', 'eid.recovery')
    );
