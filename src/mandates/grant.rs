//! Granting and accepting mandates.
//!
//! A grant is checked ([`Mandates::check_grant`]) and then inserted
//! ([`Mandates::insert_grant`]) by one statement that checks again, as it
//! inserts, that the power it is granted from still holds: for a top-level
//! grant, that the granter is still a statutory representative; for a
//! sub-delegation, that the granter still holds the parent mandate and
//! that the parent and every mandate above it are accepted, unrevoked and
//! within their validity. A revocation committed before the insert leaves
//! no row.
//!
//! A revocation still in progress is not visible to that statement (on
//! PostgreSQL, whose statements see only what was committed when they
//! began). So a sub-delegation first locks its parent's row, and
//! [`super::revoke_cascade`] takes the same lock on each mandate before it
//! lists that mandate's children: a revocation that reached the parent
//! first makes the grant wait until it commits, and the insert then sees
//! it and stores nothing; a grant that locked the parent first commits
//! before the cascade lists the parent's children, and its row is revoked
//! with them. Either way no sub-delegation stays in force under a revoked
//! mandate. (On SQLite write transactions never overlap.)
//!
//! Nobody holds a mandate they granted: a grant addressed to the granter's
//! own identifier, or to anyone who granted a mandate further up its chain,
//! is refused, and so is an acceptance by the granter or by anyone up the
//! chain. "Anyone" is a person, not an account: one person may bind several
//! accounts through several eID schemes, and every account whose binding
//! has the same `person_hash` counts as that person ([`Mandates::selves`]).
//! An invitation mandate is accepted only with its token.

use sqlx::Row as _;

use super::store::{chain_cte, chain_holds, granted_by_any, lock_mandate};
use super::{ALL_POWERS, GrantRequest, Grantee, Mandate, MandateError, Mandates, valid_power_name};
use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::audit::{self, Actor, Event, Kind};
use crate::eid::PersonIdentifier;
use crate::secrets::{SecretHash, random_token};

/// A grant that passed every rule at the time of [`Mandates::check_grant`],
/// ready for [`Mandates::insert_grant`].
pub struct CheckedGrant {
    mandate: Mandate,
    person: Option<String>,
    invitation: Option<String>,
}

impl std::fmt::Debug for CheckedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedGrant")
            .field("mandate", &self.mandate)
            .field("by_invitation", &self.invitation.is_some())
            .finish_non_exhaustive()
    }
}

/// The columns a grant writes, in the order of the `$1`…`$12` it binds.
const INSERT: &str = "INSERT INTO mandates (mandate_id, org_id, representative_person, invitation_hash, powers, \
                      valid_from, valid_until, may_delegate, parent_id, granted_by, granted_at, min_level) \
                      SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 ";

/// A top-level grant: the granter (`$10`) is a statutory representative of
/// the organization (`$2`) as the insert happens.
const STATUTORY: &str = "WHERE EXISTS (SELECT 1 FROM org_representatives r \
                         JOIN eid_bindings b ON b.person_hash = r.person_hash \
                         WHERE r.org_id = $2 AND b.account_id = $10)";

/// A sub-delegation: the parent (`$9`) is the granter's (`$10`), of the same
/// organization, may be delegated, and it and every mandate above it hold
/// at `$13`, up to a root.
const DELEGATED: &str = "WHERE EXISTS (SELECT 1 FROM mandates p WHERE p.mandate_id = $9 AND p.org_id = $2 \
                         AND p.representative_account = $10 AND p.may_delegate = 1) \
                         AND NOT EXISTS (SELECT 1 FROM chain c JOIN mandates a ON a.mandate_id = c.link \
                         WHERE a.accepted_at IS NULL OR a.revoked_at IS NOT NULL OR a.valid_from > $13 \
                         OR (a.valid_until IS NOT NULL AND a.valid_until <= $13)) \
                         AND EXISTS (SELECT 1 FROM chain c JOIN mandates a ON a.mandate_id = c.link \
                         WHERE a.parent_id IS NULL)";

impl Mandates {
    /// Grants a mandate: [`Mandates::check_grant`], then
    /// [`Mandates::insert_grant`]. `granter_level` is the level of the
    /// granter's current sign-in. Returns the mandate and, for an
    /// invitation, the one-time invitation token (shown once; stored only
    /// as a hash).
    ///
    /// # Errors
    /// Every refusal of [`MandateError`]; nothing is stored then.
    pub async fn grant(
        &self,
        granter: &AccountId,
        granter_level: Level,
        req: GrantRequest,
    ) -> Result<(Mandate, Option<String>), MandateError> {
        let checked = self.check_grant(granter, granter_level, req).await?;
        self.insert_grant(checked).await
    }

    /// Checks a grant against every rule (see [`Mandates::grant`]); stores
    /// nothing.
    ///
    /// # Errors
    /// Every refusal of [`MandateError`].
    pub async fn check_grant(
        &self,
        granter: &AccountId,
        granter_level: Level,
        req: GrantRequest,
    ) -> Result<CheckedGrant, MandateError> {
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
        let person = match &req.grantee {
            Grantee::Person {
                country,
                person_identifier,
            } => Some(PersonIdentifier::parse(country, person_identifier)?),
            Grantee::Invitation => None,
        };
        let powers = self.powers_of(granter).await?;
        let mut valid_until = req.valid_until;
        let mut min_level = req.min_level;
        // Everyone who granted a mandate this one hangs from, and the granter.
        let mut givers = vec![granter.clone()];
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
                givers.extend(
                    self.ancestors(parent_id)
                        .await?
                        .into_iter()
                        .map(|a| a.granted_by),
                );
            }
        }
        let person = match person {
            Some(p) => {
                let hash = self.keys.person_hash(&p);
                for giver in &givers {
                    if self.person_hash_of(giver).await?.as_ref() == Some(&hash) {
                        return Err(MandateError::ToYourself);
                    }
                }
                Some(hash)
            }
            None => None,
        };
        let invitation = matches!(req.grantee, Grantee::Invitation).then(|| random_token(32));
        Ok(CheckedGrant {
            mandate: Mandate {
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
            },
            person,
            invitation,
        })
    }

    /// Stores a checked grant with one INSERT that holds only if the power
    /// it is granted from still holds now, after locking the parent of a
    /// sub-delegation (see the module), and records `mandate.granted` with
    /// it.
    ///
    /// # Errors
    /// [`MandateError::NotEntitled`] if that power ended since the check;
    /// nothing is stored then.
    pub async fn insert_grant(
        &self,
        checked: CheckedGrant,
    ) -> Result<(Mandate, Option<String>), MandateError> {
        let CheckedGrant {
            mandate,
            person,
            invitation,
        } = checked;
        let now = self.clock.now();
        let sql = match &mandate.parent {
            None => format!("{INSERT}{STATUTORY}"),
            Some(_) => format!("{}{INSERT}{DELEGATED}", chain_cte(9)),
        };
        let mut tx = self.db.begin().await?;
        if let Some(parent) = &mandate.parent {
            // Serialised with the parent's revocation (see the module).
            lock_mandate(&mut tx, parent).await?;
        }
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&mandate.id)
            .bind(&mandate.org_id)
            .bind(person)
            .bind(
                invitation
                    .as_ref()
                    .map(|t| SecretHash::of(t).as_str().to_owned()),
            )
            .bind(mandate.powers.join(" "))
            .bind(mandate.valid_from.0)
            .bind(mandate.valid_until.map(|u| u.0))
            .bind(i64::from(mandate.may_delegate))
            .bind(mandate.parent.clone())
            .bind(mandate.granted_by.as_str())
            .bind(mandate.granted_at.0)
            .bind(mandate.min_level.alias());
        if mandate.parent.is_some() {
            insert = insert.bind(now.0);
        }
        if insert.execute(&mut *tx).await?.rows_affected() != 1 {
            return Err(MandateError::NotEntitled);
        }
        let event = Event::citizen(Kind::MandateGranted, &mandate.granted_by)
            .with("mandate", mandate.id.as_str())
            .with("org", mandate.org_id.as_str())
            .with("powers", mandate.powers.join(" "))
            .with("by_invitation", invitation.is_some())
            .with("min_level", mandate.min_level.alias());
        audit::record(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok((mandate, invitation))
    }

    /// The representative accepts a mandate addressed to them by national
    /// identifier (`mandate_id`) or an invitation mandate by its token
    /// (`invitation`); an invitation mandate is never accepted by its id.
    /// Either way their identity must be proven by eID, the mandate and
    /// every mandate above it must still hold, and they must not have
    /// granted it or any mandate above it.
    ///
    /// # Errors
    /// [`MandateError::NotFound`], [`MandateError::NotForYou`],
    /// [`MandateError::ToYourself`], [`MandateError::Ended`].
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
        let open = "accepted_at IS NULL AND revoked_at IS NULL";
        let row = match (mandate_id, invitation) {
            (Some(id), _) => {
                let sql = format!(
                    "SELECT mandate_id, representative_person FROM mandates \
                     WHERE mandate_id = $1 AND representative_person IS NOT NULL AND {open}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(self.db.pool())
                    .await?
            }
            (None, Some(token)) => {
                let sql = format!(
                    "SELECT mandate_id, representative_person FROM mandates WHERE invitation_hash = $1 AND {open}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(SecretHash::of(token).as_str())
                    .fetch_optional(self.db.pool())
                    .await?
            }
            (None, None) => None,
        }
        .ok_or(MandateError::NotFound)?;
        let id: String = row.try_get("mandate_id")?;
        if let Some(addressed) = row.try_get::<Option<String>, _>("representative_person")?
            && addressed != person
        {
            return Err(MandateError::NotForYou);
        }
        let mandate = self.get(&id).await?.ok_or(MandateError::NotFound)?;
        let above = match &mandate.parent {
            Some(parent) => self.ancestors(parent).await?,
            None => Vec::new(),
        };
        // The accepting account, and every other account of the same person.
        let selves = self.selves(account).await?;
        if selves.contains(&mandate.granted_by) || granted_by_any(&above, &selves) {
            return Err(MandateError::ToYourself);
        }
        let ended = mandate.valid_until.is_some_and(|u| u <= now);
        if ended || (mandate.parent.is_some() && !chain_holds(&above, now)) {
            return Err(MandateError::Ended);
        }
        let mut tx = self.db.begin().await?;
        let done = sqlx::query(
            "UPDATE mandates SET representative_account = $2, accepted_at = $3, invitation_hash = NULL \
             WHERE mandate_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND granted_by <> $2",
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

    /// Ends the unaccepted invitation mandate whose token was presented
    /// where it may have been logged (in a URL path, as links of earlier
    /// versions carried it): revoked by the system, recorded on the
    /// granter's account. Returns whether there was one.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn end_exposed_invitation(&self, token: &str) -> Result<bool, MandateError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row = sqlx::query(
            "SELECT mandate_id, org_id, granted_by FROM mandates \
             WHERE invitation_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(SecretHash::of(token).as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: String = row.try_get("mandate_id")?;
        let ended = sqlx::query(
            "UPDATE mandates SET revoked_at = $2, revoked_by = $3, invitation_hash = NULL \
             WHERE mandate_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(&id)
        .bind(now.0)
        .bind(Actor::System.to_stored())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ended != 1 {
            return Ok(false);
        }
        let granter = AccountId::new(row.try_get::<String, _>("granted_by")?);
        let event = Event::by(Kind::MandateRevoked, Actor::System)
            .account(&granter)
            .with("mandate", id.as_str())
            .with("org", row.try_get::<String, _>("org_id")?)
            .with("delegated_ended", 0)
            .with("reason", "invitation-link-exposed");
        audit::record(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Is `text` shaped like an invitation token (43 base64url characters)?
#[must_use]
pub fn is_invitation_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
