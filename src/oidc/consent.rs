//! Consent: what a citizen agreed to share with a client, remembered per
//! client and widened only by new consent; revocable from the account page.

use sqlx::Row as _;

use super::params::Scope;
use crate::accounts::AccountId;
use crate::audit::{self, Event, Kind};
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
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO consents (account_id, client_id, scope, claims, granted_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (account_id, client_id) DO UPDATE SET scope = $3, claims = $4, granted_at = $5",
    )
    .bind(account.as_str())
    .bind(client_id)
    .bind(scope.to_string())
    .bind(all.join(" "))
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    let event = Event::citizen(Kind::ConsentGiven, account)
        .client(client_id)
        .with("scope", scope.to_string())
        .with("claims", all.join(" "));
    audit::record(&mut tx, &event, now).await?;
    tx.commit().await?;
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
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM consents WHERE account_id = $1 AND client_id = $2")
        .bind(account.as_str())
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let revoked = sqlx::query(
        "UPDATE grants SET revoked_at = $3 WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL",
    )
    .bind(account.as_str())
    .bind(client_id)
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    let event = Event::citizen(Kind::ConsentRevoked, account)
        .client(client_id)
        .with("grants_revoked", revoked.rows_affected());
    audit::record(&mut tx, &event, now).await?;
    tx.commit().await?;
    Ok(true)
}
