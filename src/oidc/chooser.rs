//! The representation chooser: the step of an authorization request where
//! the citizen chooses whom they act for (`docs/representation.md`).
//!
//! A choice belongs to the account that made it, at the level of assurance
//! its session had (protocol review H2, citizen review M2). A pending request
//! is known by its handle alone and any browser can resume it; so a choice
//! made by another account, or by this one at another level, is no choice:
//! the chooser comes again, for the session at hand. When the code is issued
//! the power is checked again for the session's account and level; a power
//! that has ended meanwhile brings the chooser back (it then no longer
//! offers that organization). The token endpoint checks once more when the
//! code is redeemed (`token.rs`).

use serde::{Deserialize, Serialize};

use super::authorize::{Outcome, PendingAuthorization, pending_key, refused};
use super::representation::Representation;
use super::{OAuthError, Provider};
use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::clients::Client;
use crate::ephemeral::Ephemeral as _;
use crate::sessions::Session;

/// The representation chooser.
#[derive(Debug, Clone)]
pub struct Chooser {
    /// The pending request's handle.
    pub handle: String,
    /// Anti-forgery token of the form.
    pub csrf: String,
    /// The client's display name.
    pub client_name: String,
    /// The organizations the citizen may act for here: mandate reference,
    /// organization name, powers.
    pub options: Vec<(String, String, String)>,
    /// The powers the service asks for.
    pub requested: Vec<String>,
    /// Where the answer may go (the form's CSP must allow it).
    pub redirect_uri: String,
}

/// A choice made on the chooser, and who made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepresentChoice {
    /// The account whose session chose.
    pub account_id: AccountId,
    /// The level of that session (alias), at which the power was checked.
    pub level: String,
    /// The organization chosen; `None` for "myself".
    pub representation: Option<Representation>,
}

impl RepresentChoice {
    /// Was this choice made by `session`'s account, at its current level?
    #[must_use]
    pub fn made_by(&self, session: &Session) -> bool {
        self.account_id == session.account_id && self.level == level_of(session).alias()
    }
}

fn level_of(session: &Session) -> Level {
    Level::parse(&session.acr).unwrap_or(Level::Low)
}

/// What the choice of a pending request is worth for a session, now.
#[derive(Debug)]
pub(super) enum Checked {
    /// Representation is not asked for, or "myself" was chosen, or the
    /// organization chosen: what the code carries.
    Holds(Option<Representation>),
    /// No choice of this session's account and level, or its power has
    /// ended: the chooser, for this session.
    Again(Outcome),
}

impl Provider {
    /// The chooser step of a request: `Some(outcome)` while representation is
    /// asked for and the session's account has not chosen at its level.
    pub(super) async fn chooser_step(
        &self,
        pending: &PendingAuthorization,
        handle: Option<&str>,
        client: &Client,
        session: &Session,
    ) -> Result<Option<Outcome>, OAuthError> {
        if pending.represent.is_none() {
            return Ok(None);
        }
        match &pending.representation_choice {
            Some(c) if c.made_by(session) => return Ok(None),
            // Protocol review H2: a request link opened by another account.
            Some(c) if c.account_id != session.account_id => tracing::warn!(
                client_id = %pending.client_id,
                "a representation choice made by another account was set aside"
            ),
            _ => {}
        }
        self.chooser_page(pending, handle, client, session)
            .await
            .map(Some)
    }

    /// The chooser for `session` (or `interaction_required` with
    /// `prompt=none`), offering the powers it holds now.
    async fn chooser_page(
        &self,
        pending: &PendingAuthorization,
        handle: Option<&str>,
        client: &Client,
        session: &Session,
    ) -> Result<Outcome, OAuthError> {
        let requested = pending.represent.clone().unwrap_or_default();
        if pending.prompt.none {
            return self
                .finish_with_error(
                    pending,
                    handle,
                    "interaction_required",
                    "the citizen must choose whom they act for",
                )
                .await;
        }
        let level = level_of(session);
        let options = self
            .mandates
            .powers_of(&session.account_id)
            .await
            .map_err(|e| OAuthError::Internal(e.to_string()))?
            .into_iter()
            .filter(|p| p.covers(&requested, level))
            .map(|p| {
                let powers = if requested.is_empty() {
                    p.powers.join(" ")
                } else {
                    requested.join(" ")
                };
                (p.mandate_ref, p.org_name, powers)
            })
            .collect();
        let handle = self.keep_pending(pending, handle).await?;
        Ok(Outcome::ChooseRepresentation(Chooser {
            handle,
            csrf: pending.csrf.clone(),
            client_name: client
                .metadata
                .client_name
                .clone()
                .unwrap_or_else(|| client.client_id.to_string()),
            options,
            requested,
            redirect_uri: pending.redirect_uri.clone(),
        }))
    }

    /// The representation a code issued now to `session` carries: the
    /// session's own choice, its power checked again for its account at its
    /// level; else the chooser again.
    pub(super) async fn check_choice(
        &self,
        pending: &PendingAuthorization,
        handle: Option<&str>,
        client: &Client,
        session: &Session,
    ) -> Result<Checked, OAuthError> {
        if let Some(outcome) = self.chooser_step(pending, handle, client, session).await? {
            return Ok(Checked::Again(outcome));
        }
        let chosen = match (&pending.represent, &pending.representation_choice) {
            (Some(_), Some(choice)) => choice.representation.as_ref(),
            _ => None, // not asked for
        };
        let Some(r) = chosen else {
            return Ok(Checked::Holds(None)); // not asked for, or "myself"
        };
        if self
            .power_holds(&session.account_id, r, level_of(session))
            .await?
        {
            return Ok(Checked::Holds(Some(r.clone())));
        }
        self.chooser_page(pending, handle, client, session)
            .await
            .map(Checked::Again)
    }

    /// The citizen chose whom they act for (`choice`: `self` or a mandate
    /// reference offered on the chooser). The choice is checked again
    /// against the mandates held now, and recorded with the account that
    /// made it and its level.
    pub async fn choose_representation(
        &self,
        handle: &str,
        csrf: &str,
        choice: &str,
        session: Option<Session>,
    ) -> Result<Outcome, OAuthError> {
        let (mut pending, client, session) = match self.form_context(handle, csrf, session).await? {
            Ok(context) => context,
            Err(outcome) => return Ok(outcome),
        };
        let requested = pending.represent.clone().unwrap_or_default();
        let level = level_of(&session);
        let chosen = if choice == "self" {
            None
        } else {
            let power = self
                .mandates
                .powers_of(&session.account_id)
                .await
                .map_err(|e| OAuthError::Internal(e.to_string()))?
                .into_iter()
                .find(|p| p.mandate_ref == choice && p.covers(&requested, level));
            let Some(p) = power else {
                return Ok(refused(
                    "You cannot act for this organization",
                    "Your mandate does not cover what this service asks for, or it has ended.",
                ));
            };
            let powers = if requested.is_empty() {
                p.powers.clone()
            } else {
                requested.clone()
            };
            Some(Representation {
                org_id: p.org_id,
                org_name: p.org_name,
                powers,
                mandate: p.mandate_ref,
            })
        };
        pending.representation_choice = Some(RepresentChoice {
            account_id: session.account_id.clone(),
            level: level.alias().to_owned(),
            representation: chosen,
        });
        let bytes =
            serde_json::to_vec(&pending).map_err(|e| OAuthError::Internal(e.to_string()))?;
        self.cache
            .put(&pending_key(handle), &bytes, super::authorize::PENDING_TTL)
            .await?;
        self.proceed(pending, Some(handle), &client, Some(session))
            .await
    }
}
