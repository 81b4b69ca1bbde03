//! Retention: removing the oldest entries, with a signed record of it.
//!
//! Removing entries from the start of the chain moves the head's pruned
//! marker (`pruned_seq`, `pruned_hash`: the last entry removed, where
//! verification starts). A writer of the database could move it too, to
//! hide any prefix of the log, so the instance that prunes signs the new
//! marker (a JWS, `typ` `audit-prune+jwt`, by the ES256 key, over
//! `through_seq`, `through_hash`, `cutoff` and `iat`) and stores that proof
//! beside it (`audit_head.pruned_proof`). The signer of checkpoints and
//! `verify` accept a marker only if this proof or a signed checkpoint names
//! it.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::checkpoint::Marker;
use super::signature::KeyRing;
use super::{Actor, Event, Kind};
use crate::clock::UnixTime;
use crate::keys::{Alg, KeyError, KeyManager};
use crate::store::{Database, StoreError};

/// The JWS `typ` of a record of a pruning.
pub const TYP: &str = "audit-prune+jwt";

/// What a record of a pruning signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// The last entry removed.
    pub through_seq: i64,
    /// Its hash.
    pub through_hash: String,
    /// Entries written before this time were removed (`None` when the
    /// operator accepted a marker nothing signed, [`super::accept`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<i64>,
    /// When it was signed.
    pub iat: i64,
}

/// Does `proof` validly name `marker`?
#[must_use]
pub fn proof_names(ring: &mut KeyRing<'_>, proof: &str, marker: &Marker) -> bool {
    ring.verify(proof, TYP)
        .ok()
        .and_then(|(_, c)| serde_json::from_value::<ProofClaims>(c).ok())
        .is_some_and(|c| c.through_seq == marker.seq && c.through_hash == marker.hash)
}

/// Removes the entries older than `cutoff` from the start of the chain,
/// signs the new marker, and records `audit.pruned`, in one transaction
/// under the head row's lock. The chain stays verifiable: the head keeps the
/// sequence number and hash of the last removed entry, where verification
/// starts. Entries are removed in chain order, so one newer than `cutoff`
/// stops the removal even if older ones follow it (clocks of instances).
/// Checkpoints of removed entries go with them. Returns how many entries
/// were removed.
///
/// # Errors
/// If the database fails or no key can sign; nothing is removed then.
pub async fn prune(
    db: &Database,
    keys: &KeyManager,
    cutoff: UnixTime,
    now: UnixTime,
) -> Result<u64, PruneError> {
    let mut tx = db.begin().await?;
    let head =
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, pruned_seq")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    let head_seq: i64 = head.try_get("seq").map_err(StoreError::from)?;
    let pruned: i64 = head.try_get("pruned_seq").map_err(StoreError::from)?;
    let first_kept: Option<i64> =
        sqlx::query("SELECT MIN(seq) AS s FROM audit_log WHERE occurred_at >= $1")
            .bind(cutoff.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .try_get("s")
            .map_err(StoreError::from)?;
    let last_removed = first_kept.map_or(head_seq, |s| s - 1);
    if last_removed <= pruned {
        return Ok(0);
    }
    let hash: String = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(last_removed)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .try_get("hash")
        .map_err(StoreError::from)?;
    let removed = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
        .bind(last_removed)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq <= $1")
        .bind(last_removed)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let proof = keys.sign(
        Alg::ES256,
        TYP,
        &ProofClaims {
            through_seq: last_removed,
            through_hash: hash.clone(),
            cutoff: Some(cutoff.0),
            iat: now.0,
        },
    )?;
    sqlx::query(
        "UPDATE audit_head SET pruned_seq = $1, pruned_hash = $2, pruned_proof = $3 WHERE id = 1",
    )
    .bind(last_removed)
    .bind(&hash)
    .bind(&proof)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    let event = Event::by(Kind::AuditPruned, Actor::System)
        .with("through_seq", last_removed)
        .with("through_hash", hash)
        .with("removed", removed)
        .with("cutoff", cutoff.0);
    super::record(&mut tx, &event, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(removed)
}

/// Why retention, or the operator's acceptance ([`super::accept`]), could
/// not be signed and stored.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key could sign the new marker.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<sqlx::Error> for PruneError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}
