//! Signed checkpoints of the chain.
//!
//! A checkpoint is a JWS (`typ` `audit-checkpoint+jwt`) by Civitas's active
//! ES256 key over `{"seq", "hash", "iat"}` of the chain's head. Rewriting
//! the chain from some entry on, even with every hash recomputed, changes
//! the hash at the next checkpoint, which only the holder of the signing
//! key could sign again. Every instance makes one periodically
//! (`audit.checkpoint_interval`); instances racing for the same head write
//! it once (`ON CONFLICT DO NOTHING`).

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::clock::UnixTime;
use crate::keys::{Alg, KeyError, KeyManager};
use crate::store::{Database, StoreError};

/// The JWS `typ` of a checkpoint.
const TYP: &str = "audit-checkpoint+jwt";

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The entry it covers.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When it was made.
    pub created_at: UnixTime,
    /// The compact JWS.
    pub signature: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    seq: i64,
    hash: String,
    iat: i64,
}

/// The outcome of checking a checkpoint's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Signed by a published key, over this checkpoint's `seq` and `hash`.
    Valid,
    /// Signed by a key that is no longer published: cannot be checked.
    UnknownKey,
    /// Not a valid signature over what the row says.
    Invalid(&'static str),
}

/// Checks `cp`'s signature and that it signs `cp.seq` and `cp.hash`.
#[must_use]
pub fn check(keys: &KeyManager, cp: &Checkpoint) -> Check {
    match keys.verify(&cp.signature) {
        Err(KeyError::InvalidToken("unknown kid")) => Check::UnknownKey,
        Err(_) => Check::Invalid("bad signature"),
        Ok((header, claims)) => {
            if header["typ"] != TYP {
                return Check::Invalid("not a checkpoint");
            }
            match serde_json::from_value::<Claims>(claims) {
                Ok(c) if c.seq == cp.seq && c.hash == cp.hash => Check::Valid,
                _ => Check::Invalid("signs another entry or hash"),
            }
        }
    }
}

/// Every checkpoint, by sequence number.
///
/// # Errors
/// If the database fails.
pub async fn list(db: &Database) -> Result<Vec<Checkpoint>, StoreError> {
    let rows =
        sqlx::query("SELECT seq, hash, created_at, signature FROM audit_checkpoints ORDER BY seq")
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Checkpoint {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
                created_at: UnixTime(r.try_get("created_at")?),
                signature: r.try_get("signature")?,
            })
        })
        .collect()
}

/// Signs a checkpoint at the chain's head, unless the head is empty or
/// already has one. Returns the checkpoint made.
///
/// # Errors
/// If the database fails or no key can sign.
pub async fn create(
    db: &Database,
    keys: &KeyManager,
    now: UnixTime,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await
        .map_err(StoreError::from)?;
    let seq: i64 = head.try_get("seq").map_err(StoreError::from)?;
    let hash: String = head.try_get("hash").map_err(StoreError::from)?;
    if seq == 0 {
        return Ok(None);
    }
    let signature = keys.sign(
        Alg::ES256,
        TYP,
        &Claims {
            seq,
            hash: hash.clone(),
            iat: now.0,
        },
    )?;
    let done = sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, created_at, signature) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (seq) DO NOTHING",
    )
    .bind(seq)
    .bind(&hash)
    .bind(now.0)
    .bind(&signature)
    .execute(db.pool())
    .await
    .map_err(StoreError::from)?;
    Ok((done.rows_affected() == 1).then_some(Checkpoint {
        seq,
        hash,
        created_at: now,
        signature,
    }))
}

/// Why a checkpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key could sign.
    #[error(transparent)]
    Key(#[from] KeyError),
}
