//! The operator's signed acceptance of the log as it is.
//!
//! Two findings of `verify` can have an honest cause that no signature
//! can tell apart from an attack: entries no checkpoint covered in time
//! (the only instance crashed and stayed down, or entries were written
//! while every instance was stopped), and a pruned marker that a version
//! before 0014 moved without signing it. Once the operator has checked
//! them (`verify --trusted` against the exported checkpoints, a backup),
//! `civitas audit accept` signs, with the ES256 key, the head as it is now
//! (`audit_head.accepted_proof`, `typ` `audit-accept+jwt`, over
//! `through_seq`, `through_hash`, `iat`) and, if nothing signed it, the
//! pruned marker. `verify` then no longer reports entries up to that head
//! as not covered in time, as long as that entry still has that hash. A
//! writer of the database cannot sign an acceptance; removing one only
//! brings the findings back.

use serde::{Deserialize, Serialize};

use super::retention::{ProofClaims, PruneError, proof_names};
use super::signature::KeyRing;
use super::{Actor, Event, Kind};
use crate::clock::UnixTime;
use crate::keys::{Alg, KeyManager};
use crate::store::{Database, StoreError};

/// The JWS `typ` of an acceptance.
pub const TYP: &str = "audit-accept+jwt";

/// What an acceptance signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptClaims {
    /// The head when it was signed.
    pub through_seq: i64,
    /// Its hash.
    pub through_hash: String,
    /// When it was signed.
    pub iat: i64,
}

/// The acceptance `proof` names, if it is valid.
#[must_use]
pub fn accepted(ring: &mut KeyRing<'_>, proof: &str) -> Option<AcceptClaims> {
    ring.verify(proof, TYP)
        .ok()
        .and_then(|(_, c)| serde_json::from_value(c).ok())
}

/// What [`accept`] signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The head accepted.
    pub through_seq: i64,
    /// The pruned marker, if it had to be signed too.
    pub marker: Option<i64>,
}

/// Signs the head as accepted, and the pruned marker if nothing signed it,
/// and records it (`admin.action`, `audit.accept`). `None` if the log is
/// empty.
///
/// # Errors
/// If the database fails or no key can sign.
pub async fn accept(
    db: &Database,
    keys: &KeyManager,
    now: UnixTime,
) -> Result<Option<Accepted>, PruneError> {
    super::seal(db).await?;
    let super::checkpoint::Head {
        seq,
        hash,
        marker,
        proof,
    } = super::checkpoint::Head::read(db).await?;
    if seq == 0 {
        return Ok(None);
    }
    let mut ring = KeyRing::new(keys);
    let sign_marker = !marker.is_genesis()
        && !proof
            .as_deref()
            .is_some_and(|p| proof_names(&mut ring, p, &marker));
    let mut tx = db.begin().await?;
    if sign_marker {
        let proof = keys.sign(
            Alg::ES256,
            super::retention::TYP,
            &ProofClaims {
                through_seq: marker.seq,
                through_hash: marker.hash.clone(),
                cutoff: None,
                iat: now.0,
            },
        )?;
        // Only the marker that was read.
        sqlx::query(
            "UPDATE audit_head SET pruned_proof = $1 WHERE id = 1 AND pruned_seq = $2 AND pruned_hash = $3",
        )
        .bind(&proof)
        .bind(marker.seq)
        .bind(&marker.hash)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    }
    let acceptance = keys.sign(
        Alg::ES256,
        TYP,
        &AcceptClaims {
            through_seq: seq,
            through_hash: hash,
            iat: now.0,
        },
    )?;
    sqlx::query("UPDATE audit_head SET accepted_proof = $1 WHERE id = 1")
        .bind(&acceptance)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let mut event = Event::by(Kind::AdminAction, Actor::Operator)
        .with("action", "audit.accept")
        .with("through_seq", seq);
    if sign_marker {
        event = event.with("pruned_seq", marker.seq);
    }
    super::record(&mut tx, &event, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Some(Accepted {
        through_seq: seq,
        marker: sign_marker.then_some(marker.seq),
    }))
}
