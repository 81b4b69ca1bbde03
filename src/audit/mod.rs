//! The audit trail: every security-relevant event, in a tamper-evident log.
//!
//! Each entry is written **in the transaction of the change it describes**
//! ([`record`] takes that transaction's connection), so no change exists
//! without its entry and a change that fails leaves none. Writing is one
//! INSERT of an *unsealed* entry, which waits for no other writer: the
//! hot paths (a sign-in, a code redemption) do not queue on the log.
//!
//! [`seal`] then chains the committed entries, on every instance several
//! times a second, in batches under the lock of the single `audit_head`
//! row: each gets the next number of one sequence shared by every instance
//! (`seq`) and a hash over its content and the previous entry's hash
//! ([`chain`]). Every instance signs a checkpoint of the head
//! ([`checkpoint`]) at start, every `audit.checkpoint_interval` (one minute
//! by default) and when it stops, and exports it outside the database
//! ([`anchor`]); retention signs the new start of the chain
//! ([`retention`]). [`verify`] checks all of it, and the exported
//! checkpoints when given.
//!
//! What this guarantees, against a writer of the database who holds no
//! signing key and cannot change what was exported and shipped off the
//! host: a change to a sealed entry covered by a shipped checkpoint, the
//! removal of entries (from the start, the middle or the end) or of
//! shipped checkpoints, and a moved start of the chain are reported. What
//! it does not: an entry is protected only once a checkpoint covering it
//! has been shipped (about one interval after it was sealed, plus the
//! shipping; before it is sealed, a fraction of a second, not at all);
//! without the exported checkpoints, a rewrite that also re-dates every
//! entry after the last surviving checkpoint is not found; a new entry
//! inserted by such a writer is sealed like any other; and the holder of
//! the signing key can rewrite everything not yet shipped.
//! `docs/designs/0004-audit-tamper-evidence.md` has the details.
//!
//! An entry names a citizen by internal account id only. Its detail is a
//! JSON object of non-secret facts (a client id, claim names, a level):
//! never a national identifier, passkey material, a token, a code or a
//! name.

pub mod accept;
pub mod anchor;
pub mod chain;
pub mod checkpoint;
pub mod query;
pub mod retention;
pub mod signature;
pub mod stats;
pub mod verify;

use serde_json::{Map, Value};
use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::clock::UnixTime;
use crate::secrets::random_token;
use crate::store::{Database, StoreError};

pub use query::{Entry, for_account};
pub use verify::{Broken, Verification, VerifyReport, verify};

/// The kinds of event, with their names in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A citizen created an account (with its first passkey).
    AccountCreated,
    /// An operator locked an account.
    AccountLocked,
    /// An operator unlocked an account.
    AccountUnlocked,
    /// An account's personal data was erased (data-protection request).
    AccountErased,
    /// Everything held about an account was exported.
    AccountExported,
    /// A passkey was added to an account.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
    /// New recovery codes replaced the old ones.
    RecoveryCodesGenerated,
    /// A recovery code opened a recovery session.
    RecoveryCodeUsed,
    /// A proven eID opened a recovery session.
    EidRecovery,
    /// An email address was verified.
    EmailVerified,
    /// An eID identity was bound to the account, or proven again.
    EidBound,
    /// A citizen signed in to Civitas (method, level, methods).
    SignIn,
    /// A step-up to a higher level of assurance ended (outcome).
    StepUp,
    /// A citizen consented to share with a client.
    ConsentGiven,
    /// A citizen withdrew a consent.
    ConsentRevoked,
    /// Claims were released to a client at sign-in (which, on which basis).
    ClaimsReleased,
    /// A representation mandate was granted.
    MandateGranted,
    /// A representative accepted a mandate.
    MandateAccepted,
    /// A representative acted for an organization under a mandate.
    MandateUsed,
    /// A mandate was revoked.
    MandateRevoked,
    /// A token was exchanged along a call chain (RFC 8693).
    TokenExchanged,
    /// A client was registered.
    ClientRegistered,
    /// A client's registration changed.
    ClientChanged,
    /// A client was deleted.
    ClientDeleted,
    /// A signing key was added (rotation).
    KeyRotated,
    /// A business-register extract was imported.
    RegisterImported,
    /// An operator used the admin API or an admin command.
    AdminAction,
    /// Entries older than the retention period were removed.
    AuditPruned,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 29] = [
        Self::AccountCreated,
        Self::AccountLocked,
        Self::AccountUnlocked,
        Self::AccountErased,
        Self::AccountExported,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::RecoveryCodesGenerated,
        Self::RecoveryCodeUsed,
        Self::EidRecovery,
        Self::EmailVerified,
        Self::EidBound,
        Self::SignIn,
        Self::StepUp,
        Self::ConsentGiven,
        Self::ConsentRevoked,
        Self::ClaimsReleased,
        Self::MandateGranted,
        Self::MandateAccepted,
        Self::MandateUsed,
        Self::MandateRevoked,
        Self::TokenExchanged,
        Self::ClientRegistered,
        Self::ClientChanged,
        Self::ClientDeleted,
        Self::KeyRotated,
        Self::RegisterImported,
        Self::AdminAction,
        Self::AuditPruned,
    ];

    /// The name in the log.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountCreated => "account.created",
            Self::AccountLocked => "account.locked",
            Self::AccountUnlocked => "account.unlocked",
            Self::AccountErased => "account.erased",
            Self::AccountExported => "account.exported",
            Self::PasskeyAdded => "passkey.added",
            Self::PasskeyRemoved => "passkey.removed",
            Self::RecoveryCodesGenerated => "recovery_codes.generated",
            Self::RecoveryCodeUsed => "recovery_code.used",
            Self::EidRecovery => "eid.recovery",
            Self::EmailVerified => "email.verified",
            Self::EidBound => "eid.bound",
            Self::SignIn => "signin",
            Self::StepUp => "stepup",
            Self::ConsentGiven => "consent.given",
            Self::ConsentRevoked => "consent.revoked",
            Self::ClaimsReleased => "claims.released",
            Self::MandateGranted => "mandate.granted",
            Self::MandateAccepted => "mandate.accepted",
            Self::MandateUsed => "mandate.used",
            Self::MandateRevoked => "mandate.revoked",
            Self::TokenExchanged => "token.exchanged",
            Self::ClientRegistered => "client.registered",
            Self::ClientChanged => "client.changed",
            Self::ClientDeleted => "client.deleted",
            Self::KeyRotated => "key.rotated",
            Self::RegisterImported => "register.imported",
            Self::AdminAction => "admin.action",
            Self::AuditPruned => "audit.pruned",
        }
    }

    /// The kind named `s`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The citizen the entry names (their own action).
    Citizen,
    /// A client (relying party), by id.
    Client(String),
    /// A client registering itself (RFC 7591), before it has an id.
    Registrant,
    /// An operator through the admin API, authenticated as this client.
    Admin(String),
    /// An operator at the command line.
    Operator,
    /// Civitas itself (retention, key schedule).
    System,
}

impl Actor {
    /// The form stored in the log: `citizen`, `client:<id>`, `registrant`,
    /// `admin:<id>`, `operator`, `system`.
    #[must_use]
    pub fn to_stored(&self) -> String {
        match self {
            Self::Citizen => "citizen".into(),
            Self::Client(id) => format!("client:{id}"),
            Self::Registrant => "registrant".into(),
            Self::Admin(id) => format!("admin:{id}"),
            Self::Operator => "operator".into(),
            Self::System => "system".into(),
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// Who did it.
    pub actor: Actor,
    /// The citizen it concerns, by internal id.
    pub account: Option<AccountId>,
    /// The client it concerns.
    pub client: Option<String>,
    /// Non-secret facts, as a JSON object.
    pub detail: Map<String, Value>,
}

impl Event {
    /// An event of `kind` by the citizen `account` (their own action).
    #[must_use]
    pub fn citizen(kind: Kind, account: &AccountId) -> Self {
        Self {
            kind,
            actor: Actor::Citizen,
            account: Some(account.clone()),
            client: None,
            detail: Map::new(),
        }
    }

    /// An event of `kind` caused by `actor`.
    #[must_use]
    pub fn by(kind: Kind, actor: Actor) -> Self {
        Self {
            kind,
            actor,
            account: None,
            client: None,
            detail: Map::new(),
        }
    }

    /// Names the citizen concerned.
    #[must_use]
    pub fn account(mut self, account: &AccountId) -> Self {
        self.account = Some(account.clone());
        self
    }

    /// Names the client concerned.
    #[must_use]
    pub fn client(mut self, client_id: &str) -> Self {
        self.client = Some(client_id.to_owned());
        self
    }

    /// Adds a fact. Never a secret, a token or a national identifier.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// `event`, followed, when an admin-API client caused it, by the
/// [`Kind::AdminAction`] entry of that call (`action`, and the account,
/// client and facts `event` names): both go into the transaction of the change, so an
/// admin call that changes something leaves exactly one admin entry with it.
#[must_use]
pub fn with_admin_action(event: Event, action: &str) -> Vec<Event> {
    let admin = match &event.actor {
        Actor::Admin(_) => Some(Event {
            kind: Kind::AdminAction,
            actor: event.actor.clone(),
            account: event.account.clone(),
            client: event.client.clone(),
            detail: {
                let mut d = event.detail.clone();
                d.insert("action".to_owned(), Value::from(action));
                d
            },
        }),
        _ => None,
    };
    std::iter::once(event).chain(admin).collect()
}

/// Writes `event` inside the caller's transaction `conn`: one INSERT,
/// which waits for no other writer. The entry is unsealed until
/// [`seal`] chains it (within a fraction of a second on a running
/// instance); if the transaction rolls back, the entry goes with it.
///
/// # Errors
/// If the database fails; the caller's transaction must then be dropped.
pub async fn record(
    conn: &mut sqlx::AnyConnection,
    event: &Event,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (event_id, occurred_at, kind, actor, account_id, client_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_event_id())
    .bind(now.0)
    .bind(event.kind.as_str())
    .bind(event.actor.to_stored())
    .bind(event.account.as_ref().map(|a| a.as_str().to_owned()))
    .bind(event.client.clone())
    .bind(Value::Object(event.detail.clone()).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An event id that sorts after every earlier one of this process (a
/// counter) and is unique across processes (random): entries written in
/// one second, as in one transaction, are sealed in the order written.
fn new_event_id() -> String {
    static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{n:012x}{}", random_token(10))
}

/// Entries sealed per transaction at most.
const SEAL_BATCH: i64 = 1_000;

/// Entries sealed per statement at most (four parameters each).
const SEAL_CHUNK: usize = 250;

/// `UPDATE … SET seq = CASE event_id WHEN $1 THEN $2 …` for `n` entries,
/// whose parameters are, per entry, its id, sequence number, previous hash
/// and hash. Placeholders only: no value is ever part of the text.
fn seal_statement(n: usize) -> String {
    use std::fmt::Write as _;
    let mut seq = String::from("CASE event_id");
    let mut prev = String::from("CASE event_id");
    let mut hash = String::from("CASE event_id");
    let mut ids = String::new();
    for i in 0..n {
        let p = 4 * i + 1;
        let _ = write!(seq, " WHEN ${p} THEN ${}", p + 1);
        let _ = write!(prev, " WHEN ${p} THEN ${}", p + 2);
        let _ = write!(hash, " WHEN ${p} THEN ${}", p + 3);
        let _ = write!(ids, "{}${p}", if i == 0 { "" } else { ", " });
    }
    format!(
        "UPDATE audit_log SET seq = {seq} END, prev_hash = {prev} END, hash = {hash} END \
         WHERE seq IS NULL AND event_id IN ({ids})"
    )
}

/// Chains the committed unsealed entries, oldest first, in batches: each
/// gets the next sequence number, the previous entry's hash and its own,
/// and the head moves on, in one transaction per batch under the head
/// row's lock (PostgreSQL) or the write lock (SQLite), so sealers on
/// several instances take turns. Returns how many were sealed.
///
/// # Errors
/// If the database fails; that batch stays unsealed then.
pub async fn seal(db: &Database) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = seal_batch(db).await?;
        total += n;
        if n < SEAL_BATCH.unsigned_abs() {
            return Ok(total);
        }
    }
}

async fn seal_batch(db: &Database) -> Result<u64, StoreError> {
    // An idle instance only reads (through the partial index of unsealed
    // entries): no write transaction, no head lock, no new row version of
    // the head five times a second.
    if sqlx::query("SELECT 1 AS pending FROM audit_log WHERE seq IS NULL LIMIT 1")
        .fetch_optional(db.pool())
        .await?
        .is_none()
    {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *tx)
        .await?;
    let mut seq: i64 = head.try_get("seq")?;
    let mut prev: String = head.try_get("hash")?;
    let rows = sqlx::query(
        "SELECT event_id, occurred_at, kind, actor, account_id, client_id, detail FROM audit_log \
         WHERE seq IS NULL ORDER BY occurred_at, event_id LIMIT $1",
    )
    .bind(SEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut sealed = Vec::with_capacity(rows.len());
    for r in &rows {
        seq += 1;
        let entry = chain::Sealed {
            seq,
            event_id: r.try_get("event_id")?,
            occurred_at: r.try_get("occurred_at")?,
            kind: r.try_get("kind")?,
            actor: r.try_get("actor")?,
            account_id: r.try_get("account_id")?,
            client_id: r.try_get("client_id")?,
            detail: r.try_get("detail")?,
            prev_hash: prev,
        };
        let hash = entry.hash();
        prev = hash.clone();
        sealed.push((entry, hash));
    }
    // A few statements per batch rather than one per entry: the batch holds
    // the head's lock (on SQLite, the database's write lock) briefly.
    for chunk in sealed.chunks(SEAL_CHUNK) {
        let sql = sqlx::AssertSqlSafe(seal_statement(chunk.len()));
        let mut q = sqlx::query(sql);
        for (entry, hash) in chunk {
            q = q
                .bind(&entry.event_id)
                .bind(entry.seq)
                .bind(&entry.prev_hash)
                .bind(hash);
        }
        q.execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Records `events` in order, inside the caller's transaction (see [`record`]).
///
/// # Errors
/// If the database fails; the caller's transaction must then be dropped.
pub async fn record_all(
    conn: &mut sqlx::AnyConnection,
    events: &[Event],
    now: UnixTime,
) -> Result<(), StoreError> {
    for e in events {
        record(conn, e, now).await?;
    }
    Ok(())
}

/// Records an event that changes nothing else (a failed step-up, an export)
/// on its own: one INSERT.
///
/// # Errors
/// If the database fails; nothing is recorded then.
pub async fn record_alone(db: &Database, event: &Event, now: UnixTime) -> Result<(), StoreError> {
    let _turn = db.write_turn().await?;
    let mut conn = db.pool().acquire().await?;
    record(&mut conn, event, now).await
}

/// Moves the entries of the unchained log of earlier versions
/// (`audit_events`) into the chain, oldest first, in one transaction. Run
/// at start-up; does nothing once that table is empty.
///
/// Only the account, the kind and the time move. The old free text is
/// dropped: it could hold names (a passkey's, for one), which the chain
/// would keep past the account's erasure. An entry enters the chain now
/// (its `occurred_at`), with its original time as `legacy_at`: it was not
/// protected before.
///
/// # Errors
/// If the database fails; nothing is moved then.
pub async fn adopt_legacy(db: &Database, now: UnixTime) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "SELECT event_id, account_id, kind, created_at FROM audit_events ORDER BY created_at, event_id",
    )
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let mut events = Vec::new();
    for r in &rows {
        // Instances starting together: each old entry moves once, by
        // whichever deletes it.
        let taken = sqlx::query("DELETE FROM audit_events WHERE event_id = $1")
            .bind(r.try_get::<String, _>("event_id")?)
            .execute(&mut *tx)
            .await?;
        if taken.rows_affected() != 1 {
            continue;
        }
        let account: Option<String> = r.try_get("account_id")?;
        let kind: String = r.try_get("kind")?;
        let at: i64 = r.try_get("created_at")?;
        // A kind's name is a word of the code; anything else is not kept.
        let legacy_kind = if !kind.is_empty()
            && kind.len() <= 64
            && kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            kind.as_str()
        } else {
            "unknown"
        };
        let mut event = Event::by(
            Kind::parse(&kind).unwrap_or(Kind::AdminAction),
            if account.is_some() {
                Actor::Citizen
            } else {
                Actor::Operator
            },
        )
        .with("legacy_kind", legacy_kind)
        .with("legacy_at", at);
        event.account = account.map(AccountId::new);
        events.push(event);
    }
    record_all(&mut tx, &events, now).await?;
    tx.commit().await?;
    Ok(events.len() as u64)
}
