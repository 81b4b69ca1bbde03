//! Client SQL, one text for SQLite and PostgreSQL.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Client, ClientId, ClientMetadata, SubjectType, sector};
use crate::audit::{self, Event};
use crate::clock::UnixTime;
use crate::secrets::SecretHash;
use crate::store::{Database, StoreError, flag};

fn metadata_json(client: &Client) -> Result<String, StoreError> {
    serde_json::to_string(&client.metadata).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) async fn insert_client(
    db: &Database,
    client: &Client,
    events: &[Event],
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO clients (client_id, secret_hash, registration_token_hash, metadata, first_party, \
         subject_type, created_at, updated_at, admin, sector) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(client.client_id.as_str())
    .bind(client.secret_hash.as_ref().map(|h| h.as_str().to_owned()))
    .bind(client.registration_token_hash.as_ref().map(|h| h.as_str().to_owned()))
    .bind(metadata_json(client)?)
    .bind(i64::from(client.first_party))
    .bind(client.subject_type.as_str())
    .bind(client.created_at.0)
    .bind(client.updated_at.0)
    .bind(i64::from(client.admin))
    .bind(&client.sector)
    .execute(&mut *tx)
    .await?;
    audit::record_all(&mut tx, events, client.created_at).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores an edited client (RFC 7592 PUT): its metadata, secret and
/// registration token, only while its stored sector is `client.sector`,
/// the one the edit was checked against ([`fix_sector`] stored it before the
/// check; a stored sector never changes). `false` if no row was written
/// (the client was deleted meanwhile).
pub(super) async fn update_client(
    db: &Database,
    client: &Client,
    event: &Event,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE clients SET secret_hash = $2, registration_token_hash = $3, metadata = $4, first_party = $5, \
         subject_type = $6, updated_at = $7 WHERE client_id = $1 AND sector = $8",
    )
    .bind(client.client_id.as_str())
    .bind(client.secret_hash.as_ref().map(|h| h.as_str().to_owned()))
    .bind(client.registration_token_hash.as_ref().map(|h| h.as_str().to_owned()))
    .bind(metadata_json(client)?)
    .bind(i64::from(client.first_party))
    .bind(client.subject_type.as_str())
    .bind(client.updated_at.0)
    .bind(&client.sector)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    audit::record(&mut tx, event, client.updated_at).await?;
    tx.commit().await?;
    Ok(true)
}

/// The stored sector of `client_id`, stored first if the row had none
/// ([`sector::fix`]), in its own transaction: before an edit is checked, so
/// that even a refused edit fixes it. `None` for no such client.
pub(super) async fn fix_sector(
    db: &Database,
    client_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut tx = db.begin().await?;
    let sector = sector::fix(&mut tx, client_id).await?;
    tx.commit().await?;
    Ok(sector)
}

/// Replaces a client's secret (operator command), with its audit entry;
/// `false` for no such client.
pub(super) async fn set_secret(
    db: &Database,
    client_id: &str,
    secret: &SecretHash,
    event: &Event,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    if sector::fix(&mut tx, client_id).await?.is_none() {
        return Ok(false);
    }
    sqlx::query("UPDATE clients SET secret_hash = $2, updated_at = $3 WHERE client_id = $1")
        .bind(client_id)
        .bind(secret.as_str())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
    audit::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn get_client(
    db: &Database,
    client_id: &str,
) -> Result<Option<Client>, StoreError> {
    let row = sqlx::query(
        "SELECT client_id, secret_hash, registration_token_hash, metadata, first_party, subject_type, \
         created_at, updated_at, admin, admin_identifiers, sector FROM clients WHERE client_id = $1",
    )
    .bind(client_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| from_row(&r)).transpose()
}

pub(super) async fn list_clients(db: &Database) -> Result<Vec<Client>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, secret_hash, registration_token_hash, metadata, first_party, subject_type, \
         created_at, updated_at, admin, admin_identifiers, sector FROM clients ORDER BY created_at, client_id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub(super) async fn delete_client(
    db: &Database,
    client_id: &str,
    events: &[Event],
    now: UnixTime,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit::record_all(&mut tx, events, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// An operator-only flag of a client.
#[derive(Clone, Copy)]
pub(super) enum OperatorFlag {
    /// The admin API.
    Admin,
    /// National identifiers in the admin API's export.
    AdminIdentifiers,
}

/// Sets an operator-only flag, with its audit entry; `false` for no such client.
pub(super) async fn set_flag(
    db: &Database,
    client_id: &str,
    flag: OperatorFlag,
    value: bool,
    event: &Event,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let sql = match flag {
        OperatorFlag::Admin => {
            "UPDATE clients SET admin = $2, updated_at = $3 WHERE client_id = $1"
        }
        OperatorFlag::AdminIdentifiers => {
            "UPDATE clients SET admin_identifiers = $2, updated_at = $3 WHERE client_id = $1"
        }
    };
    let mut tx = db.begin().await?;
    if sector::fix(&mut tx, client_id).await?.is_none() {
        return Ok(false);
    }
    let done = sqlx::query(sql)
        .bind(client_id)
        .bind(i64::from(value))
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit::record(&mut tx, event, now).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn is_admin(db: &Database, client_id: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT admin FROM clients WHERE client_id = $1")
        .bind(client_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => flag(r.try_get("admin")?),
        None => false,
    })
}

pub(super) async fn may_read_identifiers(
    db: &Database,
    client_id: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT admin, admin_identifiers FROM clients WHERE client_id = $1")
        .bind(client_id)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => flag(r.try_get("admin")?) && flag(r.try_get("admin_identifiers")?),
        None => false,
    })
}

fn from_row(row: &AnyRow) -> Result<Client, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    let metadata: ClientMetadata = serde_json::from_str(&metadata)
        .map_err(|e| StoreError::Corrupt(format!("client metadata: {e}")))?;
    let subject_type = match row.try_get::<String, _>("subject_type")?.as_str() {
        "public" => SubjectType::Public,
        _ => SubjectType::Pairwise,
    };
    let client_id = ClientId::new(row.try_get::<String, _>("client_id")?);
    // NULL only for a client of before migration 0012 (or written by an
    // instance of that version during a rolling upgrade) not yet fixed by
    // `sector::fill_legacy` or an edit (`sector::fix`): the same value.
    let sector = row
        .try_get::<Option<String>, _>("sector")?
        .unwrap_or_else(|| super::sector::legacy(&metadata, &client_id));
    Ok(Client {
        client_id,
        sector,
        metadata,
        first_party: flag(row.try_get("first_party")?),
        subject_type,
        admin: flag(row.try_get("admin")?),
        admin_identifiers: flag(row.try_get("admin_identifiers")?),
        created_at: UnixTime(row.try_get("created_at")?),
        updated_at: UnixTime(row.try_get("updated_at")?),
        secret_hash: row
            .try_get::<Option<String>, _>("secret_hash")?
            .map(SecretHash::from_stored),
        registration_token_hash: row
            .try_get::<Option<String>, _>("registration_token_hash")?
            .map(SecretHash::from_stored),
    })
}

pub(super) async fn replace_registration_token(
    db: &Database,
    client_id: &str,
    old: &SecretHash,
    new: &SecretHash,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    sector::fix(&mut tx, client_id).await?;
    let done = sqlx::query(
        "UPDATE clients SET registration_token_hash = $3 WHERE client_id = $1 AND registration_token_hash = $2",
    )
    .bind(client_id)
    .bind(old.as_str())
    .bind(new.as_str())
    .execute(&mut *tx)
    .await?;
    // The sector is kept fixed even when the token changed meanwhile.
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn allowed_claims(
    db: &Database,
    client_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query("SELECT claim, legal_basis FROM client_claim_permissions WHERE client_id = $1 ORDER BY claim")
        .bind(client_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("claim")?,
                r.try_get::<String, _>("legal_basis")?,
            ))
        })
        .collect()
}

pub(super) async fn set_allowed_claims(
    db: &Database,
    client_id: &str,
    claims: &[String],
    legal_basis: &str,
    now: UnixTime,
    events: &[Event],
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sector::fix(&mut tx, client_id).await?;
    sqlx::query("DELETE FROM client_claim_permissions WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    for claim in claims {
        sqlx::query("INSERT INTO client_claim_permissions (client_id, claim, legal_basis, granted_at) VALUES ($1, $2, $3, $4)")
            .bind(client_id)
            .bind(claim)
            .bind(legal_basis)
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
    }
    audit::record_all(&mut tx, events, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn may_exchange(
    db: &Database,
    client_id: &str,
    resource: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 AS ok FROM exchange_permissions WHERE client_id = $1 AND resource = $2",
    )
    .bind(client_id)
    .bind(resource)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

pub(super) async fn allow_exchange(
    db: &Database,
    client_id: &str,
    resource: &str,
    now: UnixTime,
    event: &Event,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    sector::fix(&mut tx, client_id).await?;
    let added = sqlx::query(
        "INSERT INTO exchange_permissions (client_id, resource, granted_at) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, resource) DO NOTHING",
    )
    .bind(client_id)
    .bind(resource)
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    if added.rows_affected() == 1 {
        audit::record(&mut tx, event, now).await?;
    }
    tx.commit().await?;
    Ok(())
}
