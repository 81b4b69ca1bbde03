//! Erasure of an account (a data-protection request): everything Civitas
//! holds about the citizen goes, in one transaction, together with its
//! `account.erased` audit entry.
//!
//! Removed: the account row (display name, email, user handle), passkeys,
//! recovery codes, the eID binding, consents, grants with their refresh
//! tokens, the session records (`session_clients`, pending back-channel
//! logout deliveries), roles and client ownerships. Browser sessions in the
//! ephemeral store are ended at once through the same marker a lock uses,
//! in the same steps: those begun so far before the transaction, then
//! after the commit every one, whenever begun, so that a sign-in that found
//! the passkey before the erasure committed gets no live session either.
//! Erasing an account that does not exist (a repeated erasure) writes that
//! last marker again before answering [`AccountError::NotFound`], so an
//! operator can retry an erasure whose last step failed.
//!
//! Mandates granted by or to the account are revoked, with everything
//! delegated from them, and the account's id is replaced by [`ERASED`] in
//! them: a mandate is also the organization's record, so the row stays, but
//! it no longer names the citizen (the representative's identifier hash is
//! cleared too).
//!
//! Kept: the audit log, untouched. Its entries name the account only by
//! its internal id, which after erasure points at nothing; rewriting them
//! would break the hash chain that makes the log tamper-evident. The
//! business register's own data (`org_representatives`) is the register's,
//! not the citizen's account, and stays until the next import.

use sqlx::Row as _;

use super::{AccountError, AccountId, Accounts};
use crate::audit::{self, Actor, Event, Kind};
use crate::mandates::revoke_cascade;
use crate::sessions::Sessions;

/// What replaces an erased account's id in the records that stay.
pub const ERASED: &str = "erased";

/// What an erasure removed, counted (for the audit entry and the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Passkeys removed.
    pub passkeys: u64,
    /// Grants removed (their refresh tokens with them).
    pub grants: u64,
    /// Consents removed.
    pub consents: u64,
    /// Mandates granted by or to the account that ended now (delegations
    /// from them included).
    pub mandates_revoked: u64,
}

impl Accounts {
    /// Erases `account` (see the module documentation). A second erasure of
    /// the same account is [`AccountError::NotFound`].
    ///
    /// # Errors
    /// [`AccountError::NotFound`], or a failure of the database (nothing is
    /// erased then) or of the ephemeral store (nothing is erased then; or,
    /// after the commit, the account is erased and erasing it again ends the
    /// sessions of sign-ins that were in flight).
    pub async fn erase(
        &self,
        sessions: &Sessions,
        account: &AccountId,
        actor: &Actor,
    ) -> Result<Erased, AccountError> {
        let now = self.clock.now();
        let id = account.as_str();
        let mut tx = self.db.begin().await?;
        if sqlx::query("SELECT 1 AS ok FROM accounts WHERE account_id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            drop(tx);
            sessions.end_all_of(account).await?;
            return Err(AccountError::NotFound);
        }
        sessions.end_begun_before(account, now.plus(1)).await?;
        let mut out = Erased::default();

        // Mandates: revoke those granted by or to the account, and what was
        // delegated from them, then stop naming the account.
        let roots: Vec<String> = sqlx::query(
            "SELECT mandate_id FROM mandates WHERE granted_by = $1 OR representative_account = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("mandate_id"))
        .collect::<Result<_, _>>()?;
        for root in &roots {
            out.mandates_revoked += revoke_cascade(&mut tx, root, now, ERASED).await?;
        }
        for sql in [
            "UPDATE mandates SET granted_by = $2 WHERE granted_by = $1",
            "UPDATE mandates SET revoked_by = $2 WHERE revoked_by = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .bind(ERASED)
                .execute(&mut *tx)
                .await?;
        }
        delete(
            &mut tx,
            "UPDATE mandates SET representative_account = NULL, representative_person = NULL \
             WHERE representative_account = $1",
            id,
        )
        .await?;

        sqlx::query(
            "DELETE FROM refresh_tokens WHERE grant_id IN (SELECT grant_id FROM grants WHERE account_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        out.grants = delete(&mut tx, "DELETE FROM grants WHERE account_id = $1", id).await?;
        out.consents = delete(&mut tx, "DELETE FROM consents WHERE account_id = $1", id).await?;
        out.passkeys = delete(&mut tx, "DELETE FROM passkeys WHERE account_id = $1", id).await?;
        for sql in [
            "DELETE FROM session_clients WHERE account_id = $1",
            "DELETE FROM logout_deliveries WHERE account_id = $1",
            "DELETE FROM recovery_codes WHERE account_id = $1",
            "DELETE FROM eid_bindings WHERE account_id = $1",
            "DELETE FROM account_roles WHERE account_id = $1",
            "DELETE FROM client_owners WHERE account_id = $1",
            "DELETE FROM accounts WHERE account_id = $1",
        ] {
            delete(&mut tx, sql, id).await?;
        }
        let event = Event::by(Kind::AccountErased, actor.clone())
            .account(account)
            .with("passkeys", out.passkeys)
            .with("grants", out.grants)
            .with("consents", out.consents)
            .with("mandates_revoked", out.mandates_revoked);
        audit::record_all(
            &mut tx,
            &audit::with_admin_action(event, "account.erase"),
            now,
        )
        .await?;
        tx.commit().await?;
        sessions.end_all_of(account).await?;
        tracing::info!("account erased");
        Ok(out)
    }
}

/// Runs `sql` (a DELETE or UPDATE with `$1` the account id); rows affected.
async fn delete(
    tx: &mut sqlx::AnyConnection,
    sql: &'static str,
    id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected())
}
