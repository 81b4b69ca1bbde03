//! Roles of citizen accounts on Civitas itself, and the clients an account
//! owns (agency staff).
//!
//! `admin` lets an account open the operator's dashboard (`/admin`). An
//! owner of a client sees that client's figures there, and only those.
//! Both are granted by the operator (admin API or command line), each
//! change with its audit entry in the same transaction.

use sqlx::Row as _;

use super::AccountId;
use crate::audit::{self, Event};
use crate::clock::UnixTime;
use crate::store::{Database, StoreError};

/// A role an account can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The operator's dashboard, every client's figures.
    Admin,
}

impl Role {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
        }
    }

    /// The role named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        (s == "admin").then_some(Self::Admin)
    }
}

/// What a grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    /// It was added, and its audit entry recorded.
    Added,
    /// It was already there: nothing changed, nothing was recorded.
    Unchanged,
    /// The account (or the client) does not exist.
    Missing,
}

/// Does `account` hold `role`?
///
/// # Errors
/// If the database fails.
pub async fn has_role(db: &Database, account: &AccountId, role: Role) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 AS ok FROM account_roles WHERE account_id = $1 AND role = $2")
            .bind(account.as_str())
            .bind(role.as_str())
            .fetch_optional(db.pool())
            .await?
            .is_some(),
    )
}

/// Grants `role` to `account`; records `event` if it changed anything.
///
/// # Errors
/// If the database fails; nothing changes then.
pub async fn grant_role(
    db: &Database,
    account: &AccountId,
    role: Role,
    event: &Event,
    now: UnixTime,
) -> Result<Granted, StoreError> {
    let mut tx = db.begin().await?;
    let exists = sqlx::query("SELECT 1 AS ok FROM accounts WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if !exists {
        return Ok(Granted::Missing);
    }
    let added = sqlx::query(
        "INSERT INTO account_roles (account_id, role, granted_at) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, role) DO NOTHING",
    )
    .bind(account.as_str())
    .bind(role.as_str())
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    if added.rows_affected() == 0 {
        return Ok(Granted::Unchanged);
    }
    audit::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(Granted::Added)
}

/// Takes `role` from `account`; records `event` if it held it. `true` if
/// it did.
///
/// # Errors
/// If the database fails; nothing changes then.
pub async fn revoke_role(
    db: &Database,
    account: &AccountId,
    role: Role,
    event: &Event,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM account_roles WHERE account_id = $1 AND role = $2")
        .bind(account.as_str())
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// The clients `account` owns.
///
/// # Errors
/// If the database fails.
pub async fn owned_clients(db: &Database, account: &AccountId) -> Result<Vec<String>, StoreError> {
    let rows =
        sqlx::query("SELECT client_id FROM client_owners WHERE account_id = $1 ORDER BY client_id")
            .bind(account.as_str())
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("client_id")?))
        .collect()
}

/// The accounts that own `client_id`.
///
/// # Errors
/// If the database fails.
pub async fn owners_of(db: &Database, client_id: &str) -> Result<Vec<AccountId>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id FROM client_owners WHERE client_id = $1 ORDER BY account_id",
    )
    .bind(client_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok(AccountId::new(r.try_get::<String, _>("account_id")?)))
        .collect()
}

/// Makes `account` an owner of `client_id`; records `event` if it changed
/// anything.
///
/// # Errors
/// If the database fails; nothing changes then.
pub async fn add_owner(
    db: &Database,
    client_id: &str,
    account: &AccountId,
    event: &Event,
    now: UnixTime,
) -> Result<Granted, StoreError> {
    let mut tx = db.begin().await?;
    let both = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM accounts WHERE account_id = $1) AS a, \
         (SELECT COUNT(*) FROM clients WHERE client_id = $2) AS c",
    )
    .bind(account.as_str())
    .bind(client_id)
    .fetch_one(&mut *tx)
    .await?;
    if both.try_get::<i64, _>("a")? == 0 || both.try_get::<i64, _>("c")? == 0 {
        return Ok(Granted::Missing);
    }
    let added = sqlx::query(
        "INSERT INTO client_owners (client_id, account_id, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, account_id) DO NOTHING",
    )
    .bind(client_id)
    .bind(account.as_str())
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    if added.rows_affected() == 0 {
        return Ok(Granted::Unchanged);
    }
    audit::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(Granted::Added)
}

/// Removes `account` from the owners of `client_id`; records `event` if it
/// was one. `true` if it was.
///
/// # Errors
/// If the database fails; nothing changes then.
pub async fn remove_owner(
    db: &Database,
    client_id: &str,
    account: &AccountId,
    event: &Event,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM client_owners WHERE client_id = $1 AND account_id = $2")
        .bind(client_id)
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(true)
}
