//! Checkpoints outside the database: the file each instance appends to,
//! the log line, and the trusted files `civitas audit verify --trusted`
//! reads back.
//!
//! A writer of the database can delete checkpoints from it and have the
//! next one signed over a forged head; it cannot take back what was
//! shipped off the host (the operator ships the file). So the instance whose row was stored appends every
//! checkpoint it signs as one JSON line to `audit.checkpoint_file` (opened
//! in append mode, synced to disk before the next round) and logs it at
//! `info`. A line carries the JWS, a readable copy of its claims and of
//! the signing key's public JWK; only the JWS is checked, and only with the
//! keys of Civitas ([`super::signature`]): a key a line carries vouches for
//! nothing. A line that could not be written is kept in memory
//! and written at the next round. A signer continues from the last line it
//! exported, and signs nothing over a chain that no longer holds it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::checkpoint::{CheckpointError, Signed};
use super::signature::KeyRing;
use crate::clock::UnixTime;
use crate::keys::KeyManager;
use crate::store::Database;

/// One exported checkpoint: a line of the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The head it covers.
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// The pruned marker signed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_seq: Option<i64>,
    /// The pruned marker's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_hash: Option<String>,
    /// When it was signed.
    pub iat: i64,
    /// The key that signed it.
    pub kid: String,
    /// A copy of that key's public JWK, for reading: never used to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Map<String, Value>>,
    /// The checkpoint itself (what is checked; the rest is a readable copy).
    pub jws: String,
}

impl Line {
    /// The line for a checkpoint just signed.
    #[must_use]
    pub fn of(signed: &Signed, keys: &KeyManager) -> Self {
        Self {
            seq: signed.claims.seq,
            hash: signed.claims.hash.clone(),
            pruned_seq: signed.claims.pruned_seq,
            pruned_hash: signed.claims.pruned_hash.clone(),
            iat: signed.claims.iat,
            kid: signed.kid.clone(),
            jwk: KeyRing::new(keys).jwk(&signed.kid),
            jws: signed.checkpoint.signature.clone(),
        }
    }
}

/// Appends `lines` to `path` in append mode (creating it and its directory
/// if needed) and syncs them to disk.
///
/// # Errors
/// If the file cannot be opened, written or synced.
pub fn append(path: &Path, lines: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    // One write: appenders sharing a local file do not interleave lines.
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// The last complete line of the file at `path`, if it holds one.
fn last_line(path: &Path) -> Option<Line> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(std::io::SeekFrom::Start(len.saturating_sub(16_384)))
        .ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    let complete = &tail[..tail.rfind('\n')?];
    serde_json::from_str(complete.rsplit('\n').next()?).ok()
}

/// Signs checkpoints and exports the ones this instance stored.
///
/// It remembers the last checkpoint exported (the last line of its file
/// when it starts) and signs no head that no longer holds that entry as it
/// was signed: a rewrite or a cut after it is refused and reported
/// ([`CheckpointError::Diverged`]) instead of being signed over.
#[derive(Debug)]
pub struct Anchor {
    path: PathBuf,
    pending: Vec<String>,
    last: Option<(i64, String)>,
}

impl Anchor {
    /// Exports to `path` (`audit.checkpoint_file`), continuing from its last
    /// line.
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        let last = last_line(&path).map(|l| (l.seq, l.hash));
        Self {
            path,
            pending: Vec::new(),
            last,
        }
    }

    /// Signs a checkpoint of the head ([`super::checkpoint::create`]) if
    /// the chain still holds the last one exported; if this call stored it,
    /// logs it and appends it to the file. Returns the checkpoint stored.
    ///
    /// # Errors
    /// If it could not be signed, or the chain no longer holds the last
    /// checkpoint exported. A line that could not be written is logged as
    /// an error and kept for the next call.
    pub async fn checkpoint(
        &mut self,
        db: &Database,
        keys: &KeyManager,
        now: UnixTime,
    ) -> Result<Option<Signed>, CheckpointError> {
        if let Some((seq, hash)) = &self.last
            && !super::checkpoint::still_holds(db, *seq, hash).await?
        {
            return Err(CheckpointError::Diverged(*seq));
        }
        let signed = super::checkpoint::create(db, keys, now).await?;
        if let Some(s) = &signed {
            self.last = Some((s.claims.seq, s.claims.hash.clone()));
            tracing::info!(
                seq = s.claims.seq,
                hash = %s.claims.hash,
                pruned_seq = s.claims.pruned_seq,
                iat = s.claims.iat,
                kid = %s.kid,
                jws = %s.checkpoint.signature,
                "audit checkpoint signed"
            );
            let line = serde_json::to_string(&Line::of(s, keys))
                .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
            self.pending.push(line);
        }
        self.flush().await;
        Ok(signed)
    }

    /// Writes the lines not yet written; keeps them if that fails.
    pub async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (path, lines) = (self.path.clone(), self.pending.clone());
        let written = tokio::task::spawn_blocking(move || append(&path, &lines))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(()) => self.pending.clear(),
            Err(e) => tracing::error!(
                error = %e,
                file = %self.path.display(),
                waiting = self.pending.len(),
                "audit checkpoints could not be written to the checkpoint file; retrying"
            ),
        }
    }

    /// Lines signed but not yet written.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// A checkpoint read from a trusted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// `FILE:LINE`, to name it in a report.
    pub source: String,
    /// What the line says.
    pub line: Line,
}

/// Why a trusted file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustedError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a JSON object, or its checkpoint members are malformed.
    #[error("{0}: not a checkpoint line")]
    Malformed(String),
}

/// The checkpoints in `path`: one JSON object per line, as the checkpoint
/// file holds them. A JSON log line is read too (its `jws`, `seq`, `hash`
/// members); other JSON lines, without a `jws`, are skipped, and so is a
/// last line not yet ended by its newline.
///
/// # Errors
/// If the file cannot be read or a line is not JSON.
pub fn read(path: &Path) -> Result<Vec<Trusted>, TrustedError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrustedError::Io {
        path: path.display().to_string(),
        source,
    })?;
    // A last line without its newline is still being written: not read.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut out = Vec::new();
    // One public key per kid is enough: a year of lines shares a few.
    let mut keys_seen = std::collections::HashSet::new();
    for (i, l) in complete.lines().enumerate() {
        let source = format!("{}:{}", path.display(), i + 1);
        if l.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(l).map_err(|_| TrustedError::Malformed(source.clone()))?;
        let Some(jws) = value.get("jws").and_then(Value::as_str) else {
            continue;
        };
        // A log line has no key: the keys directory must then hold it.
        let claims = super::signature::decode(jws).map(|(h, c)| (h["kid"].clone(), c));
        let Some((kid, claims)) = claims else {
            return Err(TrustedError::Malformed(source));
        };
        let number = |k: &str| {
            value
                .get(k)
                .or_else(|| claims.get(k))
                .and_then(Value::as_i64)
        };
        let text = |k: &str| {
            value
                .get(k)
                .or_else(|| claims.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(seq), Some(hash), Some(iat)) = (number("seq"), text("hash"), number("iat"))
        else {
            return Err(TrustedError::Malformed(source));
        };
        out.push(Trusted {
            source,
            line: Line {
                seq,
                hash,
                pruned_seq: number("pruned_seq"),
                pruned_hash: text("pruned_hash"),
                iat,
                kid: kid.as_str().unwrap_or_default().to_owned(),
                jwk: value
                    .get("jwk")
                    .and_then(Value::as_object)
                    .filter(|_| keys_seen.insert(kid.to_string()))
                    .cloned(),
                jws: jws.to_owned(),
            },
        });
    }
    Ok(out)
}
