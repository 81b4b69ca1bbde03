//! Locking an account (an operator's decision): a locked account cannot
//! sign in, its browser sessions end at once on every instance, and the
//! grants (with their refresh and access tokens) it gave relying parties
//! are revoked. Unlocking restores sign-in, not the revoked tokens.
//!
//! The lock itself is `accounts.locked_at`. Sign-in paths read it with the
//! data they already load (passkey sign-in joins the account, recovery-code
//! redemption too), so a refused sign-in costs no extra query; eID recovery
//! asks [`is_locked`]. Sessions are ended through the account's session
//! marker, which the session check reads at every session load (see
//! `sessions`), in steps that never leave a live session of a locked
//! account and never a marker that ends the sessions of an unlocked one:
//!
//! - a lock first ends the sessions begun so far
//!   ([`Sessions::end_begun_before`] the next second), then commits, then
//!   ends all of them ([`Sessions::end_all_of`]), which also ends the
//!   session of a sign-in that passed its check before the commit. A lock
//!   whose transaction fails has ended the sessions but not locked the
//!   account; one whose last step fails is in place, answers with the
//!   error, and is repeated: a lock of a locked account changes nothing in
//!   the database but writes "all" again.
//! - an unlock writes "begun before now" before its transaction: if that
//!   fails the account stays locked, and no session from before or during
//!   the lock (all of them begun before now) comes back either way.
//!
//! Two operators locking and unlocking one account at the same moment can
//! leave the marker of the other operation; repeating the intended one
//! sets it right.

use sqlx::Row as _;

use super::{AccountError, AccountId, Accounts};
use crate::audit::{self, Actor, Event, Kind};
use crate::clock::UnixTime;
use crate::sessions::Sessions;
use crate::store::{Database, StoreError};

/// What a lock or unlock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockChange {
    /// The account changed state; the audit entries were written.
    Changed {
        /// Grants revoked by a lock (0 for an unlock).
        grants_revoked: u64,
    },
    /// It was already in that state; nothing was written.
    Unchanged,
}

/// When `account` was locked, if it is; `None` also for no such account.
///
/// # Errors
/// If the database fails.
pub async fn locked_at(db: &Database, account: &AccountId) -> Result<Option<UnixTime>, StoreError> {
    let row = sqlx::query("SELECT locked_at FROM accounts WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(row
        .map(|r| r.try_get::<Option<i64>, _>("locked_at"))
        .transpose()?
        .flatten()
        .map(UnixTime))
}

/// Is `account` locked?
///
/// # Errors
/// If the database fails.
pub async fn is_locked(db: &Database, account: &AccountId) -> Result<bool, StoreError> {
    Ok(locked_at(db, account).await?.is_some())
}

/// `None` for no such account, else whether it is locked.
async fn lock_state(
    conn: &mut sqlx::AnyConnection,
    account: &AccountId,
) -> Result<Option<bool>, StoreError> {
    let row = sqlx::query("SELECT locked_at FROM accounts WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row
        .map(|r| r.try_get::<Option<i64>, _>("locked_at"))
        .transpose()?
        .map(|t| t.is_some()))
}

impl Accounts {
    /// Locks `account`: ends the sessions begun so far (first, so that a
    /// failure leaves the account as it was but never a live session of a
    /// locked account), then in one transaction sets `locked_at`, revokes
    /// its grants and records `account.locked` (and, for the admin API, its
    /// admin entry), then ends every session of the account, whenever begun
    /// (see the module documentation). A locked account gets the last step
    /// again, and [`LockChange::Unchanged`].
    ///
    /// # Errors
    /// [`AccountError::NotFound`]; a store failure (nothing changed in
    /// the database then); or [`AccountError::Cache`] after the commit: the
    /// account is locked, and locking it again ends its sessions.
    pub async fn lock(
        &self,
        sessions: &Sessions,
        account: &AccountId,
        actor: &Actor,
    ) -> Result<LockChange, AccountError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        match lock_state(&mut tx, account).await? {
            None => return Err(AccountError::NotFound),
            Some(true) => {
                drop(tx);
                sessions.end_all_of(account).await?;
                return Ok(LockChange::Unchanged);
            }
            Some(false) => {}
        }
        sessions.end_begun_before(account, now.plus(1)).await?;
        let locked = sqlx::query(
            "UPDATE accounts SET locked_at = $2 WHERE account_id = $1 AND locked_at IS NULL",
        )
        .bind(account.as_str())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        if locked.rows_affected() == 0 {
            // Locked meanwhile by another operator (PostgreSQL waited for
            // that transaction to commit).
            drop(tx);
            sessions.end_all_of(account).await?;
            return Ok(LockChange::Unchanged);
        }
        let revoked = sqlx::query(
            "UPDATE grants SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
        )
        .bind(account.as_str())
        .bind(now.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let event = Event::by(Kind::AccountLocked, actor.clone())
            .account(account)
            .with("grants_revoked", revoked);
        audit::record_all(
            &mut tx,
            &audit::with_admin_action(event, "account.lock"),
            now,
        )
        .await?;
        tx.commit().await?;
        sessions.end_all_of(account).await?;
        tracing::info!(grants_revoked = revoked, "account locked");
        Ok(LockChange::Changed {
            grants_revoked: revoked,
        })
    }

    /// Unlocks `account`: it can sign in again. Tokens revoked by the lock
    /// stay revoked, and sessions from before and during the lock stay
    /// ended: the session marker becomes "begun before now", written before
    /// the transaction (see the module documentation). An unlocked account
    /// is [`LockChange::Unchanged`], and its sessions are left alone.
    ///
    /// # Errors
    /// [`AccountError::NotFound`], or a store failure (the account stays
    /// locked then).
    pub async fn unlock(
        &self,
        sessions: &Sessions,
        account: &AccountId,
        actor: &Actor,
    ) -> Result<LockChange, AccountError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        match lock_state(&mut tx, account).await? {
            None => return Err(AccountError::NotFound),
            Some(false) => return Ok(LockChange::Unchanged),
            Some(true) => {}
        }
        sessions.end_begun_before(account, now).await?;
        let done = sqlx::query(
            "UPDATE accounts SET locked_at = NULL WHERE account_id = $1 AND locked_at IS NOT NULL",
        )
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(LockChange::Unchanged);
        }
        let event = Event::by(Kind::AccountUnlocked, actor.clone()).account(account);
        audit::record_all(
            &mut tx,
            &audit::with_admin_action(event, "account.unlock"),
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!("account unlocked");
        Ok(LockChange::Changed { grants_revoked: 0 })
    }
}
