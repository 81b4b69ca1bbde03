//! Signed checkpoints of the chain.
//!
//! A checkpoint is a JWS (`typ` `audit-checkpoint+jwt`) by Civitas's active
//! ES256 key over the chain's head (`seq`, `hash`), the pruned marker
//! (`pruned_seq`, `pruned_hash`: where the kept chain starts) and the time
//! (`iat`). Rewriting the chain from some entry on, even with every hash
//! recomputed, changes the hash at the next checkpoint, which only the
//! holder of the signing key could sign again; moving the start of the
//! chain changes the marker the checkpoints signed.
//!
//! Every instance signs one at start, every `audit.checkpoint_interval`
//! and when it stops, if the head moved; instances racing for the same
//! head store it once (`ON CONFLICT DO NOTHING`), and only the one whose
//! row was stored exports it ([`super::anchor`]). The signer refuses a
//! pruned marker that nothing signed names ([`create`]): otherwise a
//! writer of the database could move the marker and have it signed.
//! Checkpoints signed before 0014 carry no marker (`pruned_*` absent).

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::signature::{KeyRing, SigError};
use crate::clock::UnixTime;
use crate::keys::{Alg, KeyError, KeyManager};
use crate::store::{Database, StoreError};

/// The JWS `typ` of a checkpoint.
pub const TYP: &str = "audit-checkpoint+jwt";

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

/// Where the kept chain starts: the last entry retention removed (`0` and
/// [`super::chain::GENESIS`] if none was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash, which the first kept entry names as its predecessor.
    pub hash: String,
}

/// The chain's head as stored: its last entry, the pruned marker and the
/// marker's signature, if retention signed it.
pub(super) struct Head {
    pub(super) seq: i64,
    pub(super) hash: String,
    pub(super) marker: Marker,
    pub(super) proof: Option<String>,
}

impl Head {
    /// Reads the head row.
    pub(super) async fn read(db: &Database) -> Result<Self, StoreError> {
        let head = sqlx::query(
            "SELECT seq, hash, pruned_seq, pruned_hash, pruned_proof FROM audit_head WHERE id = 1",
        )
        .fetch_one(db.pool())
        .await?;
        Ok(Self {
            seq: head.try_get("seq")?,
            hash: head.try_get("hash")?,
            marker: Marker {
                seq: head.try_get("pruned_seq")?,
                hash: head.try_get("pruned_hash")?,
            },
            proof: head.try_get("pruned_proof")?,
        })
    }
}

impl Marker {
    /// Nothing pruned yet?
    #[must_use]
    pub fn is_genesis(&self) -> bool {
        self.seq == 0 && self.hash == super::chain::GENESIS
    }
}

/// What a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The head's sequence number.
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// When it was signed (Unix seconds).
    pub iat: i64,
    /// The pruned marker's sequence number (absent before 0014).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_seq: Option<i64>,
    /// The pruned marker's hash (absent before 0014).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_hash: Option<String>,
}

impl Claims {
    /// The marker it signs, if it signs one.
    #[must_use]
    pub fn marker(&self) -> Option<Marker> {
        Some(Marker {
            seq: self.pruned_seq?,
            hash: self.pruned_hash.clone()?,
        })
    }
}

/// The outcome of checking a checkpoint's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Signed by a key of Civitas, over this checkpoint's `seq` and `hash`.
    Valid(Claims),
    /// Signed by a key that is nowhere at hand: cannot be checked.
    UnknownKey,
    /// Not a valid signature over what the row says.
    Invalid(&'static str),
}

/// Checks `cp`'s signature and that it signs `cp.seq` and `cp.hash`.
#[must_use]
pub fn check(ring: &mut KeyRing<'_>, cp: &Checkpoint) -> Check {
    match ring.verify(&cp.signature, TYP) {
        Err(SigError::UnknownKey(_)) => Check::UnknownKey,
        Err(SigError::Invalid(_)) => Check::Invalid("bad signature"),
        Ok((_, claims)) => match serde_json::from_value::<Claims>(claims) {
            Ok(c) if c.seq == cp.seq && c.hash == cp.hash => Check::Valid(c),
            _ => Check::Invalid("signs another entry or hash"),
        },
    }
}

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        created_at: UnixTime(r.try_get("created_at")?),
        signature: r.try_get("signature")?,
    })
}

/// The checkpoints with `after < seq <= upto`, by sequence number, at most
/// `limit`: a page.
///
/// # Errors
/// If the database fails.
pub async fn page(
    db: &Database,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<Checkpoint>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, hash, created_at, signature FROM audit_checkpoints \
         WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every checkpoint, by sequence number.
///
/// # Errors
/// If the database fails.
pub async fn list(db: &Database) -> Result<Vec<Checkpoint>, StoreError> {
    page(db, i64::MIN, i64::MAX, i64::MAX).await
}

/// The highest sequence number a checkpoint covers, if any.
///
/// # Errors
/// If the database fails.
pub async fn last_seq(db: &Database) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query("SELECT MAX(seq) AS s FROM audit_checkpoints")
        .fetch_one(db.pool())
        .await?
        .try_get("s")?)
}

/// A checkpoint just signed and stored.
#[derive(Debug, Clone)]
pub struct Signed {
    /// As stored.
    pub checkpoint: Checkpoint,
    /// What it signs.
    pub claims: Claims,
    /// The key that signed it.
    pub kid: String,
}

/// Signs a checkpoint at the chain's head, unless the head is empty or
/// already has one. Refuses ([`CheckpointError::UnsignedMarker`]) if the
/// pruned marker is not the one the newest checkpoint signed and no signed
/// record of a pruning names it. Returns the checkpoint if this call
/// stored it.
///
/// # Errors
/// If the database fails, no key can sign, or the marker is not signed.
pub async fn create(
    db: &Database,
    keys: &KeyManager,
    now: UnixTime,
) -> Result<Option<Signed>, CheckpointError> {
    let Head {
        seq,
        hash,
        marker,
        proof,
    } = Head::read(db).await?;
    if seq == 0 {
        return Ok(None);
    }
    // An idle log: nothing to sign, nothing written.
    if sqlx::query("SELECT 1 AS present FROM audit_checkpoints WHERE seq = $1")
        .bind(seq)
        .fetch_optional(db.pool())
        .await
        .map_err(StoreError::from)?
        .is_some()
    {
        return Ok(None);
    }
    let mut ring = KeyRing::new(keys);
    let mut conn = db.pool().acquire().await.map_err(StoreError::from)?;
    let accounted = accounted_for(&mut conn, &mut ring, &marker, proof.as_deref()).await?;
    drop(conn);
    if !accounted {
        return Err(CheckpointError::UnsignedMarker(marker.seq));
    }
    let claims = Claims {
        seq,
        hash: hash.clone(),
        iat: now.0,
        pruned_seq: Some(marker.seq),
        pruned_hash: Some(marker.hash),
    };
    let signature = keys.sign(Alg::ES256, TYP, &claims)?;
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
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    // The key that signed, even if another became active meanwhile.
    let kid = super::signature::decode(&signature)
        .and_then(|(h, _)| h["kid"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Some(Signed {
        checkpoint: Checkpoint {
            seq,
            hash,
            created_at: now,
            signature,
        },
        claims,
        kid,
    }))
}

/// Is `marker` accounted for: nothing pruned, or the signed record of a
/// pruning (`proof`) or the newest checkpoint names it? The signer of
/// checkpoints and retention sign nothing over a marker that is not.
///
/// # Errors
/// If the database fails.
pub(super) async fn accounted_for(
    conn: &mut sqlx::AnyConnection,
    ring: &mut KeyRing<'_>,
    marker: &Marker,
    proof: Option<&str>,
) -> Result<bool, StoreError> {
    Ok(marker.is_genesis()
        || proof.is_some_and(|p| super::retention::record_of(ring, p, marker).is_some())
        || newest_signs(conn, ring, marker).await?)
}

/// Does the newest checkpoint sign `marker`?
async fn newest_signs(
    conn: &mut sqlx::AnyConnection,
    ring: &mut KeyRing<'_>,
    marker: &Marker,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT seq, hash, created_at, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    Ok(match check(ring, &from_row(&row)?) {
        Check::Valid(c) => c.marker().as_ref() == Some(marker),
        _ => false,
    })
}

/// Does the chain still hold entry `seq` with hash `hash` (or did
/// retention remove it)? `false` if the entry changed, is missing, or lies
/// beyond the head.
///
/// # Errors
/// If the database fails.
pub async fn still_holds(db: &Database, seq: i64, hash: &str) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT seq, pruned_seq, (SELECT hash FROM audit_log WHERE seq = $1) AS entry \
         FROM audit_head WHERE id = 1",
    )
    .bind(seq)
    .fetch_one(db.pool())
    .await?;
    let head: i64 = row.try_get("seq")?;
    let pruned: i64 = row.try_get("pruned_seq")?;
    let entry: Option<String> = row.try_get("entry")?;
    Ok(seq <= pruned || (seq <= head && entry.as_deref() == Some(hash)))
}

impl CheckpointError {
    /// Refused because the log was tampered with (not a passing failure).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::UnsignedMarker(_) | Self::Diverged(_))
    }
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
    /// The pruned marker moved to this entry without a signed record of a
    /// pruning: entries may have been deleted from the start of the log.
    #[error(
        "the audit log's pruned marker moved to entry {0} without a signed record of a pruning; no checkpoint is signed until it is accounted for (run `civitas audit verify`)"
    )]
    UnsignedMarker(i64),
    /// The chain no longer holds the entry of the last checkpoint this
    /// signer exported: it was rewritten or cut since.
    #[error(
        "the audit log no longer holds entry {0} as the last checkpoint exported signed it (rewritten or cut); no checkpoint is signed over it (run `civitas audit verify --trusted`)"
    )]
    Diverged(i64),
}
