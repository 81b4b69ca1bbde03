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
//!
//! Nothing a writer of the database can set decides what is removed: not
//! an entry's `occurred_at`, not a checkpoint's `created_at`. Retention
//! removes the entries up to the newest checkpoint whose *signed* time
//! (`iat`, checked with a key of Civitas) is before the cutoff, and only
//! after checking that they are the chain that checkpoint signed: each
//! links to the one before from the current marker, hashes to what it
//! stores, and the last has the hash signed. It signs nothing over a
//! marker that is not accounted for.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::chain::Sealed;
use super::checkpoint::{self, Check, Marker};
use super::signature::KeyRing;
use super::{Actor, Event, Kind};
use crate::clock::UnixTime;
use crate::keys::{Alg, KeyError, KeyManager};
use crate::store::{Database, StoreError};

/// The JWS `typ` of a record of a pruning.
pub const TYP: &str = "audit-prune+jwt";

/// Rows read per query.
const PAGE: i64 = 1000;

/// Checkpoints read per round at most while looking for the newest one
/// older than the cutoff (a week of them at one a minute).
const SCAN: usize = 10_000;

/// Of those, the newest ones whose signature is checked.
const CANDIDATES: usize = 100;

/// What a record of a pruning signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// The last entry removed.
    pub through_seq: i64,
    /// Its hash.
    pub through_hash: String,
    /// Entries covered by a checkpoint signed before this time were
    /// removed (`None` when the operator accepted a marker nothing signed,
    /// [`super::accept`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<i64>,
    /// When it was signed.
    pub iat: i64,
}

/// What `proof` signs, if it is a valid record naming `marker`.
#[must_use]
pub fn record_of(ring: &mut KeyRing<'_>, proof: &str, marker: &Marker) -> Option<ProofClaims> {
    ring.verify(proof, TYP)
        .ok()
        .and_then(|(_, c)| serde_json::from_value::<ProofClaims>(c).ok())
        .filter(|c| c.through_seq == marker.seq && c.through_hash == marker.hash)
}

/// Does `proof` validly name `marker`?
#[must_use]
pub fn proof_names(ring: &mut KeyRing<'_>, proof: &str, marker: &Marker) -> bool {
    record_of(ring, proof, marker).is_some()
}

/// Removes the entries covered by the newest checkpoint signed before
/// `cutoff` (by its signed time), from the start of the chain, signs the
/// new marker, and records `audit.pruned`, in one transaction under the
/// head row's lock. The removed entries must be the chain that checkpoint
/// signed, from a marker that is accounted for; otherwise nothing is
/// removed. The head keeps the sequence number and hash of the last
/// removed entry, where verification starts. Checkpoints of removed
/// entries go with them. Returns how many entries were removed.
///
/// Entries no checkpoint signed before `cutoff` covers are kept: at most
/// about one `audit.checkpoint_interval` more than by their time; entries
/// of earlier versions that no checkpoint of theirs covered, until the
/// first checkpoint after the upgrade is older than `cutoff`.
///
/// # Errors
/// If the database fails or no key can sign; [`PruneError::UnsignedMarker`]
/// and [`PruneError::NotSigned`] if the log was tampered with. Nothing is
/// removed then.
pub async fn prune(
    db: &Database,
    keys: &KeyManager,
    cutoff: UnixTime,
    now: UnixTime,
) -> Result<u64, PruneError> {
    let mut tx = db.begin().await?;
    let head = sqlx::query(
        "UPDATE audit_head SET seq = seq WHERE id = 1 \
         RETURNING seq, pruned_seq, pruned_hash, pruned_proof",
    )
    .fetch_one(&mut *tx)
    .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let marker = Marker {
        seq: head.try_get("pruned_seq")?,
        hash: head.try_get("pruned_hash")?,
    };
    let proof: Option<String> = head.try_get("pruned_proof")?;
    let mut ring = KeyRing::new(keys);
    let Some((through, hash, signed_at)) =
        newest_before(&mut tx, &mut ring, &marker, head_seq, cutoff).await?
    else {
        return Ok(0);
    };
    if !checkpoint::accounted_for(&mut tx, &mut ring, &marker, proof.as_deref()).await? {
        return Err(PruneError::UnsignedMarker(marker.seq));
    }
    if let Some(seq) = first_unlike(&mut tx, &marker, through, &hash).await? {
        return Err(PruneError::NotSigned {
            checkpoint: through,
            entry: seq,
        });
    }
    let removed = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
        .bind(through)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq <= $1")
        .bind(through)
        .execute(&mut *tx)
        .await?;
    let proof = keys.sign(
        Alg::ES256,
        TYP,
        &ProofClaims {
            through_seq: through,
            through_hash: hash.clone(),
            cutoff: Some(cutoff.0),
            iat: now.0,
        },
    )?;
    sqlx::query(
        "UPDATE audit_head SET pruned_seq = $1, pruned_hash = $2, pruned_proof = $3 WHERE id = 1",
    )
    .bind(through)
    .bind(&hash)
    .bind(&proof)
    .execute(&mut *tx)
    .await?;
    let event = Event::by(Kind::AuditPruned, Actor::System)
        .with("through_seq", through)
        .with("through_hash", hash)
        .with("removed", removed)
        .with("cutoff", cutoff.0)
        .with("checkpoint_iat", signed_at);
    super::record(&mut tx, &event, now).await?;
    tx.commit().await?;
    Ok(removed)
}

/// The newest checkpoint after `marker`, at most the head, validly signed
/// by a key of Civitas at a signed time before `cutoff`: its seq, hash and
/// time. The stored `created_at` (the signed time, unless a writer changed
/// it) only narrows the search: checkpoints are read from the marker on
/// until one says it is not older than `cutoff` (at most [`SCAN`]; the
/// rest waits for the next round), and the newest [`CANDIDATES`] of those
/// are checked, newest first; the signed time decides.
async fn newest_before(
    conn: &mut sqlx::AnyConnection,
    ring: &mut KeyRing<'_>,
    marker: &Marker,
    head: i64,
    cutoff: UnixTime,
) -> Result<Option<(i64, String, i64)>, StoreError> {
    let mut candidates = std::collections::VecDeque::new();
    let (mut after, mut read) = (marker.seq, 0);
    'scan: while read < SCAN {
        let rows = sqlx::query(
            "SELECT seq, hash, created_at, signature FROM audit_checkpoints \
             WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(head)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let cp = checkpoint::from_row(r)?;
            if cp.created_at.0 >= cutoff.0 {
                break 'scan;
            }
            after = cp.seq;
            read += 1;
            if candidates.len() == CANDIDATES {
                candidates.pop_front();
            }
            candidates.push_back(cp);
        }
    }
    Ok(candidates
        .into_iter()
        .rev()
        .find_map(|cp| match checkpoint::check(ring, &cp) {
            Check::Valid(c) if c.iat < cutoff.0 => Some((cp.seq, cp.hash, c.iat)),
            _ => None,
        }))
}

/// The first entry of `(marker, through]` that is not the chain a
/// checkpoint signed at `through` with `hash`: missing, not linked to the
/// one before (from the marker's hash), not hashing to what it stores, or
/// the last not having `hash`. `None` if they all are.
async fn first_unlike(
    conn: &mut sqlx::AnyConnection,
    marker: &Marker,
    through: i64,
    hash: &str,
) -> Result<Option<i64>, StoreError> {
    let mut next = marker.seq + 1;
    let mut prev = marker.hash.clone();
    while next <= through {
        let rows = sqlx::query(
            "SELECT seq, event_id, occurred_at, kind, actor, account_id, client_id, detail, prev_hash, hash \
             FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(next)
        .bind(through)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(Some(next));
        }
        for r in &rows {
            let (entry, stored) = Sealed::from_row(r)?;
            if entry.seq != next || entry.prev_hash != prev || entry.hash() != stored {
                return Ok(Some(next));
            }
            prev = stored;
            next += 1;
        }
    }
    Ok((prev != hash).then_some(through))
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
    /// The pruned marker moved to this entry without a signed record of a
    /// pruning: retention would sign a start over a deletion.
    #[error(
        "the audit log's pruned marker moved to entry {0} without a signed record of a pruning; retention removes nothing until it is accounted for (run `civitas audit verify`)"
    )]
    UnsignedMarker(i64),
    /// The entries up to `checkpoint` are not the chain it signed, from
    /// `entry` on.
    #[error(
        "the audit log from entry {entry} is not the chain checkpoint {checkpoint} signed; retention removes none of it (run `civitas audit verify`)"
    )]
    NotSigned {
        /// The checkpoint retention would remove up to.
        checkpoint: i64,
        /// The first entry that differs.
        entry: i64,
    },
}

impl PruneError {
    /// Refused because the log was tampered with (not a passing failure).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::UnsignedMarker(_) | Self::NotSigned { .. })
    }
}

impl From<sqlx::Error> for PruneError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}
