//! Businesses act through people: organizations, their statutory
//! representatives (from the business register) and representation
//! mandates, as first-class records.
//!
//! - **Statutory power** comes from the register: a citizen whose eID-proven
//!   identity matches a listed representative holds every power of the
//!   organization, and may delegate. It is read from the register at every
//!   use, so a representative removed by a re-import loses it at once.
//! - **Granted mandates** name powers (`tax.file`, `payments.pay`, …), a
//!   validity, whether the representative may delegate further, and the
//!   minimum level of assurance needed to use them. A statutory
//!   representative (eID-proven, signed in at least at substantial) grants
//!   them; a holder who may delegate sub-delegates a subset of their own
//!   powers, never more and never past their own validity. A
//!   sub-delegation counts only while every mandate above it holds.
//!   Revoking a mandate revokes everything delegated from it.
//! - **Nobody holds a mandate they granted**, directly or further up its
//!   chain, through whichever of their accounts: accounts bound by eID to
//!   the same person (`person_hash`, whatever the scheme) count as one
//!   ([`grant`]).
//!
//! Every grant, acceptance and revocation goes to the audit log.

mod grant;
mod operator;
pub mod register;
mod store;

pub use grant::{CheckedGrant, is_invitation_token};
pub use operator::{Organization, revoke_cascade};

use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::audit::{self, Event, Kind};
use crate::clock::{SharedClock, UnixTime};
use crate::eid::{EidKeys, IdentifierError};
use crate::store::{Database, StoreError};
use store::{columns_of, from_row};

/// The power a statutory representative holds: all of them.
pub const ALL_POWERS: &str = "*";

/// Why a mandate operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MandateError {
    /// The granter holds no power over the organization (or none that may be delegated).
    #[error("you cannot grant mandates for this organization")]
    NotEntitled,
    /// Statutory grants need an eID-proven citizen signed in at substantial or higher.
    #[error(
        "granting a mandate needs your identity proven by eID and a sign-in at level substantial or higher"
    )]
    InsufficientLevel,
    /// A sub-delegation asks for powers its parent does not have.
    #[error("a sub-delegation can only pass on powers you hold")]
    ScopeTooWide,
    /// A sub-delegation outlives its parent.
    #[error("a sub-delegation cannot outlive your own mandate")]
    BeyondValidity,
    /// The parent mandate does not allow delegation.
    #[error("your mandate does not allow you to delegate")]
    NoDelegation,
    /// No such mandate, organization or invitation.
    #[error("no such mandate")]
    NotFound,
    /// The mandate is not addressed to this citizen.
    #[error("this mandate is addressed to someone else")]
    NotForYou,
    /// A grant to oneself, or an acceptance by its granter (or by someone
    /// who granted a mandate further up its chain).
    #[error(
        "you cannot give a mandate to yourself, nor accept one given by you (directly or further up its chain)"
    )]
    ToYourself,
    /// The mandate, or one it was delegated from, is no longer valid.
    #[error("this mandate, or one it was delegated from, has ended")]
    Ended,
    /// The addressee's national identifier cannot be used.
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    /// Input that cannot be accepted.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MandateError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// To whom a mandate is granted.
#[derive(Clone)]
pub enum Grantee {
    /// A citizen named by national person identifier (matched to their eID),
    /// in any spelling [`crate::eid::PersonIdentifier::parse`] accepts.
    Person {
        /// Country of the identifier.
        country: String,
        /// The identifier (never stored in the clear; made canonical, then hashed).
        person_identifier: String,
    },
    /// Whoever accepts the invitation link after enrolling their eID.
    Invitation,
}

impl std::fmt::Debug for Grantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Person { country, .. } => write!(f, "Person({country}, …)"),
            Self::Invitation => f.write_str("Invitation"),
        }
    }
}

/// A request to grant a mandate.
#[derive(Debug, Clone)]
pub struct GrantRequest {
    /// The organization (`CC:code`).
    pub org_id: String,
    /// To whom.
    pub grantee: Grantee,
    /// The powers.
    pub powers: Vec<String>,
    /// Until when (None: until revoked, or the parent's end).
    pub valid_until: Option<UnixTime>,
    /// May the representative delegate further?
    pub may_delegate: bool,
    /// The lowest level of assurance at which it may be used.
    pub min_level: Level,
    /// For a sub-delegation: the granter's own mandate.
    pub parent: Option<String>,
}

/// A stored mandate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mandate {
    /// Its id (the mandate reference in tokens).
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// The representative, once accepted.
    pub representative: Option<AccountId>,
    /// The powers.
    pub powers: Vec<String>,
    /// Valid from.
    pub valid_from: UnixTime,
    /// Valid until, if limited.
    pub valid_until: Option<UnixTime>,
    /// May the representative delegate further?
    pub may_delegate: bool,
    /// The mandate it was delegated from.
    pub parent: Option<String>,
    /// Who granted it.
    pub granted_by: AccountId,
    /// When.
    pub granted_at: UnixTime,
    /// When the representative accepted it.
    pub accepted_at: Option<UnixTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
    /// Lowest usable level of assurance.
    pub min_level: Level,
}

impl Mandate {
    /// Is this mandate itself usable at `now` (accepted, not revoked, within
    /// validity)? A sub-delegation counts only if every mandate above it
    /// is, too: [`Mandates::powers_of`] checks the whole chain.
    #[must_use]
    pub fn is_valid(&self, now: UnixTime) -> bool {
        self.accepted_at.is_some()
            && self.revoked_at.is_none()
            && self.valid_from <= now
            && self.valid_until.is_none_or(|u| now < u)
    }
}

/// A power a citizen holds over an organization now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Power {
    /// The organization.
    pub org_id: String,
    /// Its name.
    pub org_name: String,
    /// The powers (`*` for statutory representatives).
    pub powers: Vec<String>,
    /// `statutory:<org>` or the mandate id.
    pub mandate_ref: String,
    /// May it be delegated?
    pub may_delegate: bool,
    /// Until when.
    pub valid_until: Option<UnixTime>,
    /// Lowest usable level of assurance.
    pub min_level: Level,
}

impl Power {
    /// Does this power cover `requested` at `level`?
    #[must_use]
    pub fn covers(&self, requested: &[String], level: Level) -> bool {
        level >= self.min_level
            && (self.powers.iter().any(|p| p == ALL_POWERS)
                || requested.iter().all(|r| self.powers.contains(r)))
    }
}

fn valid_power_name(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Organizations, representatives and mandates.
#[derive(Debug, Clone)]
pub struct Mandates {
    db: Database,
    keys: EidKeys,
    clock: SharedClock,
}

impl Mandates {
    /// The service.
    #[must_use]
    pub fn new(db: Database, keys: EidKeys, clock: SharedClock) -> Self {
        Self { db, keys, clock }
    }

    /// Every power `account` holds now: statutory ones from the register
    /// (through its eID binding), and accepted, unrevoked, current mandates
    /// whose every ancestor along `parent_id` is accepted, unrevoked and
    /// current too, and that no account of the same person (by eID,
    /// [`Mandates::selves`]) granted, nor any mandate above it.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn powers_of(&self, account: &AccountId) -> Result<Vec<Power>, MandateError> {
        let now = self.clock.now();
        let mut out = Vec::new();
        if let Some(hash) = self.person_hash_of(account).await? {
            let rows = sqlx::query(
                "SELECT o.org_id, o.name FROM org_representatives r JOIN organizations o ON o.org_id = r.org_id \
                 WHERE r.person_hash = $1 ORDER BY o.name",
            )
            .bind(hash)
            .fetch_all(self.db.pool())
            .await?;
            for r in rows {
                let org_id: String = r.try_get("org_id")?;
                out.push(Power {
                    mandate_ref: format!("statutory:{org_id}"),
                    org_id,
                    org_name: r.try_get("name")?,
                    powers: vec![ALL_POWERS.to_owned()],
                    may_delegate: true,
                    valid_until: None,
                    min_level: Level::Substantial,
                });
            }
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {}, o.name AS org_name FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
             WHERE m.representative_account = $1 AND m.revoked_at IS NULL ORDER BY m.granted_at",
            columns_of("m"),
        ));
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .fetch_all(self.db.pool())
            .await?;
        let selves = if rows.is_empty() {
            Vec::new()
        } else {
            self.selves(account).await?
        };
        for r in rows {
            let m = from_row(&r)?;
            if self.holds(&m, &selves, now).await? {
                out.push(Power {
                    org_id: m.org_id.clone(),
                    org_name: r.try_get("org_name")?,
                    powers: m.powers.clone(),
                    mandate_ref: m.id.clone(),
                    may_delegate: m.may_delegate,
                    valid_until: m.valid_until,
                    min_level: m.min_level,
                });
            }
        }
        Ok(out)
    }

    /// Revokes a mandate and, transitively, everything delegated from it.
    /// Allowed to its granter, its representative, and the organization's
    /// statutory representatives. Returns how many mandates ended.
    ///
    /// # Errors
    /// [`MandateError::NotFound`] or [`MandateError::NotEntitled`].
    pub async fn revoke(&self, by: &AccountId, mandate_id: &str) -> Result<usize, MandateError> {
        let now = self.clock.now();
        let m = self.get(mandate_id).await?.ok_or(MandateError::NotFound)?;
        let statutory = self
            .powers_of(by)
            .await?
            .iter()
            .any(|p| p.org_id == m.org_id && p.mandate_ref.starts_with("statutory:"));
        if !(m.granted_by == *by || m.representative.as_ref() == Some(by) || statutory) {
            return Err(MandateError::NotEntitled);
        }
        let mut tx = self.db.begin().await?;
        let ended =
            usize::try_from(operator::revoke_cascade(&mut tx, &m.id, now, by.as_str()).await?)
                .unwrap_or(usize::MAX);
        let event = Event::citizen(Kind::MandateRevoked, by)
            .with("mandate", m.id.as_str())
            .with("org", m.org_id.as_str())
            .with("delegated_ended", ended.saturating_sub(1));
        audit::record(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(ended)
    }
}
