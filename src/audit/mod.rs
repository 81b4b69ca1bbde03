//! The audit log: what happened to an account, when. Entries name the
//! account and the kind of event; details never carry a secret, a token or a
//! national identifier.

use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::clock::UnixTime;
use crate::secrets::random_token;
use crate::store::{Database, StoreError};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened (`passkey.added`, `recovery_code.used`, …).
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
    /// When.
    pub at: UnixTime,
}

/// Records an event.
///
/// # Errors
/// If the database fails.
pub async fn record(
    db: &Database,
    account: Option<&AccountId>,
    kind: &str,
    detail: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_events (event_id, account_id, kind, detail, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(random_token(16))
        .bind(account.map(|a| a.as_str().to_owned()))
        .bind(kind)
        .bind(detail)
        .bind(now.0)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The events of an account, newest first.
///
/// # Errors
/// If the database fails.
pub async fn for_account(
    db: &Database,
    account: &AccountId,
    limit: i64,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT kind, detail, created_at FROM audit_events WHERE account_id = $1 ORDER BY created_at DESC, event_id LIMIT $2",
    )
    .bind(account.as_str())
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEvent {
                kind: r.try_get("kind")?,
                detail: r.try_get("detail")?,
                at: UnixTime(r.try_get("created_at")?),
            })
        })
        .collect()
}
