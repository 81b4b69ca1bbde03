//! The hash chain and its verification.
//!
//! An entry's hash is SHA-256 over a domain tag, the previous entry's hash
//! and every column of the entry, each length-prefixed so that no two
//! different entries encode alike. Changing any column, removing an entry or
//! swapping two breaks the link at that entry; rewriting every hash after a
//! change is caught by the signed checkpoints ([`super::checkpoint`]).

use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use super::checkpoint;
use crate::keys::KeyManager;
use crate::store::{Database, StoreError};

/// The previous hash of the first entry of a chain never pruned.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Entries read per query while verifying.
const PAGE: i64 = 1000;

/// One entry as stored, without its own hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Position in the chain (1, 2, ...).
    pub seq: i64,
    /// Random id.
    pub event_id: String,
    /// Unix seconds.
    pub occurred_at: i64,
    /// The kind's name.
    pub kind: String,
    /// Who caused it (stored form).
    pub actor: String,
    /// The citizen, by internal id.
    pub account_id: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// The detail, a JSON object as text.
    pub detail: String,
    /// The previous entry's hash.
    pub prev_hash: String,
}

impl Sealed {
    /// The entry's hash, lowercase hex.
    #[must_use]
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"civitas-audit-v1\0");
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(self.prev_hash.as_bytes());
        field(&self.seq.to_be_bytes());
        field(self.event_id.as_bytes());
        field(&self.occurred_at.to_be_bytes());
        field(self.kind.as_bytes());
        field(self.actor.as_bytes());
        // An absent value and an empty one differ.
        match &self.account_id {
            Some(a) => field(format!("+{a}").as_bytes()),
            None => field(b"-"),
        }
        match &self.client_id {
            Some(c) => field(format!("+{c}").as_bytes()),
            None => field(b"-"),
        }
        field(self.detail.as_bytes());
        hex(&h.finalize())
    }

    pub(super) fn from_row(r: &sqlx::any::AnyRow) -> Result<(Self, String), StoreError> {
        Ok((
            Self {
                seq: r.try_get("seq")?,
                event_id: r.try_get("event_id")?,
                occurred_at: r.try_get("occurred_at")?,
                kind: r.try_get("kind")?,
                actor: r.try_get("actor")?,
                account_id: r.try_get("account_id")?,
                client_id: r.try_get("client_id")?,
                detail: r.try_get("detail")?,
                prev_hash: r.try_get("prev_hash")?,
            },
            r.try_get("hash")?,
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The first place where the log is not what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The sequence number of the first entry that fails (or is missing).
    pub seq: i64,
    /// Why.
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints: u64,
    /// Checkpoints signed by a key no longer published (not checkable).
    pub unverifiable_checkpoints: u64,
    /// Entries written but not yet sealed (not yet protected, not checked).
    pub unsealed: u64,
    /// The first break, if any.
    pub broken: Option<Broken>,
}

impl VerifyReport {
    /// Is the chain intact?
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks the whole sealed chain: that the sequence has no gap, that each entry
/// names its predecessor's hash and hashes to what it stores, that the head
/// matches the last entry, and that every checkpoint is signed by a
/// published Civitas key and matches the entry it names. Returns the first
/// break found.
///
/// # Errors
/// If the database fails.
pub async fn verify(db: &Database, keys: &KeyManager) -> Result<VerifyReport, StoreError> {
    let head =
        sqlx::query("SELECT seq, hash, pruned_seq, pruned_hash FROM audit_head WHERE id = 1")
            .fetch_one(db.pool())
            .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    let pruned_seq: i64 = head.try_get("pruned_seq")?;
    let mut expected_prev: String = head.try_get("pruned_hash")?;
    let unsealed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE seq IS NULL")
        .fetch_one(db.pool())
        .await?
        .try_get("n")?;
    let mut report = VerifyReport {
        entries: 0,
        checkpoints: 0,
        unverifiable_checkpoints: 0,
        unsealed: unsealed.unsigned_abs(),
        broken: None,
    };
    let mut next = pruned_seq + 1;
    // Checkpoints made after the head was read may name later entries:
    // the check covers the chain up to that head only, so that sealers
    // running meanwhile move nothing under it.
    let checkpoints: Vec<_> = checkpoint::list(db)
        .await?
        .into_iter()
        .filter(|cp| cp.seq <= head_seq)
        .collect();
    let mut cps = checkpoints.iter().peekable();
    let broken = |seq: i64, reason: String| Some(Broken { seq, reason });
    'pages: loop {
        let rows = sqlx::query(
            "SELECT seq, event_id, occurred_at, kind, actor, account_id, client_id, detail, prev_hash, hash \
             FROM audit_log WHERE seq >= $1 AND seq <= $3 ORDER BY seq LIMIT $2",
        )
        .bind(next)
        .bind(PAGE)
        .bind(head_seq)
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let (entry, stored) = Sealed::from_row(r)?;
            if entry.seq != next {
                report.broken = broken(next, "entry missing (removed)".into());
                break 'pages;
            }
            if entry.prev_hash != expected_prev {
                report.broken = broken(
                    entry.seq,
                    "does not follow the entry before it (reordered, or an entry before it was removed or replaced)".into(),
                );
                break 'pages;
            }
            let hash = entry.hash();
            if hash != stored {
                report.broken = broken(entry.seq, "content altered (hash mismatch)".into());
                break 'pages;
            }
            while let Some(cp) = cps.next_if(|cp| cp.seq <= entry.seq) {
                if cp.seq < entry.seq {
                    // A checkpoint on an entry before the first kept one:
                    // retention removed what it covers.
                    continue;
                }
                match checkpoint::check(keys, cp) {
                    checkpoint::Check::Valid if cp.hash == hash => report.checkpoints += 1,
                    checkpoint::Check::Valid => {
                        report.broken = broken(
                            entry.seq,
                            "differs from the signed checkpoint at this entry (the chain was rewritten)".into(),
                        );
                        break 'pages;
                    }
                    checkpoint::Check::UnknownKey => report.unverifiable_checkpoints += 1,
                    checkpoint::Check::Invalid(why) => {
                        report.broken = broken(entry.seq, format!("checkpoint is forged: {why}"));
                        break 'pages;
                    }
                }
            }
            expected_prev = hash;
            next += 1;
            report.entries += 1;
        }
    }
    if report.broken.is_none() {
        let last = next - 1;
        if last < head_seq {
            report.broken = broken(next, format!("entries {next} to {head_seq} are missing"));
        } else if last > pruned_seq && expected_prev != head_hash {
            report.broken = broken(
                last,
                "the last entry does not match the chain's head".into(),
            );
        } else if let Some(cp) = cps.next() {
            report.broken = broken(
                cp.seq,
                "a signed checkpoint names an entry that is not in the log (truncated)".into(),
            );
        }
    }
    if report.broken.is_none() {
        // Entries numbered past the head as it is now were not sealed by
        // Civitas (a sealer moves the head with the entries it numbers).
        let beyond = sqlx::query(
            "SELECT MIN(seq) AS s FROM audit_log WHERE seq > (SELECT seq FROM audit_head WHERE id = 1)",
        )
        .fetch_one(db.pool())
        .await?;
        if let Some(seq) = beyond.try_get::<Option<i64>, _>("s")? {
            report.broken = broken(
                seq,
                "an entry lies beyond the chain's head (inserted)".into(),
            );
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Sealed {
        Sealed {
            seq: 1,
            event_id: "e".into(),
            occurred_at: 10,
            kind: "signin".into(),
            actor: "citizen".into(),
            account_id: Some("a".into()),
            client_id: None,
            detail: "{}".into(),
            prev_hash: GENESIS.into(),
        }
    }

    #[test]
    fn every_column_is_covered_and_absent_differs_from_empty() {
        let base = entry().hash();
        assert_eq!(base.len(), 64);
        assert_eq!(base, entry().hash());
        let variants: [fn(&mut Sealed); 9] = [
            |e| e.seq = 2,
            |e| e.event_id = "f".into(),
            |e| e.occurred_at = 11,
            |e| e.kind = "signout".into(),
            |e| e.actor = "operator".into(),
            |e| e.account_id = Some(String::new()),
            |e| e.client_id = Some(String::new()),
            |e| e.detail = "{ }".into(),
            |e| e.prev_hash = "1".repeat(64),
        ];
        for change in variants {
            let mut e = entry();
            change(&mut e);
            assert_ne!(e.hash(), base, "{e:?}");
        }
    }
}
