//! An operator's summary of an account: what a service desk needs to
//! recognise it and decide (lock, erase), without the eID identity itself.

use sqlx::Row as _;

use super::{AccountId, Accounts, roles};
use crate::clock::UnixTime;
use crate::store::{StoreError, flag};

/// An account at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Internal id.
    pub id: AccountId,
    /// Display name.
    pub display_name: String,
    /// Contact address.
    pub email: Option<String>,
    /// Proven?
    pub email_verified: bool,
    /// Created.
    pub created_at: UnixTime,
    /// Locked since, if locked.
    pub locked_at: Option<UnixTime>,
    /// Number of passkeys.
    pub passkeys: i64,
    /// Unused recovery codes.
    pub recovery_codes: i64,
    /// The eID proofing level (`low`, `substantial`, `high`), if bound.
    pub eid_level: Option<String>,
    /// Grants not revoked and not expired.
    pub active_grants: i64,
    /// Roles on Civitas.
    pub roles: Vec<String>,
    /// Clients it owns.
    pub owned_clients: Vec<String>,
}

impl Accounts {
    /// The summary of `account`, if it exists.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn summary(&self, account: &AccountId) -> Result<Option<Summary>, StoreError> {
        let row = sqlx::query(
            "SELECT a.display_name, a.email, a.email_verified, a.created_at, a.locked_at, \
             (SELECT COUNT(*) FROM passkeys p WHERE p.account_id = a.account_id) AS passkeys, \
             (SELECT COUNT(*) FROM recovery_codes r WHERE r.account_id = a.account_id AND r.used_at IS NULL) AS codes, \
             (SELECT COUNT(*) FROM grants g WHERE g.account_id = a.account_id AND g.revoked_at IS NULL AND g.expires_at > $2) AS grants, \
             (SELECT b.level FROM eid_bindings b WHERE b.account_id = a.account_id) AS eid_level \
             FROM accounts a WHERE a.account_id = $1",
        )
        .bind(account.as_str())
        .bind(self.clock.now().0)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let roles: Vec<String> =
            sqlx::query("SELECT role FROM account_roles WHERE account_id = $1 ORDER BY role")
                .bind(account.as_str())
                .fetch_all(self.db.pool())
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("role"))
                .collect::<Result<_, _>>()?;
        Ok(Some(Summary {
            id: account.clone(),
            display_name: r.try_get("display_name")?,
            email: r.try_get("email")?,
            email_verified: flag(r.try_get("email_verified")?),
            created_at: UnixTime(r.try_get("created_at")?),
            locked_at: r.try_get::<Option<i64>, _>("locked_at")?.map(UnixTime),
            passkeys: r.try_get("passkeys")?,
            recovery_codes: r.try_get("codes")?,
            eid_level: r
                .try_get::<Option<String>, _>("eid_level")?
                .and_then(|l| crate::assurance::Level::parse(&l))
                .map(|l| l.alias().to_owned()),
            active_grants: r.try_get("grants")?,
            roles,
            owned_clients: roles::owned_clients(&self.db, account).await?,
        }))
    }
}
