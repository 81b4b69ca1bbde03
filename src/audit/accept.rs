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
//!
//! An unsigned marker is signed only if it can be one a version before
//! 0014 left: [`accept`] refuses once anything shows that a version that
//! signs the marker ran (a checkpoint carrying a marker, in the database
//! or in this host's checkpoint file; a signed record of a pruning; an
//! `audit.pruned` entry that names its hash). A marker moved since then
//! is a deletion, which no acceptance makes legitimate.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::anchor::TrustedError;
use super::retention::{ProofClaims, proof_names};
use super::signature::KeyRing;
use super::{Actor, Event, Kind};
use crate::clock::UnixTime;
use crate::keys::{Alg, KeyError, KeyManager};
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
/// empty. `exported` is this host's `audit.checkpoint_file`.
///
/// # Errors
/// If the database fails, no key can sign, the checkpoint file cannot be
/// read, or ([`AcceptError::Deletion`]) the marker is unsigned although a
/// version that signs it ran: nothing is signed then.
pub async fn accept(
    db: &Database,
    keys: &KeyManager,
    exported: &Path,
    now: UnixTime,
) -> Result<Option<Accepted>, AcceptError> {
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
    if sign_marker {
        let evidence = match proof {
            Some(_) => Some("the record of a pruning the head holds".to_owned()),
            None => signed_since_0014(db, exported).await?,
        };
        if let Some(evidence) = evidence {
            return Err(AcceptError::Deletion {
                marker: marker.seq,
                evidence,
            });
        }
    }
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
        // Only the marker that was read, still without a record.
        sqlx::query(
            "UPDATE audit_head SET pruned_proof = $1 \
             WHERE id = 1 AND pruned_seq = $2 AND pruned_hash = $3 AND pruned_proof IS NULL",
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

/// What shows that a version signing the pruned marker (0014 on) ran: a
/// checkpoint that carries a marker (in the database, newest first, or in
/// `exported`), or an `audit.pruned` entry that names the hash of what it
/// removed. Only the claims are read, not checked: a forged one only keeps
/// the operator from signing.
async fn signed_since_0014(db: &Database, exported: &Path) -> Result<Option<String>, AcceptError> {
    let mut below = i64::MAX;
    loop {
        let rows = sqlx::query(
            "SELECT seq, signature FROM audit_checkpoints WHERE seq < $1 ORDER BY seq DESC LIMIT 1000",
        )
        .bind(below)
        .fetch_all(db.pool())
        .await?;
        let Some(last) = rows.last() else {
            break;
        };
        below = last.try_get("seq")?;
        for r in &rows {
            let jws: String = r.try_get("signature")?;
            if super::signature::decode(&jws).is_some_and(|(_, c)| c.get("pruned_seq").is_some()) {
                let seq: i64 = r.try_get("seq")?;
                return Ok(Some(format!("checkpoint {seq} in the database")));
            }
        }
    }
    let pruned = sqlx::query(
        "SELECT MIN(seq) AS s FROM audit_log WHERE kind = $1 AND detail LIKE '%\"through_hash\"%'",
    )
    .bind(Kind::AuditPruned.as_str())
    .fetch_one(db.pool())
    .await?
    .try_get::<Option<i64>, _>("s")?;
    if let Some(seq) = pruned {
        return Ok(Some(format!("entry {seq} (audit.pruned)")));
    }
    let lines = match super::anchor::read(exported) {
        Ok(lines) => lines,
        Err(TrustedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(lines
        .iter()
        .find(|t| t.line.pruned_seq.is_some())
        .map(|t| format!("the exported checkpoint {}", t.source)))
}

/// Why the operator's acceptance was not signed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key could sign.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// This host's checkpoint file could not be read.
    #[error(transparent)]
    Exported(#[from] TrustedError),
    /// The pruned marker is unsigned, but a version that signs it ran
    /// (`evidence`): entries were deleted from the start of the log.
    #[error(
        "the start of the audit log (entry {marker}) was moved without a signed record of a pruning, although {evidence} shows that a version of Civitas that signs it ran: entries were deleted from the start of the log, and `audit accept` does not sign that (it signs only a start left by a version before 0014); nothing was signed"
    )]
    Deletion {
        /// The unsigned marker.
        marker: i64,
        /// What shows it.
        evidence: String,
    },
}

impl From<sqlx::Error> for AcceptError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}
