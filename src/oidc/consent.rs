//! Consent: what a citizen agreed to share with a client, remembered per
//! client and widened only by new consent; revocable from the account page.

use sqlx::Row as _;

use super::params::Scope;
use crate::accounts::AccountId;
use crate::clock::UnixTime;
use crate::store::{Database, StoreError};

/// A remembered consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The client.
    pub client_id: String,
    /// The scopes agreed to.
    pub scope: Scope,
    /// Individual claims agreed to (from the claims parameter).
    pub claims: Vec<String>,
    /// When it was last given.
    pub granted_at: UnixTime,
}

impl Consent {
    /// Does this consent cover `scope` and `claims`?
    #[must_use]
    pub fn covers(&self, scope: &Scope, claims: &[String]) -> bool {
        scope.is_subset(&self.scope) && claims.iter().all(|c| self.claims.contains(c))
    }
}

/// The consent given by `account` to `client`, if any.
///
/// # Errors
/// If the database fails.
pub async fn get(
    db: &Database,
    account: &AccountId,
    client_id: &str,
) -> Result<Option<Consent>, StoreError> {
    let row = sqlx::query("SELECT client_id, scope, claims, granted_at FROM consents WHERE account_id = $1 AND client_id = $2")
        .bind(account.as_str())
        .bind(client_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Consent, StoreError> {
    let scope: String = r.try_get("scope")?;
    let claims: String = r.try_get("claims")?;
    Ok(Consent {
        client_id: r.try_get("client_id")?,
        scope: Scope::parse(&scope).map_err(StoreError::Corrupt)?,
        claims: claims
            .split(' ')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        granted_at: UnixTime(r.try_get("granted_at")?),
    })
}

/// Records consent to `scope` and `claims`, adding to what was given before.
///
/// # Errors
/// If the database fails.
pub async fn grant(
    db: &Database,
    account: &AccountId,
    client_id: &str,
    scope: &Scope,
    claims: &[String],
    now: UnixTime,
) -> Result<(), StoreError> {
    let (scope, mut all) = match get(db, account, client_id).await? {
        Some(c) => (c.scope.union(scope), c.claims),
        None => (scope.clone(), Vec::new()),
    };
    for c in claims {
        if !all.contains(c) {
            all.push(c.clone());
        }
    }
    sqlx::query(
        "INSERT INTO consents (account_id, client_id, scope, claims, granted_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (account_id, client_id) DO UPDATE SET scope = $3, claims = $4, granted_at = $5",
    )
    .bind(account.as_str())
    .bind(client_id)
    .bind(scope.to_string())
    .bind(all.join(" "))
    .bind(now.0)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Every consent `account` has given, newest first.
///
/// # Errors
/// If the database fails.
pub async fn list(db: &Database, account: &AccountId) -> Result<Vec<Consent>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, scope, claims, granted_at FROM consents WHERE account_id = $1 ORDER BY granted_at DESC",
    )
    .bind(account.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Withdraws the consent `account` gave `client` and revokes every grant
/// (refresh and access tokens) made under it; `true` if there was one.
///
/// # Errors
/// If the database fails.
pub async fn withdraw(
    db: &Database,
    account: &AccountId,
    client_id: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let had = revoke(db, account, client_id).await?;
    if had {
        super::grants::revoke_for_client(db, account, client_id, now).await?;
        crate::audit::record(
            db,
            Some(account),
            "consent.revoked",
            &format!("stopped sharing with {client_id}"),
            now,
        )
        .await?;
    }
    Ok(had)
}

/// Withdraws the consent `account` gave `client`; `true` if there was one.
/// The next authorization request of that client asks again.
///
/// # Errors
/// If the database fails.
pub async fn revoke(
    db: &Database,
    account: &AccountId,
    client_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM consents WHERE account_id = $1 AND client_id = $2")
        .bind(account.as_str())
        .bind(client_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
