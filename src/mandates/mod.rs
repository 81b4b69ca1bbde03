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
//!   powers, never more and never past their own validity. Revoking a
//!   mandate revokes everything delegated from it.
//!
//! Every grant, acceptance and revocation goes to the audit log.

mod operator;
pub mod register;

pub use operator::{Organization, revoke_cascade};

use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::audit::{self, Event, Kind};
use crate::clock::{SharedClock, UnixTime};
use crate::eid::{EidKeys, IdentifierError, PersonIdentifier};
use crate::secrets::{SecretHash, random_token};
use crate::store::{Database, StoreError, flag};

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
    /// Input that cannot be accepted.
    #[error("{0}")]
    Invalid(String),
    /// The addressee's national identifier cannot be used.
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
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
    /// Usable at `now` (accepted, not revoked, within validity)?
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

const COLUMNS: &str = "mandate_id, org_id, representative_account, powers, valid_from, valid_until, may_delegate, parent_id, \
                       granted_by, granted_at, accepted_at, revoked_at, min_level";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Mandate, StoreError> {
    let powers: String = r.try_get("powers")?;
    let level: String = r.try_get("min_level")?;
    Ok(Mandate {
        id: r.try_get("mandate_id")?,
        org_id: r.try_get("org_id")?,
        representative: r
            .try_get::<Option<String>, _>("representative_account")?
            .map(AccountId::new),
        powers: powers
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        valid_from: UnixTime(r.try_get("valid_from")?),
        valid_until: r.try_get::<Option<i64>, _>("valid_until")?.map(UnixTime),
        may_delegate: flag(r.try_get("may_delegate")?),
        parent: r.try_get("parent_id")?,
        granted_by: AccountId::new(r.try_get::<String, _>("granted_by")?),
        granted_at: UnixTime(r.try_get("granted_at")?),
        accepted_at: r.try_get::<Option<i64>, _>("accepted_at")?.map(UnixTime),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(UnixTime),
        min_level: Level::parse(&level)
            .ok_or_else(|| StoreError::Corrupt("mandate level".into()))?,
    })
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

    /// The mandate with this id.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn get(&self, id: &str) -> Result<Option<Mandate>, MandateError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mandates WHERE mandate_id = $1"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|r| from_row(&r)).transpose()?)
    }

    async fn person_hash_of(&self, account: &AccountId) -> Result<Option<String>, MandateError> {
        let row = sqlx::query("SELECT person_hash FROM eid_bindings WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>("person_hash"))
            .transpose()?
            .flatten())
    }

    /// Every power `account` holds now: statutory ones from the register
    /// (through its eID binding), and accepted, unrevoked, current mandates.
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
            "SELECT {COLUMNS}, o.name AS org_name FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
             WHERE m.representative_account = $1 AND m.revoked_at IS NULL ORDER BY m.granted_at",
        ));
        let sql = sqlx::AssertSqlSafe(
            sql.0
                .replace("mandate_id, org_id,", "m.mandate_id, m.org_id,"),
        );
        for r in sqlx::query(sql)
            .bind(account.as_str())
            .fetch_all(self.db.pool())
            .await?
        {
            let m = from_row(&r)?;
            if m.is_valid(now) {
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

    /// Grants a mandate. `granter_level` is the level of the granter's
    /// current sign-in. Returns the mandate and, for an invitation, the
    /// one-time invitation token (shown once; stored only as a hash).
    ///
    /// # Errors
    /// Every refusal of [`MandateError`]; nothing is stored then.
    pub async fn grant(
        &self,
        granter: &AccountId,
        granter_level: Level,
        req: GrantRequest,
    ) -> Result<(Mandate, Option<String>), MandateError> {
        let now = self.clock.now();
        if req.powers.is_empty()
            || req
                .powers
                .iter()
                .any(|p| !valid_power_name(p) || p == ALL_POWERS)
        {
            return Err(MandateError::Invalid(
                "name at least one power (letters, digits, `.`, `_`, `-`)".into(),
            ));
        }
        if req.valid_until.is_some_and(|u| u <= now) {
            return Err(MandateError::Invalid(
                "the mandate would already have ended".into(),
            ));
        }
        let powers = self.powers_of(granter).await?;
        let mut valid_until = req.valid_until;
        let mut min_level = req.min_level;
        match &req.parent {
            None => {
                // A statutory representative, proven by eID, signed in at substantial or more.
                if !powers
                    .iter()
                    .any(|p| p.org_id == req.org_id && p.mandate_ref.starts_with("statutory:"))
                {
                    return Err(MandateError::NotEntitled);
                }
                if granter_level < Level::Substantial {
                    return Err(MandateError::InsufficientLevel);
                }
            }
            Some(parent_id) => {
                let parent = powers
                    .iter()
                    .find(|p| p.mandate_ref == *parent_id && p.org_id == req.org_id)
                    .ok_or(MandateError::NotEntitled)?;
                if !parent.may_delegate {
                    return Err(MandateError::NoDelegation);
                }
                if !parent.covers(&req.powers, Level::High) {
                    return Err(MandateError::ScopeTooWide);
                }
                if granter_level < parent.min_level {
                    return Err(MandateError::InsufficientLevel);
                }
                match (parent.valid_until, valid_until) {
                    (Some(p), Some(c)) if c > p => return Err(MandateError::BeyondValidity),
                    (Some(p), None) => valid_until = Some(p),
                    _ => {}
                }
                min_level = min_level.max(parent.min_level);
            }
        }
        let (person, invitation) = match &req.grantee {
            Grantee::Person {
                country,
                person_identifier,
            } => {
                let person = PersonIdentifier::parse(country, person_identifier)?;
                (Some(self.keys.person_hash(&person)), None)
            }
            Grantee::Invitation => (None, Some(random_token(32))),
        };
        let mandate = Mandate {
            id: random_token(16),
            org_id: req.org_id.clone(),
            representative: None,
            powers: req.powers.clone(),
            valid_from: now,
            valid_until,
            may_delegate: req.may_delegate,
            parent: req.parent.clone(),
            granted_by: granter.clone(),
            granted_at: now,
            accepted_at: None,
            revoked_at: None,
            min_level,
        };
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO mandates (mandate_id, org_id, representative_person, invitation_hash, powers, valid_from, \
             valid_until, may_delegate, parent_id, granted_by, granted_at, min_level) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&mandate.id)
        .bind(&mandate.org_id)
        .bind(person)
        .bind(invitation.as_ref().map(|t| SecretHash::of(t).as_str().to_owned()))
        .bind(mandate.powers.join(" "))
        .bind(now.0)
        .bind(valid_until.map(|u| u.0))
        .bind(i64::from(mandate.may_delegate))
        .bind(mandate.parent.clone())
        .bind(granter.as_str())
        .bind(now.0)
        .bind(min_level.alias())
        .execute(&mut *tx)
        .await?;
        let event = Event::citizen(Kind::MandateGranted, granter)
            .with("mandate", mandate.id.as_str())
            .with("org", mandate.org_id.as_str())
            .with("powers", mandate.powers.join(" "))
            .with("by_invitation", invitation.is_some())
            .with("min_level", min_level.alias());
        audit::record(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok((mandate, invitation))
    }

    /// The representative accepts a mandate addressed to them by national
    /// identifier (`mandate_id`) or by invitation (`invitation` token). Either
    /// way their identity must be proven by eID.
    ///
    /// # Errors
    /// [`MandateError::NotFound`], [`MandateError::NotForYou`].
    pub async fn accept(
        &self,
        account: &AccountId,
        mandate_id: Option<&str>,
        invitation: Option<&str>,
    ) -> Result<Mandate, MandateError> {
        let now = self.clock.now();
        let person = self
            .person_hash_of(account)
            .await?
            .ok_or(MandateError::NotForYou)?;
        let row = match (mandate_id, invitation) {
            (Some(id), _) => sqlx::query("SELECT mandate_id, representative_person FROM mandates WHERE mandate_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?,
            (None, Some(token)) => sqlx::query("SELECT mandate_id, representative_person FROM mandates WHERE invitation_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(SecretHash::of(token).as_str())
                .fetch_optional(self.db.pool())
                .await?,
            (None, None) => None,
        }
        .ok_or(MandateError::NotFound)?;
        let id: String = row.try_get("mandate_id")?;
        if let Some(addressed) = row.try_get::<Option<String>, _>("representative_person")?
            && addressed != person
        {
            return Err(MandateError::NotForYou);
        }
        let mut tx = self.db.begin().await?;
        let done = sqlx::query(
            "UPDATE mandates SET representative_account = $2, accepted_at = $3, invitation_hash = NULL \
             WHERE mandate_id = $1 AND accepted_at IS NULL",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(MandateError::NotFound);
        }
        let event = Event::citizen(Kind::MandateAccepted, account).with("mandate", id.as_str());
        audit::record(&mut tx, &event, now).await?;
        tx.commit().await?;
        self.get(&id).await?.ok_or(MandateError::NotFound)
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

impl Mandates {
    /// Mandates `account` granted that are still in force, with the organization's name.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn granted_by(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(Mandate, String)>, MandateError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, o.name AS org_name FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
             WHERE m.granted_by = $1 AND m.revoked_at IS NULL ORDER BY m.granted_at"
        ));
        let sql = sqlx::AssertSqlSafe(
            sql.0
                .replace("mandate_id, org_id,", "m.mandate_id, m.org_id,"),
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((from_row(r)?, r.try_get::<String, _>("org_name")?)))
            .collect()
    }

    /// Mandates addressed to `account` (by its eID-proven identifier) and not
    /// yet accepted.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn pending_for(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(Mandate, String)>, MandateError> {
        let Some(person) = self.person_hash_of(account).await? else {
            return Ok(Vec::new());
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, o.name AS org_name FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
             WHERE m.representative_person = $1 AND m.accepted_at IS NULL AND m.revoked_at IS NULL ORDER BY m.granted_at"
        ));
        let sql = sqlx::AssertSqlSafe(
            sql.0
                .replace("mandate_id, org_id,", "m.mandate_id, m.org_id,"),
        );
        let rows = sqlx::query(sql)
            .bind(person)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((from_row(r)?, r.try_get::<String, _>("org_name")?)))
            .collect()
    }
}
