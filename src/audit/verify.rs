//! Verifying the log: the chain, its signed checkpoints, the pruned marker,
//! the cadence of checkpoints and, if given, the checkpoints exported
//! outside the database.
//!
//! Checkpoints are bounded *before* the head is read: every checkpoint
//! considered was made at a head that existed then, so it is at most the
//! head read after, and sealers and signers running meanwhile change
//! nothing under the check; a checkpoint beyond the head means the tail
//! was cut. The check reports the first definite break (the lowest entry
//! where the log is provably not what was written); a missing checkpoint
//! ([`Verification::window`]) is reported only if there is none.
//!
//! Signatures are checked with Civitas's keys (the keys directory) and the
//! ones the operator pins ([`Verification::pinning`]), never with a key a
//! trusted file carries ([`super::signature`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use sqlx::Row as _;

use super::anchor::Trusted;
use super::chain::Sealed;
use super::checkpoint::{self, Check, Checkpoint, Claims, Marker};
use super::signature::{KeyRing, PublicKey, SigError};
use crate::clock::UnixTime;
use crate::config::AuditSettings;
use crate::keys::KeyManager;
use crate::store::{Database, StoreError};

/// Rows read per query.
const PAGE: i64 = 1000;

/// Seconds allowed beyond twice the checkpoint interval: a transaction that
/// commits its entry late, a sealer's round, clocks of instances.
pub const SLACK_SECS: i64 = 30;

/// How to verify.
#[derive(Debug, Clone)]
pub struct Verification<'a> {
    /// `audit.checkpoint_interval`.
    pub interval: Duration,
    /// `audit.retention`.
    pub retention: Duration,
    /// Now, by the caller's clock.
    pub now: UnixTime,
    /// Checkpoints read from exported files (`--trusted`).
    pub trusted: &'a [Trusted],
    /// Public keys the operator vouches for (`--trusted-key`).
    pub pinned: &'a [PublicKey],
}

impl<'a> Verification<'a> {
    /// Against the database alone, with the instances' `[audit]` settings
    /// (the interval and the retention must be theirs).
    #[must_use]
    pub fn new(settings: &AuditSettings, now: UnixTime) -> Self {
        Self {
            interval: settings.checkpoint_interval,
            retention: settings.retention,
            now,
            trusted: &[],
            pinned: &[],
        }
    }

    /// Also against `trusted`.
    #[must_use]
    pub fn trusting(mut self, trusted: &'a [Trusted]) -> Self {
        self.trusted = trusted;
        self
    }

    /// Also with the keys `pinned`, for signatures anywhere (the database's
    /// and the files'): keys of Civitas whose files are gone.
    #[must_use]
    pub fn pinning(mut self, pinned: &'a [PublicKey]) -> Self {
        self.pinned = pinned;
        self
    }

    /// Every sealed entry must be covered by a checkpoint signed within this
    /// many seconds of its time: twice the interval, plus [`SLACK_SECS`].
    #[must_use]
    pub fn window(&self) -> i64 {
        2 * i64::try_from(self.interval.as_secs()).unwrap_or(i64::MAX / 4) + SLACK_SECS
    }
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
    /// Checkpoints in the database whose signature and hash were checked.
    pub checkpoints: u64,
    /// Checkpoints signed by a key that is nowhere at hand: not checked,
    /// and they cover nothing.
    pub unverifiable_checkpoints: u64,
    /// Exported checkpoints checked against the log.
    pub trusted_checkpoints: u64,
    /// Entries written but not yet sealed (not yet protected, not checked).
    pub unsealed: u64,
    /// The first break, if any.
    pub broken: Option<Broken>,
}

impl VerifyReport {
    /// Is the log intact?
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Checks the log: that the sealed chain has no gap, that each entry names
/// its predecessor's hash and hashes to what it stores, that the head
/// matches the last entry, that every checkpoint is signed by a key of
/// Civitas and matches the entry it names and none lies beyond the head,
/// that the pruned marker is one a checkpoint or a record of a pruning
/// signed, that every entry was covered by a checkpoint in time, and that
/// every trusted checkpoint is in the log and the database. Returns the
/// first break found.
///
/// # Errors
/// If the database fails.
pub async fn verify(
    db: &Database,
    keys: &KeyManager,
    how: &Verification<'_>,
) -> Result<VerifyReport, StoreError> {
    let mut attempt = 0;
    loop {
        let (report, start) = verify_once(db, keys, how).await?;
        // Retention that ran meanwhile removed what was being read.
        attempt += 1;
        if report.is_intact() || attempt == 3 || marker_now(db).await? == start {
            return Ok(report);
        }
    }
}

async fn marker_now(db: &Database) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT pruned_seq FROM audit_head WHERE id = 1")
            .fetch_one(db.pool())
            .await?
            .try_get("pruned_seq")?,
    )
}

/// The definite breaks (the lowest wins) and the first entry not covered in
/// time, apart for those the operator accepted ([`super::accept`]).
#[derive(Debug, Default)]
struct Findings {
    definite: Option<Broken>,
    gap: Option<Broken>,
    /// Entries up to this one were accepted as they are.
    accepted_through: Option<i64>,
    accepted_gap: Option<Broken>,
}

impl Findings {
    fn definite(&mut self, seq: i64, reason: String) {
        if self.definite.as_ref().is_none_or(|b| seq < b.seq) {
            self.definite = Some(Broken { seq, reason });
        }
    }

    fn gap(&mut self, seq: i64, reason: String) {
        let slot = if self.accepted_through.is_some_and(|a| seq <= a) {
            &mut self.accepted_gap
        } else {
            &mut self.gap
        };
        if slot.is_none() {
            *slot = Some(Broken { seq, reason });
        }
    }

    /// The acceptance does not hold (the entry it names changed).
    fn void_acceptance(&mut self) {
        self.accepted_through = None;
        if let Some(b) = self.accepted_gap.take() {
            self.gap = Some(b);
        }
    }

    fn first(self) -> Option<Broken> {
        self.definite.or(self.gap)
    }
}

/// Entries since the last checkpoint that covered them: only those older
/// than all before them (the first too old is one of them).
#[derive(Debug)]
struct Coverage {
    window: i64,
    lows: Vec<(i64, i64)>,
}

impl Coverage {
    fn entry(&mut self, seq: i64, at: i64) {
        if self.lows.last().is_none_or(|(_, low)| at < *low) {
            self.lows.push((seq, at));
        }
    }

    /// The first entry too old for `by` (a checkpoint's time, or now for
    /// the tail), among those accepted and among the others.
    fn too_old(&self, by: i64, found: &Findings) -> impl Iterator<Item = (i64, i64)> {
        let accepted = found.accepted_through.unwrap_or(i64::MIN);
        let old = |&&(_, at): &&(i64, i64)| at + self.window < by;
        let first_accepted = self.lows.iter().filter(|l| l.0 <= accepted).find(old);
        let first_other = self.lows.iter().filter(|l| l.0 > accepted).find(old);
        first_accepted.into_iter().chain(first_other).copied()
    }

    /// A checkpoint signed at `iat` covers the entries since the last one.
    /// One signed before 0014 (`cadence` false: it signs no marker) was made
    /// under no cadence rule: what it covers is not held to one.
    fn covered(&mut self, iat: i64, cadence: bool, found: &mut Findings) {
        if !cadence {
            self.lows.clear();
            return;
        }
        for (seq, at) in self.too_old(iat, found).collect::<Vec<_>>() {
            found.gap(
                seq,
                format!(
                    "written at {at}, but the first signed checkpoint covering it is from {iat}, \
                     more than {}s later: checkpoints were deleted, or no instance was running to sign one",
                    self.window
                ),
            );
        }
        self.lows.clear();
    }

    fn tail(&mut self, now: i64, found: &mut Findings) {
        for (seq, at) in self.too_old(now, found).collect::<Vec<_>>() {
            found.gap(
                seq,
                format!(
                    "written at {at}, more than {}s ago, and no signed checkpoint covers it: \
                     checkpoints were deleted, or no instance was running to sign one",
                    self.window
                ),
            );
        }
    }
}

/// Checkpoints at or below the pruned marker cover entries retention
/// removed. Retention removes only entries covered by a checkpoint signed
/// before its cutoff (the retention period before it ran), so one of 0014
/// on (it signs a marker) signed since `since` covers entries removed
/// before retention could remove them. `since` is the later of now less
/// `audit.retention` and the cutoff of the signed record of the pruning
/// (when it names the marker: it was the retention period then, which a
/// longer setting since does not change), plus [`SLACK_SECS`] for the
/// clocks of instances. Checkpoints of earlier versions (no marker) were
/// left below it by their retention; they are not held to this. Reported
/// only for a marker something signed: an unsigned one is reported itself.
#[derive(Debug)]
struct RemovedEarly {
    marker: i64,
    since: i64,
    first: Option<Broken>,
}

impl RemovedEarly {
    fn see(&mut self, c: &Claims, what: &str) {
        if c.seq <= self.marker
            && c.marker().is_some()
            && c.iat >= self.since
            && self.first.as_ref().is_none_or(|b| c.seq < b.seq)
        {
            self.first = Some(Broken {
                seq: c.seq,
                reason: format!(
                    "entry {} was removed, but {what}, which covers it, was signed at {}, within the retention period (after {}): retention removes only entries covered by a checkpoint older than that (entries were deleted)",
                    c.seq, c.iat, self.since
                ),
            });
        }
    }
}

/// The pruned marker, and whether something signed names it.
#[derive(Debug)]
struct MarkerCheck {
    marker: Marker,
    signed: bool,
}

impl MarkerCheck {
    /// A checkpoint (`what`) signed `claims`.
    fn see(&mut self, claims: &Claims, what: &str, found: &mut Findings) {
        let Some(m) = claims.marker() else {
            return;
        };
        let at = self.marker.seq;
        if m.seq == at && m.hash == self.marker.hash {
            self.signed = true;
        } else if m.seq == at {
            found.definite(
                at,
                format!("the pruned marker's hash is not the one {what} signed"),
            );
        } else if m.seq > at {
            found.definite(
                at + 1,
                format!(
                    "{what} signed that the log starts after entry {}, but it starts after entry {at} (the start was moved back)",
                    m.seq
                ),
            );
        }
    }

    fn finish(&self, early: RemovedEarly, found: &mut Findings) {
        if self.signed
            && let Some(b) = early.first
        {
            found.definite(b.seq, b.reason);
        }
        if !self.marker.is_genesis() && !self.signed {
            found.definite(
                self.marker.seq,
                format!(
                    "entries up to {} were removed, but nothing signed says retention removed them (the pruned marker was moved)",
                    self.marker.seq
                ),
            );
        }
    }
}

/// The checkpoints of one bounded range, read page by page.
struct Cursor<'d> {
    db: &'d Database,
    after: i64,
    upto: i64,
    buf: VecDeque<Checkpoint>,
    done: bool,
}

impl Cursor<'_> {
    /// The next checkpoint if its seq is at most `seq` (all if `i64::MAX`).
    async fn next_upto(&mut self, seq: i64) -> Result<Option<Checkpoint>, StoreError> {
        if self.buf.is_empty() && !self.done {
            let page = checkpoint::page(self.db, self.after, self.upto, PAGE).await?;
            self.done = page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
            if let Some(last) = page.last() {
                self.after = last.seq;
            }
            self.buf.extend(page);
        }
        Ok(match self.buf.front() {
            Some(cp) if cp.seq <= seq => self.buf.pop_front(),
            _ => None,
        })
    }
}

/// The exported checkpoints whose signature and copy hold, by seq; a break
/// for each that does not.
fn check_trusted<'t>(
    ring: &mut KeyRing<'_>,
    trusted: &'t [Trusted],
    found: &mut Findings,
) -> Vec<(Claims, &'t str)> {
    let mut ok: Vec<(Claims, &str)> = Vec::new();
    for t in trusted {
        let src = t.source.as_str();
        // The line's copy of its key is never used to check anything.
        if let Some(jwk) = &t.line.jwk
            && PublicKey::from_jwk(jwk).as_ref().map(PublicKey::kid) != Some(t.line.kid.as_str())
        {
            found.definite(
                t.line.seq,
                format!("{src}: the key it carries is not the one its kid names"),
            );
        }
        match ring.verify(&t.line.jws, checkpoint::TYP) {
            Err(SigError::UnknownKey(kid)) => found.definite(
                t.line.seq,
                format!("{src}: signed by key {kid}, which is not a key of Civitas (not in the keys directory, nor pinned with --trusted-key): a forged line, or one whose key's files are gone (pin that key)"),
            ),
            Err(SigError::Invalid(why)) => found.definite(
                t.line.seq,
                format!("{src}: not a checkpoint signed by Civitas ({why})"),
            ),
            Ok((_, claims)) => match serde_json::from_value::<Claims>(claims) {
                Ok(c)
                    if c.seq == t.line.seq
                        && c.hash == t.line.hash
                        && c.iat == t.line.iat
                        && (t.line.pruned_seq.is_none() || t.line.pruned_seq == c.pruned_seq)
                        && (t.line.pruned_hash.is_none() || t.line.pruned_hash == c.pruned_hash) =>
                {
                    ok.push((c, src));
                }
                _ => found.definite(
                    t.line.seq,
                    format!("{src}: the line does not say what its checkpoint signs"),
                ),
            },
        }
    }
    ok.sort_by_key(|(c, _)| c.seq);
    for w in ok.windows(2) {
        if w[0].0.seq == w[1].0.seq && w[0].0.hash != w[1].0.hash {
            found.definite(
                w[0].0.seq,
                format!(
                    "the checkpoints exported to {} and {} sign different hashes for this entry: the chain was rewritten and signed again",
                    w[0].1, w[1].1
                ),
            );
        }
    }
    ok
}

/// Does `cp` say it signs a pruned marker (version 0014 on)? Unchecked.
fn signs_a_marker(cp: &Checkpoint) -> bool {
    super::signature::decode(&cp.signature).is_some_and(|(_, c)| c.get("pruned_seq").is_some())
}

async fn verify_once(
    db: &Database,
    keys: &KeyManager,
    how: &Verification<'_>,
) -> Result<(VerifyReport, i64), StoreError> {
    let mut ring = KeyRing::new(keys);
    for k in how.pinned {
        ring.pin(k);
    }
    let mut found = Findings::default();
    let trusted = check_trusted(&mut ring, how.trusted, &mut found);
    // Checkpoints first, then the head: see the module's documentation.
    let cp_upto = checkpoint::last_seq(db).await?;
    let head = sqlx::query(
        "SELECT seq, hash, pruned_seq, pruned_hash, pruned_proof, accepted_proof FROM audit_head WHERE id = 1",
    )
    .fetch_one(db.pool())
    .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    let pruned = Marker {
        seq: head.try_get("pruned_seq")?,
        hash: head.try_get("pruned_hash")?,
    };
    let proof: Option<String> = head.try_get("pruned_proof")?;
    let acceptance = head
        .try_get::<Option<String>, _>("accepted_proof")?
        .and_then(|p| super::accept::accepted(&mut ring, &p))
        .filter(|a| a.through_seq > pruned.seq && a.through_seq <= head_seq);
    found.accepted_through = acceptance.as_ref().map(|a| a.through_seq);
    let unsealed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE seq IS NULL")
        .fetch_one(db.pool())
        .await?
        .try_get("n")?;
    let mut report = VerifyReport {
        entries: 0,
        checkpoints: 0,
        unverifiable_checkpoints: 0,
        trusted_checkpoints: 0,
        unsealed: unsealed.unsigned_abs(),
        broken: None,
    };
    let record = proof
        .as_deref()
        .and_then(|p| super::retention::record_of(&mut ring, p, &pruned));
    let mut marker = MarkerCheck {
        signed: pruned.is_genesis() || record.is_some(),
        marker: pruned.clone(),
    };
    let keep = i64::try_from(how.retention.as_secs()).unwrap_or(i64::MAX / 4);
    let mut early = RemovedEarly {
        marker: pruned.seq,
        since: (how.now.0 - keep).max(record.and_then(|r| r.cutoff).unwrap_or(i64::MIN))
            + SLACK_SECS,
        first: None,
    };
    let mut trusted_at: HashMap<i64, Vec<(&Claims, &str)>> = HashMap::new();
    for (c, src) in &trusted {
        marker.see(c, &format!("the checkpoint exported to {src}"), &mut found);
        if c.seq > head_seq {
            found.definite(
                head_seq + 1,
                format!(
                    "the log ends at entry {head_seq}, but the checkpoint exported to {src} covers entry {}: its tail was removed (truncated)",
                    c.seq
                ),
            );
        } else if c.seq > pruned.seq {
            trusted_at.entry(c.seq).or_default().push((c, src));
        } else {
            early.see(c, &format!("the checkpoint exported to {src}"));
            if c.seq == pruned.seq && c.hash != pruned.hash {
                found.definite(
                    pruned.seq,
                    format!("the pruned marker's hash is not the one exported to {src}"),
                );
            }
        }
    }
    let mut cps = Cursor {
        db,
        after: i64::MIN,
        upto: cp_upto.unwrap_or(i64::MIN),
        buf: VecDeque::new(),
        done: cp_upto.is_none(),
    };
    // Checkpoints of removed entries: one on the last signs the marker's
    // hash; none of 0014 on may be from the retention period.
    while let Some(cp) = cps.next_upto(pruned.seq).await? {
        let below = cp.seq < pruned.seq;
        if below && !signs_a_marker(&cp) {
            continue;
        }
        match checkpoint::check(&mut ring, &cp) {
            Check::Valid(c) if below || c.hash == pruned.hash => {
                early.see(&c, &format!("checkpoint {}", cp.seq));
                marker.see(&c, &format!("checkpoint {}", cp.seq), &mut found);
            }
            Check::Valid(_) => found.definite(
                pruned.seq,
                "the pruned marker's hash is not the one its checkpoint signed".into(),
            ),
            Check::Invalid(why) => found.definite(cp.seq, format!("checkpoint is forged: {why}")),
            Check::UnknownKey => report.unverifiable_checkpoints += 1,
        }
    }
    let mut coverage = Coverage {
        window: how.window(),
        lows: Vec::new(),
    };
    let mut next = pruned.seq + 1;
    let mut expected_prev = pruned.hash.clone();
    let mut walk_broken = false;
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
            let mut stop = |seq: i64, reason: String| {
                found.definite(seq, reason);
                walk_broken = true;
            };
            if entry.seq != next {
                stop(next, "entry missing (removed)".into());
                break 'pages;
            }
            if entry.prev_hash != expected_prev {
                stop(
                    entry.seq,
                    "does not follow the entry before it (reordered, or an entry before it was removed or replaced)".into(),
                );
                break 'pages;
            }
            let hash = entry.hash();
            if hash != stored {
                stop(entry.seq, "content altered (hash mismatch)".into());
                break 'pages;
            }
            if acceptance
                .as_ref()
                .is_some_and(|a| a.through_seq == entry.seq && a.through_hash != hash)
            {
                found.void_acceptance();
            }
            coverage.entry(entry.seq, entry.occurred_at);
            let mut stored_cp = None;
            while let Some(cp) = cps.next_upto(entry.seq).await? {
                match checkpoint::check(&mut ring, &cp) {
                    Check::Valid(c) if c.hash == hash => {
                        report.checkpoints += 1;
                        marker.see(&c, &format!("checkpoint {}", cp.seq), &mut found);
                        coverage.covered(c.iat, c.marker().is_some(), &mut found);
                    }
                    Check::Valid(_) => {
                        found.definite(
                            entry.seq,
                            "differs from the signed checkpoint at this entry (the chain was rewritten)".into(),
                        );
                        walk_broken = true;
                        break 'pages;
                    }
                    Check::UnknownKey => report.unverifiable_checkpoints += 1,
                    Check::Invalid(why) => {
                        found.definite(entry.seq, format!("checkpoint is forged: {why}"));
                        walk_broken = true;
                        break 'pages;
                    }
                }
                stored_cp = Some(cp.hash);
            }
            for (c, src) in trusted_at.get(&entry.seq).into_iter().flatten() {
                report.trusted_checkpoints += 1;
                if c.hash != hash {
                    found.definite(
                        entry.seq,
                        format!("differs from the checkpoint exported to {src} (the chain was rewritten)"),
                    );
                } else if stored_cp.as_deref() != Some(c.hash.as_str()) {
                    found.definite(
                        entry.seq,
                        format!("the checkpoint exported to {src} is missing from the database (deleted)"),
                    );
                }
            }
            expected_prev = hash;
            next += 1;
            report.entries += 1;
        }
    }
    if !walk_broken {
        let last = next - 1;
        if last < head_seq {
            found.definite(next, format!("entries {next} to {head_seq} are missing"));
        } else if expected_prev != head_hash {
            found.definite(
                last,
                "the last entry does not match the chain's head".into(),
            );
        }
        while let Some(cp) = cps.next_upto(i64::MAX).await? {
            match checkpoint::check(&mut ring, &cp) {
                Check::Valid(_) => found.definite(
                    head_seq + 1,
                    format!(
                        "the log ends at entry {head_seq}, but a signed checkpoint covers entry {}: its tail was removed (truncated)",
                        cp.seq
                    ),
                ),
                Check::Invalid(why) => found.definite(cp.seq, format!("checkpoint is forged: {why}")),
                Check::UnknownKey => report.unverifiable_checkpoints += 1,
            }
        }
        coverage.tail(how.now.0, &mut found);
        // Entries numbered past the head as it is now were not sealed by
        // Civitas (a sealer moves the head with the entries it numbers).
        let beyond = sqlx::query(
            "SELECT MIN(seq) AS s FROM audit_log WHERE seq > (SELECT seq FROM audit_head WHERE id = 1)",
        )
        .fetch_one(db.pool())
        .await?;
        if let Some(seq) = beyond.try_get::<Option<i64>, _>("s")? {
            found.definite(
                seq,
                "an entry lies beyond the chain's head (inserted)".into(),
            );
        }
    }
    marker.finish(early, &mut found);
    report.broken = found.first();
    Ok((report, pruned.seq))
}
