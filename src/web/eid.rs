//! eID enrollment, re-proofing and recovery through a connector; the
//! connector's public key set.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::passkeys::with_cookie;
use super::{PageError, State as AppState, csrf, session};
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

/// The page for a failed flow; the failure is counted.
fn flow_failed(app: &AppState) -> impl FnOnce(FlowError) -> PageError + '_ {
    move |e| {
        if let Some(reason) = EidFailure::of(&e) {
            app.metrics.eid_failed(reason);
        }
        flow_page(e)
    }
}

fn flow_page(e: FlowError) -> PageError {
    match e {
        FlowError::Cache(c) => OAuthError::from(c).into(),
        FlowError::UnknownConnector => PageError::Client {
            status: StatusCode::NOT_FOUND,
            title: "This eID is not offered",
            message: e.to_string(),
        },
        other => PageError::bad_request(
            "Your eID could not be used",
            format!("{other}. Nothing was changed; you can try again."),
        ),
    }
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
) -> Result<Response, PageError> {
    let Some(session) = super::authorize::full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let resume = q.auth.filter(|a| {
        a.len() <= 64
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let (browser, cookie) = csrf::token(&app.settings, &headers);
    let url = app
        .eid
        .begin(
            &q.connector,
            FlowPurpose::Enroll(session.account_id),
            resume,
            &browser,
        )
        .await
        .map_err(flow_failed(&app))?;
    Ok(with_cookie(Redirect::to(&url).into_response(), cookie))
}

/// Recovery: no session needed; the eID proves who it is.
async fn start_recovery(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Result<Response, PageError> {
    let (browser, cookie) = csrf::token(&app.settings, &headers);
    let url = app
        .eid
        .begin(&q.connector, FlowPurpose::Recover, None, &browser)
        .await
        .map_err(flow_failed(&app))?;
    Ok(with_cookie(Redirect::to(&url).into_response(), cookie))
}

async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let (browser, _) = csrf::token(&app.settings, &headers);
    let (purpose, resume, identity) = app
        .eid
        .finish(&params, &browser)
        .await
        .map_err(flow_failed(&app))?;
    let now = app.clock.now();
    match purpose {
        FlowPurpose::Enroll(account) => {
            // The browser must still be signed in to the account that started.
            let cookie = session::read(&app.settings, &headers);
            let current = super::authorize::current_session(&app, &headers).await?;
            let Some(current) = current.filter(|s| s.account_id == account && !s.restricted) else {
                app.metrics.eid_failed(EidFailure::SignedOut);
                return Err(PageError::bad_request(
                    "Sign in again",
                    "You were signed out while using your eID. Nothing was changed.",
                ));
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
                    return Err(PageError::Client {
                        status: StatusCode::CONFLICT,
                        title: "This eID belongs to another account",
                        message: "Your national identity is already bound to another Civitas account. Sign in to that \
                                  account instead, or contact support. Nothing was changed."
                            .into(),
                    });
                }
                Err(EidError::AccountBoundToOther) => {
                    app.metrics.eid_failed(EidFailure::IdentityConflict);
                    return Err(PageError::Client {
                        status: StatusCode::CONFLICT,
                        title: "Another identity is bound to this account",
                        message: "This account was proven with a different national identity. Nothing was changed.".into(),
                    });
                }
                Err(e) => return Err(PageError::Internal(e.to_string())),
            }
            // The session's level rises at once: same authenticator, new proofing.
            let device_bound = current.amr.iter().any(|a| a == amr::HWK);
            let acr = Level::achieved(Some(identity.level), device_bound).uri();
            if let Some(c) = cookie {
                app.sessions
                    .set_acr(&c, acr)
                    .await
                    .map_err(OAuthError::from)?;
            }
            let next = match resume {
                Some(h) => format!("/authorize/resume?auth={h}"),
                None => "/account?notice=eid-bound".to_owned(),
            };
            Ok(Redirect::to(&next).into_response())
        }
        FlowPurpose::Recover => {
            let Some(account) = eid::account_of(&app.db, &app.eid_keys, &identity)
                .await
                .map_err(OAuthError::from)?
            else {
                app.metrics.eid_failed(EidFailure::NoAccount);
                return Err(PageError::Client {
                    status: StatusCode::NOT_FOUND,
                    title: "No account for this eID",
                    message: "No Civitas account has been proven with this eID. Create an account, then enroll your eID.".into(),
                });
            };
            if crate::accounts::lock::is_locked(&app.db, &account)
                .await
                .map_err(OAuthError::from)?
            {
                return Err(PageError::Client {
                    status: StatusCode::FORBIDDEN,
                    title: "Account locked",
                    message: "This Civitas account is locked and cannot be recovered. Contact the service desk.".into(),
                });
            }
            let event = Event::citizen(Kind::EidRecovery, &account)
                .with("scheme", identity.scheme.as_str())
                .with("level", identity.level.alias());
            audit::record_alone(&app.db, &event, now)
                .await
                .map_err(OAuthError::from)?;
            let previous = session::read(&app.settings, &headers);
            let (_, cookie) = app
                .sessions
                .establish_recovery(account, previous.as_deref())
                .await
                .map_err(OAuthError::from)?;
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
