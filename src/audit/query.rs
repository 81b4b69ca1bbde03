//! Reading the log: a citizen's history, export as JSON Lines.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::clock::UnixTime;
use crate::store::{Database, StoreError};

/// One entry, as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Position in the chain; `None` until sealed.
    pub seq: Option<i64>,
    /// Unix seconds.
    pub occurred_at: i64,
    /// The kind's name.
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// The citizen, by internal id.
    pub account_id: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// The facts recorded.
    pub detail: Value,
    /// The previous entry's hash (once sealed).
    pub prev_hash: Option<String>,
    /// This entry's hash (once sealed).
    pub hash: Option<String>,
}

impl Entry {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<Self, StoreError> {
        let detail: String = r.try_get("detail")?;
        Ok(Self {
            seq: r.try_get("seq")?,
            occurred_at: r.try_get("occurred_at")?,
            kind: r.try_get("kind")?,
            actor: r.try_get("actor")?,
            account_id: r.try_get("account_id")?,
            client_id: r.try_get("client_id")?,
            detail: serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }

    /// A string fact of the detail.
    #[must_use]
    pub fn fact(&self, key: &str) -> Option<&str> {
        self.detail.get(key).and_then(Value::as_str)
    }
}

const COLUMNS: &str =
    "seq, event_id, occurred_at, kind, actor, account_id, client_id, detail, prev_hash, hash";

/// The newest `limit` entries about `account`, newest first (those not yet
/// sealed first of all).
///
/// # Errors
/// If the database fails.
pub async fn for_account(
    db: &Database,
    account: &AccountId,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log WHERE account_id = $1 \
         ORDER BY seq DESC NULLS FIRST, event_id DESC LIMIT $2"
    ));
    let rows = sqlx::query(sql)
        .bind(account.as_str())
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(Entry::from_row).collect()
}

/// The newest `limit` entries about `account` before `before` (a sequence
/// number; `i64::MAX` for the first page, which also holds the entries not
/// yet sealed), newest first: a page of the citizen's history.
///
/// # Errors
/// If the database fails.
pub async fn for_account_before(
    db: &Database,
    account: &AccountId,
    before: i64,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log WHERE account_id = $1 AND (seq < $2 OR (seq IS NULL AND $2 = $4)) \
         ORDER BY seq DESC NULLS FIRST, event_id DESC LIMIT $3"
    ));
    let rows = sqlx::query(sql)
        .bind(account.as_str())
        .bind(before)
        .bind(limit)
        .bind(i64::MAX)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(Entry::from_row).collect()
}

/// Every sealed entry with `seq > after`, oldest first, at most `limit`: a
/// page of an export.
///
/// # Errors
/// If the database fails.
pub async fn page(db: &Database, after: i64, limit: i64) -> Result<Vec<Entry>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
    ));
    let rows = sqlx::query(sql)
        .bind(after)
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(Entry::from_row).collect()
}

/// Writes every sealed entry from `since` (Unix seconds) on as JSON Lines,
/// oldest first, one object per line; returns how many.
///
/// # Errors
/// If the database or the writer fails.
pub async fn export_jsonl<W: std::io::Write>(
    db: &Database,
    since: Option<UnixTime>,
    out: &mut W,
) -> Result<u64, ExportError> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let entries = page(db, after, 1000).await?;
        let Some(last) = entries.last().and_then(|e| e.seq) else {
            return Ok(n);
        };
        after = last;
        for e in &entries {
            if since.is_some_and(|t| e.occurred_at < t.0) {
                continue;
            }
            serde_json::to_writer(&mut *out, e).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
}
