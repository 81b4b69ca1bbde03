//! The hash chain and its verification.
//!
//! An entry's hash is SHA-256 over a domain tag, the previous entry's hash
//! and every column of the entry, each length-prefixed so that no two
//! different entries encode alike. Changing any column, removing an entry or
//! swapping two breaks the link at that entry; rewriting every hash after a
//! change is caught by the signed checkpoints ([`super::checkpoint`]) and
//! the ones exported outside the database ([`super::anchor`]);
//! [`super::verify`] checks all of it.

use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use crate::store::StoreError;

/// The previous hash of the first entry of a chain never pruned.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
