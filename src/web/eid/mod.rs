//! eID enrollment, re-proofing and recovery through a connector; the
//! connector's public key set.
//!
//! Each flow is bound to the browser that began it by a cookie of its own
//! ([`cookie`]), which the upstream's cross-site redirect back carries; a
//! flow that cannot finish ends in a page with a way forward ([`failure`]).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

mod cookie;
mod failure;

use failure::{Failure, Forward, Stop};

use super::{PageError, State as AppState, session};
use crate::assurance::Level;
use crate::audit::{self, Event, Kind};
use crate::eid::connector::{FlowError, FlowPurpose};
use crate::eid::{self, EidError};
use crate::metrics::{EidFailure, SignInMethod};
use crate::oidc::OAuthError;
use crate::sessions::amr;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/eid/jwks", get(jwks))
        .route("/account/eid/start", get(start_enrollment))
        .route("/recover/eid", get(start_recovery))
        .route("/eid/callback", get(callback))
}

async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        axum::Json(app.eid.jwks().clone()),
    )
        .into_response()
}

/// Counts a failed flow (not a failure of the cache).
fn count(app: &AppState, e: &FlowError) {
    if let Some(reason) = EidFailure::of(e) {
        app.metrics.eid_failed(reason);
    }
}

/// A flow that could not begin: a page that leads back to where the
/// citizen came from.
fn not_begun(app: &AppState, e: FlowError, purpose: &FlowPurpose) -> Failure {
    count(app, &e);
    failure::stop_for(e, failure::forward_of(Some(purpose), None))
}

/// Redirects to the upstream with the flow's cookie.
fn to_upstream(url: &str, cookie: HeaderValue) -> Response {
    let mut res = Redirect::to(url).into_response();
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

#[derive(Deserialize)]
struct Start {
    connector: String,
    #[serde(default)]
    auth: Option<String>,
}

/// Enroll or re-proof: needs a full session.
async fn start_enrollment(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Result<Response, Failure> {
    let Some(session) = super::authorize::full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let resume = q.auth.filter(|a| {
        a.len() <= 64
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let purpose = FlowPurpose::Enroll(session.account_id);
    let (browser, cookie) = cookie::issue(&app.settings);
    let url = match app
        .eid
        .begin(&q.connector, purpose.clone(), resume.clone(), &browser)
        .await
    {
        Ok(url) => url,
        Err(e) => {
            count(&app, &e);
            let service = match &resume {
                Some(h) => app.oidc.pending_return(h).await?,
                None => None,
            };
            return Err(failure::stop_for(
                e,
                failure::forward_of(Some(&purpose), service),
            ));
        }
    };
    Ok(to_upstream(&url, cookie))
}

/// Recovery: no session needed; the eID proves who it is.
async fn start_recovery(
    State(app): State<AppState>,
    Query(q): Query<Start>,
) -> Result<Response, Failure> {
    let (browser, cookie) = cookie::issue(&app.settings);
    let url = app
        .eid
        .begin(&q.connector, FlowPurpose::Recover, None, &browser)
        .await
        .map_err(|e| not_begun(&app, e, &FlowPurpose::Recover))?;
    Ok(to_upstream(&url, cookie))
}

/// The upstream's redirect back. Whatever happens, the flow's cookie is
/// cleared: a flow is used once.
async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut res = match finish(&app, &headers, &params).await {
        Ok(res) => res,
        Err(failure) => failure.into_response(),
    };
    res.headers_mut()
        .append(header::SET_COOKIE, cookie::clear(&app.settings));
    res
}

async fn finish(
    app: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Response, Failure> {
    let browser = cookie::read(&app.settings, headers);
    // A response this browser did not ask for: nothing of the flow is shown.
    let flow = app
        .eid
        .take(params, browser.as_deref())
        .await
        .map_err(|e| {
            count(app, &e);
            failure::stop_for(e, Forward::Account)
        })?;
    let purpose = flow.purpose().clone();
    let resume = flow.resume().map(str::to_owned);
    let service = match &resume {
        Some(h) => app.oidc.pending_return(h).await?,
        None => None,
    };
    let forward = || failure::forward_of(Some(&purpose), service.clone());
    let identity = match app.eid.complete(flow, params).await {
        Ok(identity) => identity,
        Err(e) => {
            count(app, &e);
            return Err(failure::stop_for(e, forward()));
        }
    };
    let now = app.clock.now();
    match purpose.clone() {
        FlowPurpose::Enroll(account) => {
            // The browser must still be signed in to the account that started.
            let cookie = session::read(&app.settings, headers);
            let current = super::authorize::current_session(app, headers).await?;
            let Some(current) = current.filter(|s| s.account_id == account && !s.restricted) else {
                app.metrics.eid_failed(EidFailure::SignedOut);
                return Err(Stop {
                    status: StatusCode::BAD_REQUEST,
                    title: "Sign in again",
                    message: "You were signed out while using your eID. Nothing was changed."
                        .into(),
                    forward: Forward::SignIn(resume),
                }
                .into());
            };
            let bound = eid::bind(&app.db, &app.eid_keys, &account, &identity, now).await;
            if let Some(handle) = &resume {
                // A step-up during an authorization request: its outcome,
                // for the client that asked (and sees it on its dashboard).
                let outcome = match &bound {
                    Ok(()) => "succeeded",
                    Err(EidError::BoundElsewhere) => "failed_bound_elsewhere",
                    Err(EidError::AccountBoundToOther) => "failed_other_identity",
                    Err(_) => "failed",
                };
                let mut event = Event::citizen(Kind::StepUp, &account)
                    .with("outcome", outcome)
                    .with("level", identity.level.alias());
                if let Some(client) = app.oidc.pending_client(handle).await? {
                    event = event.client(&client);
                }
                audit::record_alone(&app.db, &event, now)
                    .await
                    .map_err(OAuthError::from)?;
            }
            match bound {
                Ok(()) => {}
                Err(EidError::BoundElsewhere) => {
                    app.metrics.eid_failed(EidFailure::IdentityConflict);
                    return Err(Stop {
                        status: StatusCode::CONFLICT,
                        title: "This eID belongs to another account",
                        message: "Your national identity is already bound to another Civitas account. Sign in to that \
                                  account instead, or contact support. Nothing was changed."
                            .into(),
                        forward: forward(),
                    }
                    .into());
                }
                Err(EidError::AccountBoundToOther) => {
                    app.metrics.eid_failed(EidFailure::IdentityConflict);
                    return Err(Stop {
                        status: StatusCode::CONFLICT,
                        title: "Another identity is bound to this account",
                        message: "This account was proven with a different national identity. Nothing was changed.".into(),
                        forward: forward(),
                    }
                    .into());
                }
                Err(EidError::Identifier(_)) => {
                    return Err(Stop {
                        status: StatusCode::BAD_REQUEST,
                        title: "Your eID could not be used",
                        message: "Your eID reported a person identifier that is not one of its country. Nothing was changed."
                            .into(),
                        forward: forward(),
                    }
                    .into());
                }
                Err(e) => return Err(PageError::Internal(e.to_string()).into()),
            }
            // The session's level rises at once: same authenticator, new
            // proofing; so does the ceiling of the passkey it signed in with.
            if let Some(credential) = &current.credential {
                app.passkeys
                    .raise_level(&account, credential, identity.level)
                    .await
                    .map_err(|e| match e {
                        crate::passkeys::PasskeyError::Store(s) => OAuthError::from(s).into(),
                        other => PageError::Internal(other.to_string()),
                    })?;
            }
            let device_bound = current.amr.iter().any(|a| a == amr::HWK);
            let acr = Level::achieved(Some(identity.level), device_bound).uri();
            // A higher level, a new cookie (the old one signs in nowhere).
            let rotated = match cookie {
                Some(c) => app
                    .sessions
                    .raise_acr(&c, acr)
                    .await
                    .map_err(OAuthError::from)?,
                None => None,
            };
            let next = match resume {
                Some(h) => format!("/authorize/resume?auth={h}"),
                None => "/account?notice=eid-bound".to_owned(),
            };
            let mut res = Redirect::to(&next).into_response();
            if let Some((_, cookie)) = rotated {
                res.headers_mut().append(
                    header::SET_COOKIE,
                    session::set(&app.settings, cookie.expose()),
                );
            }
            Ok(res)
        }
        FlowPurpose::Recover => {
            let Some(account) = eid::account_of(&app.db, &app.eid_keys, &identity)
                .await
                .map_err(OAuthError::from)?
            else {
                app.metrics.eid_failed(EidFailure::NoAccount);
                return Err(Stop {
                    status: StatusCode::NOT_FOUND,
                    title: "No account for this eID",
                    message: "No Civitas account has been proven with this eID. Create an account, then enroll your eID.".into(),
                    forward: Forward::Recover,
                }
                .into());
            };
            if crate::accounts::lock::is_locked(&app.db, &account)
                .await
                .map_err(OAuthError::from)?
            {
                return Err(Stop {
                    status: StatusCode::FORBIDDEN,
                    title: "Account locked",
                    message: "This Civitas account is locked and cannot be recovered. Contact the service desk.".into(),
                    forward: Forward::Recover,
                }
                .into());
            }
            // The passkey this recovery registers counts at most at what was
            // proven now, and never above the binding.
            let binding = eid::proofing_level(&app.db, &account)
                .await
                .map_err(OAuthError::from)?
                .unwrap_or(Level::Low);
            let proved = identity.level.min(binding);
            let previous = session::read(&app.settings, headers);
            let (_, cookie) = app
                .sessions
                .establish_recovery(account.clone(), proved, previous.as_deref())
                .await
                .map_err(OAuthError::from)?;
            // Recorded right after the session it describes (which lives in
            // the cache, not in the database); without its entry, no session.
            let event = Event::citizen(Kind::EidRecovery, &account)
                .with("scheme", identity.scheme.as_str())
                .with("level", identity.level.alias());
            if let Err(e) = audit::record_alone(&app.db, &event, now).await {
                let _ = app.sessions.end(cookie.expose()).await;
                return Err(OAuthError::from(e).into());
            }
            app.metrics.signed_in(SignInMethod::EidRecovery, None);
            let mut res = Redirect::to("/account").into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                session::set(&app.settings, cookie.expose()),
            );
            Ok(res)
        }
    }
}
