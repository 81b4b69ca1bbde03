//! Passkey SQL, one text for SQLite and PostgreSQL.

use sqlx::Row as _;
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, RegisterPublicKeyCredential};

use super::{PasskeyError, aaguid, base64_url, clean_name};
use crate::accounts::{Account, AccountId};
use crate::assurance::Level;
use crate::audit::{self, Event, Kind};
use crate::clock::UnixTime;
use crate::store::{Database, StoreError, flag};

/// A passkey as the account page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    /// Credential id (base64url).
    pub credential_id: String,
    /// The citizen's name for it.
    pub name: String,
    /// Synced across devices (backup eligible)?
    pub synced: bool,
    /// Backed up right now?
    pub backed_up: bool,
    /// Signature counter as last seen.
    pub sign_count: i64,
    /// Authenticator model, if it said.
    pub aaguid: Option<String>,
    /// Transports the authenticator reported.
    pub transports: String,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When it was last used to sign in.
    pub last_used_at: Option<UnixTime>,
    /// The highest level it may sign in at (the level of the context that
    /// enrolled it, or of the last eID proof made with it).
    pub max_level: Level,
}

/// A verified new passkey, ready to store.
pub(super) struct NewPasskey {
    pub(super) credential_id: String,
    pub(super) name: String,
    json: String,
    pub(super) backup_eligible: bool,
    backup_state: bool,
    sign_count: i64,
    aaguid: Option<String>,
    transports: String,
    attestation_format: String,
    created_at: UnixTime,
    pub(super) max_level: Level,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("passkey: {e}"))
}

impl NewPasskey {
    pub(super) fn from_registration(
        passkey: &Passkey,
        response: &RegisterPublicKeyCredential,
        name: Option<&str>,
        now: UnixTime,
        max_level: Level,
    ) -> Result<Self, PasskeyError> {
        let value = serde_json::to_value(passkey).map_err(corrupt)?;
        let cred = &value["cred"];
        let transports = response
            .response
            .transports
            .as_ref()
            .map(|t| {
                t.iter()
                    .map(|t| format!("{t:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        Ok(Self {
            credential_id: base64_url(passkey.cred_id()),
            name: clean_name(name),
            json: value.to_string(),
            backup_eligible: cred["backup_eligible"].as_bool().unwrap_or(true),
            backup_state: cred["backup_state"].as_bool().unwrap_or(false),
            sign_count: cred["counter"].as_i64().unwrap_or(0),
            aaguid: aaguid(&response.response.attestation_object),
            transports,
            attestation_format: cred["attestation_format"]
                .as_str()
                .unwrap_or("none")
                .to_owned(),
            created_at: now,
            max_level,
        })
    }
}

async fn insert(
    conn: &mut sqlx::AnyConnection,
    account: &AccountId,
    p: &NewPasskey,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO passkeys (credential_id, account_id, name, passkey, backup_eligible, backup_state, sign_count, \
         aaguid, transports, attestation_format, created_at, max_level) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&p.credential_id)
    .bind(account.as_str())
    .bind(&p.name)
    .bind(&p.json)
    .bind(i64::from(p.backup_eligible))
    .bind(i64::from(p.backup_state))
    .bind(p.sign_count)
    .bind(p.aaguid.clone())
    .bind(&p.transports)
    .bind(&p.attestation_format)
    .bind(p.created_at.0)
    .bind(p.max_level.alias())
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates the account and its first passkey together, or neither.
pub(super) async fn create_account_with_passkey(
    db: &Database,
    account: &Account,
    user_handle: Uuid,
    passkey: &NewPasskey,
    events: &[Event],
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO accounts (account_id, display_name, email, email_verified, created_at, user_handle) \
         VALUES ($1, $2, $3, 0, $4, $5)",
    )
    .bind(account.id.as_str())
    .bind(&account.display_name)
    .bind(account.email.clone())
    .bind(account.created_at.0)
    .bind(user_handle.to_string())
    .execute(&mut *tx)
    .await?;
    insert(&mut tx, &account.id, passkey).await?;
    audit::record_all(&mut tx, events, account.created_at).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds a passkey to an existing account.
pub(super) async fn add_passkey(
    db: &Database,
    account: &AccountId,
    passkey: &NewPasskey,
    event: &Event,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    insert(&mut tx, account, passkey).await?;
    audit::record(&mut tx, event, passkey.created_at).await?;
    tx.commit().await?;
    Ok(())
}

/// The account's WebAuthn user handle (created on first need) and the account.
pub(super) async fn user_handle(
    db: &Database,
    account: &AccountId,
) -> Result<Option<(Uuid, Account)>, StoreError> {
    let row = sqlx::query(
        "SELECT account_id, display_name, email, email_verified, created_at, user_handle FROM accounts WHERE account_id = $1",
    )
    .bind(account.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let acc = Account {
        id: AccountId::new(r.try_get::<String, _>("account_id")?),
        display_name: r.try_get("display_name")?,
        email: r.try_get("email")?,
        email_verified: flag(r.try_get("email_verified")?),
        created_at: UnixTime(r.try_get("created_at")?),
    };
    let handle = match r.try_get::<Option<String>, _>("user_handle")? {
        Some(h) => Uuid::parse_str(&h).map_err(corrupt)?,
        None => {
            let h = Uuid::new_v4();
            sqlx::query("UPDATE accounts SET user_handle = $2 WHERE account_id = $1 AND user_handle IS NULL")
                .bind(account.as_str())
                .bind(h.to_string())
                .execute(db.pool())
                .await?;
            return Box::pin(user_handle(db, account)).await;
        }
    };
    Ok(Some((handle, acc)))
}

/// The credential ids of an account (to exclude at registration).
pub(super) async fn credential_ids(
    db: &Database,
    account: &AccountId,
) -> Result<Vec<webauthn_rs::prelude::CredentialID>, StoreError> {
    let rows = sqlx::query("SELECT passkey FROM passkeys WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            let json: String = r.try_get("passkey")?;
            let p: Passkey = serde_json::from_str(&json).map_err(corrupt)?;
            Ok(p.cred_id().clone())
        })
        .collect()
}

/// A credential found for a sign-in.
pub(super) struct Found {
    pub(super) account_id: AccountId,
    pub(super) passkey: Passkey,
    pub(super) device_bound: bool,
    pub(super) locked: bool,
    pub(super) max_level: Level,
}

fn level_of(r: &sqlx::any::AnyRow) -> Result<Level, StoreError> {
    let level: String = r.try_get("max_level")?;
    Level::parse(&level).ok_or_else(|| corrupt("max_level"))
}

/// The passkey with this id, if it belongs to the account with this user handle.
pub(super) async fn find_passkey(
    db: &Database,
    credential_id: &str,
    user_handle: Uuid,
) -> Result<Option<Found>, StoreError> {
    let row = sqlx::query(
        "SELECT p.account_id, p.passkey, p.backup_eligible, p.max_level, a.locked_at FROM passkeys p \
         JOIN accounts a ON a.account_id = p.account_id WHERE p.credential_id = $1 AND a.user_handle = $2",
    )
    .bind(credential_id)
    .bind(user_handle.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let json: String = r.try_get("passkey")?;
    let passkey: Passkey = serde_json::from_str(&json).map_err(corrupt)?;
    Ok(Some(Found {
        account_id: AccountId::new(r.try_get::<String, _>("account_id")?),
        passkey,
        device_bound: !flag(r.try_get("backup_eligible")?),
        locked: r.try_get::<Option<i64>, _>("locked_at")?.is_some(),
        max_level: level_of(&r)?,
    }))
}

/// Raises the ceiling of the account's passkey `credential_id` to `level`
/// (never lowers it); whether it changed.
pub(super) async fn raise_level(
    db: &Database,
    account: &AccountId,
    credential_id: &str,
    level: Level,
) -> Result<bool, StoreError> {
    let below: &[&str] = match level {
        Level::Low => return Ok(false),
        Level::Substantial => &["low"],
        Level::High => &["low", "substantial"],
    };
    let sql = if below.len() == 1 {
        "UPDATE passkeys SET max_level = $3 WHERE account_id = $1 AND credential_id = $2 AND max_level = $4"
    } else {
        "UPDATE passkeys SET max_level = $3 WHERE account_id = $1 AND credential_id = $2 AND max_level IN ($4, $5)"
    };
    let mut query = sqlx::query(sql)
        .bind(account.as_str())
        .bind(credential_id)
        .bind(level.alias());
    for b in below {
        query = query.bind(*b);
    }
    Ok(query.execute(db.pool()).await?.rows_affected() == 1)
}

/// Records a sign-in: the updated counter and flags, the time, and the
/// audit entry `event`, if the stored counter is still below the new one
/// (or both are 0: an authenticator without a counter, as many synced
/// passkeys are). Checked in the update itself, so of two sign-ins
/// verified against the same stored counter (two copies of one
/// authenticator) only the first is recorded.
///
/// # Errors
/// [`PasskeyError::Rejected`] if the counter did not increase over the one
/// stored meanwhile (a possibly cloned authenticator; nothing is recorded
/// then), or a store failure.
pub(super) async fn record_use(
    db: &Database,
    credential_id: &str,
    passkey: &Passkey,
    backup_state: bool,
    now: UnixTime,
    event: &Event,
) -> Result<(), PasskeyError> {
    let value = serde_json::to_value(passkey).map_err(corrupt)?;
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    let done = sqlx::query(
        "UPDATE passkeys SET passkey = $2, sign_count = $3, backup_state = $4, last_used_at = $5 \
         WHERE credential_id = $1 AND (sign_count < $3 OR (sign_count = 0 AND $3 = 0))",
    )
    .bind(credential_id)
    .bind(value.to_string())
    .bind(value["cred"]["counter"].as_i64().unwrap_or(0))
    .bind(i64::from(backup_state))
    .bind(now.0)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    if done.rows_affected() != 1 {
        return Err(PasskeyError::Rejected(
            "the signature counter did not increase; the authenticator may be cloned".into(),
        ));
    }
    audit::record(&mut tx, event, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

pub(super) async fn list(
    db: &Database,
    account: &AccountId,
) -> Result<Vec<PasskeyInfo>, StoreError> {
    let rows = sqlx::query(
        "SELECT credential_id, name, backup_eligible, backup_state, sign_count, aaguid, transports, created_at, \
         last_used_at, max_level FROM passkeys WHERE account_id = $1 ORDER BY created_at, credential_id",
    )
    .bind(account.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PasskeyInfo {
                credential_id: r.try_get("credential_id")?,
                name: r.try_get("name")?,
                synced: flag(r.try_get("backup_eligible")?),
                backed_up: flag(r.try_get("backup_state")?),
                sign_count: r.try_get("sign_count")?,
                aaguid: r.try_get("aaguid")?,
                transports: r.try_get("transports")?,
                created_at: UnixTime(r.try_get("created_at")?),
                last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(UnixTime),
                max_level: level_of(r)?,
            })
        })
        .collect()
}

pub(super) async fn rename(
    db: &Database,
    account: &AccountId,
    credential_id: &str,
    name: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE passkeys SET name = $3 WHERE account_id = $1 AND credential_id = $2")
            .bind(account.as_str())
            .bind(credential_id)
            .bind(name)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The highest level a sign-in with one of `account`'s passkeys would reach
/// now, given its identity proofing (`Level::with_passkey` of the best one).
///
/// # Errors
/// If the database fails.
pub async fn best_reach(
    db: &Database,
    account: &AccountId,
    proofing: Option<Level>,
) -> Result<Level, StoreError> {
    let rows = sqlx::query("SELECT backup_eligible, max_level FROM passkeys WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_all(db.pool())
        .await?;
    let mut best = Level::Low;
    for r in &rows {
        let device_bound = !flag(r.try_get("backup_eligible")?);
        best = best.max(Level::with_passkey(proofing, device_bound, level_of(r)?));
    }
    Ok(best)
}

/// The number of passkeys of an account.
///
/// # Errors
/// If the database fails.
pub async fn passkey_count(db: &Database, account: &AccountId) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM passkeys WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("n")?)
}

/// Removes a passkey, in a transaction that refuses to remove the last one
/// while the account has no unused recovery code. The transaction first
/// takes the account row's lock (a no-op update: a row lock on PostgreSQL;
/// SQLite's `BEGIN IMMEDIATE` already serialises writers), so two removals
/// of an account's passkeys count one after the other and cannot both see
/// two.
pub(super) async fn remove(
    db: &Database,
    account: &AccountId,
    credential_id: &str,
    now: UnixTime,
) -> Result<(), PasskeyError> {
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    sqlx::query("UPDATE accounts SET account_id = account_id WHERE account_id = $1")
        .bind(account.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM passkeys WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .try_get("n")
        .map_err(StoreError::from)?;
    let codes: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL",
    )
    .bind(account.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::from)?
    .try_get("n")
    .map_err(StoreError::from)?;
    if count <= 1 && codes == 0 {
        return Err(PasskeyError::LastPasskey);
    }
    let done = sqlx::query("DELETE FROM passkeys WHERE account_id = $1 AND credential_id = $2")
        .bind(account.as_str())
        .bind(credential_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    if done.rows_affected() != 1 {
        return Err(PasskeyError::NotFound);
    }
    let event = Event::citizen(Kind::PasskeyRemoved, account).with("credential_id", credential_id);
    audit::record(&mut tx, &event, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests;
