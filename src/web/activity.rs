//! The citizen's transparency log (`/account/activity`): every audit entry
//! about their account, newest first, in words, with which services
//! received which data and on which legal basis. The account page shows the
//! newest few with the same wording.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{PageError, State as AppState, pages};
use crate::audit::{Entry, Kind};
use crate::oidc::OAuthError;

/// Entries per page.
const PAGE: i64 = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/account/activity", get(activity))
}

/// One line of the log, in words.
pub(crate) struct Line {
    pub(crate) when: String,
    pub(crate) what: String,
    /// The service concerned, by its name.
    pub(crate) service: Option<String>,
    /// Details: the data shared, the level reached, …
    pub(crate) details: Vec<String>,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    lines: Vec<Line>,
    older: Option<i64>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    before: Option<i64>,
}

async fn activity(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Page>,
) -> Result<Response, PageError> {
    let Some(session) = super::authorize::full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let entries = crate::audit::query::for_account_before(
        &app.db,
        &session.account_id,
        q.before.unwrap_or(i64::MAX),
        PAGE,
    )
    .await
    .map_err(OAuthError::from)?;
    let older = (entries.len() == usize::try_from(PAGE).unwrap_or(usize::MAX))
        .then(|| entries.last().and_then(|e| e.seq))
        .flatten();
    let lines = describe_all(&app, &entries).await?;
    Ok(pages::render(&ActivityPage { lines, older }))
}

/// The entries in words, naming each client by its registered name.
pub(crate) async fn describe_all(
    app: &AppState,
    entries: &[Entry],
) -> Result<Vec<Line>, PageError> {
    let mut names: HashMap<String, String> = HashMap::new();
    for id in entries.iter().filter_map(|e| e.client_id.as_deref()) {
        if !names.contains_key(id) {
            let name = app
                .clients
                .get(id)
                .await
                .map_err(OAuthError::from)?
                .and_then(|c| c.metadata.client_name)
                .unwrap_or_else(|| format!("a service that no longer exists ({id})"));
            names.insert(id.to_owned(), name);
        }
    }
    Ok(entries
        .iter()
        .map(|e| describe(e, e.client_id.as_ref().and_then(|c| names.get(c)).cloned()))
        .collect())
}

fn list(e: &Entry, key: &str) -> Vec<String> {
    e.detail[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn describe(e: &Entry, service: Option<String>) -> Line {
    let fact = |k: &str| e.fact(k).unwrap_or("").to_owned();
    let mut details = Vec::new();
    let what = match Kind::parse(&e.kind) {
        Some(Kind::ClaimsReleased) => {
            let claims = list(e, "claims");
            details.push(if claims.is_empty() {
                "Shared: only a pseudonymous identifier".to_owned()
            } else {
                format!("Shared: {}", claims.join(", "))
            });
            for v in e.detail["verified_claims"].as_array().into_iter().flatten() {
                details.push(format!(
                    "Verified {} (legal basis: {})",
                    v["claim"].as_str().unwrap_or(""),
                    v["legal_basis"].as_str().unwrap_or("")
                ));
            }
            details.push(format!("Level of assurance: {}", level_name(&fact("acr"))));
            "You signed in to a service, which received your data".to_owned()
        }
        Some(Kind::SignIn) => {
            details.push(format!("Level of assurance: {}", fact("acr")));
            "You signed in with a passkey".to_owned()
        }
        Some(Kind::ConsentGiven) => {
            details.push(format!("Scopes: {}", fact("scope")));
            "You agreed to share data with a service".to_owned()
        }
        Some(Kind::ConsentRevoked) => "You stopped sharing data with a service".to_owned(),
        Some(Kind::AccountCreated) => "You created your account".to_owned(),
        Some(Kind::AccountLocked) => "Your account was locked by the operator".to_owned(),
        Some(Kind::AccountUnlocked) => "Your account was unlocked by the operator".to_owned(),
        Some(Kind::AccountExported) => {
            "A copy of your data was exported (data-protection request)".to_owned()
        }
        Some(Kind::AccountErased) => "Your account was erased".to_owned(),
        Some(Kind::PasskeyAdded) => {
            if e.detail["device_bound"] == true {
                details.push("device-bound passkey".to_owned());
            } else {
                details.push("synced passkey".to_owned());
            }
            "A passkey was added".to_owned()
        }
        Some(Kind::PasskeyRemoved) => "A passkey was removed".to_owned(),
        Some(Kind::RecoveryCodesGenerated) => "New recovery codes were created".to_owned(),
        Some(Kind::RecoveryCodeUsed) => "A recovery code was used".to_owned(),
        Some(Kind::EidRecovery) => "You recovered your account with your eID".to_owned(),
        Some(Kind::EmailVerified) => "Your email address was verified".to_owned(),
        Some(Kind::EidBound) => {
            details.push(format!(
                "{} eID ({}), level {}",
                fact("scheme"),
                fact("country"),
                fact("level")
            ));
            if e.detail["reproofed"] == true {
                "You proved your identity again with your eID".to_owned()
            } else {
                "You enrolled your national eID".to_owned()
            }
        }
        Some(Kind::StepUp) => {
            details.push(format!("Outcome: {}", fact("outcome").replace('_', " ")));
            "A service asked for a higher level of assurance".to_owned()
        }
        Some(Kind::MandateGranted) => {
            details.push(format!(
                "Organization {}, powers: {}",
                fact("org"),
                fact("powers")
            ));
            "You granted a representation mandate".to_owned()
        }
        Some(Kind::MandateAccepted) => "You accepted a representation mandate".to_owned(),
        Some(Kind::MandateUsed) => {
            details.push(format!("Organization {}", fact("org")));
            "You acted for an organization".to_owned()
        }
        Some(Kind::MandateRevoked) => "A representation mandate was revoked".to_owned(),
        Some(Kind::TokenExchanged) => {
            details.push(format!("Passed on to {}", fact("audience")));
            "A service passed your sign-in on to another service".to_owned()
        }
        Some(Kind::AdminAction) => {
            details.push(fact("action"));
            "The operator acted on your account".to_owned()
        }
        _ => e.kind.clone(),
    };
    details.retain(|d| !d.is_empty());
    Line {
        when: pages::format_time(crate::clock::UnixTime(e.occurred_at)),
        what,
        service,
        details,
    }
}

fn level_name(acr: &str) -> String {
    crate::assurance::Level::parse(acr).map_or_else(|| acr.to_owned(), |l| l.alias().to_owned())
}
