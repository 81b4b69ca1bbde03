//! Grants and refresh tokens, durable.
//!
//! A grant is what one authorization-code redemption authorises; every
//! access and refresh token issued from it names it, so revoking the grant
//! (code reuse, refresh-token reuse, revocation, logout) revokes them all.
//! Refresh tokens are stored as hashes and rotated at every use: the old one
//! is marked used and its successor inserted in one transaction; presenting a
//! used one again is reuse, and revokes the grant (RFC 9700 §4.14.2).

use sqlx::Row as _;

use super::params::{ClaimsRequest, Scope};
use crate::accounts::AccountId;
use crate::clock::UnixTime;
use crate::secrets::SecretHash;
use crate::store::{Database, StoreError, flag};

/// An authorization grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id (random).
    pub grant_id: String,
    /// The client it was granted to.
    pub client_id: String,
    /// The citizen who granted it.
    pub account_id: AccountId,
    /// The browser session it came from.
    pub sid: Option<String>,
    /// Granted scopes.
    pub scope: Scope,
    /// Requested individual claims.
    pub claims: ClaimsRequest,
    /// When the citizen authenticated.
    pub auth_time: UnixTime,
    /// Level of assurance of that authentication.
    pub acr: String,
    /// Methods of that authentication.
    pub amr: Vec<String>,
    /// Outlives the session (`offline_access`).
    pub offline: bool,
    /// When it was granted.
    pub created_at: UnixTime,
    /// Absolute end of the grant (and of its refresh tokens).
    pub expires_at: UnixTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
    /// The organization it acts for, if the citizen chose one.
    pub representation: Option<super::representation::Representation>,
}

impl Grant {
    /// Is the grant usable at `now`?
    #[must_use]
    pub fn is_active(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

const COLUMNS: &str = "grant_id, client_id, account_id, sid, scope, claims, auth_time, acr, amr, offline, \
                       created_at, expires_at, revoked_at, representation";

/// Stores a new grant, recording the hash of the code it came from, and
/// the audit entries `events` (what was released), in one transaction;
/// `false` (nothing stored) unless the account exists and is not locked,
/// so that a code issued just before a lock or an erasure yields no grant
/// (an erased account's id never comes back in `grants`). The account is
/// checked in the insert itself: no extra round trip.
///
/// # Errors
/// If the database fails (including a second grant for the same code);
/// nothing is stored then.
pub async fn insert(
    db: &Database,
    g: &Grant,
    code_hash: Option<&SecretHash>,
    events: &[crate::audit::Event],
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO grants (grant_id, code_hash, client_id, account_id, sid, scope, claims, auth_time, acr, amr, \
         offline, created_at, expires_at, representation) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
         WHERE EXISTS (SELECT 1 FROM accounts WHERE account_id = $4 AND locked_at IS NULL)",
    )
    .bind(&g.grant_id)
    .bind(code_hash.map(|h| h.as_str().to_owned()))
    .bind(&g.client_id)
    .bind(g.account_id.as_str())
    .bind(g.sid.clone())
    .bind(g.scope.to_string())
    .bind(serde_json::to_string(&g.claims).unwrap_or_default())
    .bind(g.auth_time.0)
    .bind(&g.acr)
    .bind(g.amr.join(" "))
    .bind(i64::from(g.offline))
    .bind(g.created_at.0)
    .bind(g.expires_at.0)
    .bind(g.representation.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    crate::audit::record_all(&mut tx, events, g.created_at).await?;
    tx.commit().await?;
    Ok(true)
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Grant, StoreError> {
    let scope: String = r.try_get("scope")?;
    let claims: String = r.try_get("claims")?;
    let amr: String = r.try_get("amr")?;
    Ok(Grant {
        grant_id: r.try_get("grant_id")?,
        client_id: r.try_get("client_id")?,
        account_id: AccountId::new(r.try_get::<String, _>("account_id")?),
        sid: r.try_get("sid")?,
        scope: Scope::parse(&scope).map_err(StoreError::Corrupt)?,
        claims: serde_json::from_str(&claims).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        auth_time: UnixTime(r.try_get("auth_time")?),
        acr: r.try_get("acr")?,
        amr: amr
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        offline: flag(r.try_get("offline")?),
        created_at: UnixTime(r.try_get("created_at")?),
        expires_at: UnixTime(r.try_get("expires_at")?),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(UnixTime),
        representation: r
            .try_get::<Option<String>, _>("representation")?
            .map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?,
    })
}

/// The grant with this id.
///
/// # Errors
/// If the database fails.
pub async fn get(db: &Database, grant_id: &str) -> Result<Option<Grant>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM grants WHERE grant_id = $1"));
    let row = sqlx::query(sql)
        .bind(grant_id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// The grant made from the code with this hash (to detect code reuse).
///
/// # Errors
/// If the database fails.
pub async fn by_code(db: &Database, code_hash: &SecretHash) -> Result<Option<Grant>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM grants WHERE code_hash = $1"));
    let row = sqlx::query(sql)
        .bind(code_hash.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Revokes a grant and with it every token issued from it.
///
/// # Errors
/// If the database fails.
pub async fn revoke(db: &Database, grant_id: &str, now: UnixTime) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE grants SET revoked_at = $2 WHERE grant_id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(now.0)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Revokes the grants of a session that do not outlive it (not `offline_access`).
///
/// # Errors
/// If the database fails.
pub async fn revoke_session(db: &Database, sid: &str, now: UnixTime) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE grants SET revoked_at = $2 WHERE sid = $1 AND offline = 0 AND revoked_at IS NULL",
    )
    .bind(sid)
    .bind(now.0)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// No such token.
    Unknown,
    /// Used before: reuse. The grant it belongs to.
    Reused(String),
    /// Past its idle lifetime.
    Expired,
    /// Valid, now marked used; its successor was stored. The grant.
    Rotated(Box<Grant>),
}

/// Stores a refresh token of `grant_id`.
///
/// # Errors
/// If the database fails.
pub async fn insert_refresh(
    db: &Database,
    hash: &SecretHash,
    grant_id: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    let _turn = db.write_turn().await?;
    sqlx::query("INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash.as_str())
        .bind(grant_id)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Uses the refresh token `presented`: if valid, marks it used and stores
/// `successor` (expiring at `successor_expires`, capped by the grant) in the
/// same transaction. Two concurrent uses of one token: exactly one rotates,
/// the other is reuse.
///
/// # Errors
/// If the database fails; nothing is changed then.
pub async fn rotate_refresh(
    db: &Database,
    client_id: &str,
    presented: &SecretHash,
    successor: &SecretHash,
    now: UnixTime,
    idle_secs: u64,
) -> Result<RefreshUse, StoreError> {
    let mut tx = db.begin().await?;
    let row = sqlx::query(
        "SELECT grant_id, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(presented.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(RefreshUse::Unknown);
    };
    let grant_id: String = row.try_get("grant_id")?;
    let owner = sqlx::query("SELECT client_id FROM grants WHERE grant_id = $1")
        .bind(&grant_id)
        .fetch_optional(&mut *tx)
        .await?;
    if owner
        .map(|r| r.try_get::<String, _>("client_id"))
        .transpose()?
        .as_deref()
        != Some(client_id)
    {
        return Ok(RefreshUse::Unknown);
    }
    if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
        return Ok(RefreshUse::Reused(grant_id));
    }
    if UnixTime(row.try_get("expires_at")?) <= now {
        return Ok(RefreshUse::Expired);
    }
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM grants WHERE grant_id = $1"));
    let Some(grant) = sqlx::query(sql)
        .bind(&grant_id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(RefreshUse::Unknown);
    };
    let grant = from_row(&grant)?;
    if grant.client_id != client_id {
        // Another client's token: not even its existence is revealed.
        return Ok(RefreshUse::Unknown);
    }
    if !grant.is_active(now) {
        return Ok(RefreshUse::Expired);
    }
    let marked = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(presented.as_str())
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() != 1 {
        // Another request used it between our read and our write.
        return Ok(RefreshUse::Reused(grant_id));
    }
    let expires = now.plus(idle_secs).min(grant.expires_at);
    sqlx::query("INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(successor.as_str())
        .bind(&grant_id)
        .bind(now.0)
        .bind(expires.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(RefreshUse::Rotated(Box::new(grant)))
}

/// The grant a refresh token belongs to, without using it (introspection,
/// revocation); `None` if unknown.
///
/// # Errors
/// If the database fails.
pub async fn refresh_grant(
    db: &Database,
    hash: &SecretHash,
) -> Result<Option<(Grant, bool, UnixTime)>, StoreError> {
    let row = sqlx::query(
        "SELECT grant_id, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(hash.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let grant_id: String = row.try_get("grant_id")?;
    let used = row.try_get::<Option<i64>, _>("used_at")?.is_some();
    let expires = UnixTime(row.try_get("expires_at")?);
    Ok(get(db, &grant_id).await?.map(|g| (g, used, expires)))
}

/// Records that `client_id` received tokens in session `sid` (for logout).
///
/// # Errors
/// If the database fails.
pub async fn record_session_client(
    db: &Database,
    sid: &str,
    client_id: &str,
    account: &AccountId,
    now: UnixTime,
) -> Result<(), StoreError> {
    let _turn = db.write_turn().await?;
    sqlx::query(
        "INSERT INTO session_clients (sid, client_id, account_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sid, client_id) DO NOTHING",
    )
    .bind(sid)
    .bind(client_id)
    .bind(account.as_str())
    .bind(now.0)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The clients that received tokens in session `sid`, removing the record.
///
/// # Errors
/// If the database fails.
pub async fn take_session_clients(db: &Database, sid: &str) -> Result<Vec<String>, StoreError> {
    let mut tx = db.begin().await?;
    let rows =
        sqlx::query("SELECT client_id FROM session_clients WHERE sid = $1 ORDER BY created_at")
            .bind(sid)
            .fetch_all(&mut *tx)
            .await?;
    sqlx::query("DELETE FROM session_clients WHERE sid = $1")
        .bind(sid)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("client_id")?))
        .collect()
}
