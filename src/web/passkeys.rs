//! Sign-in and account-creation pages, and the JSON endpoints of the passkey
//! ceremonies that `passkeys.js` calls. Every POST carries the CSRF token and
//! is rate-limited per client address (in the shared store, so the limits
//! hold across instances).

use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::extract::{Body, ClientIp, json};
use super::{ApiError, PageError, State as AppState, csrf, pages, session};
use crate::assurance::Level;
use crate::ephemeral::within_limit;
use crate::metrics::{PasskeyCeremony, PasskeyFailure, SignInMethod};
use crate::passkeys::{PasskeyError, Purpose, amr_for};
use crate::sessions::{Authentication, Session};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin_page))
        .route("/signin/create", get(create_page))
        .route("/passkeys/signin/begin", post(signin_begin))
        .route("/passkeys/signin/finish", post(signin_finish))
        .route("/passkeys/register/begin", post(register_begin))
        .route("/passkeys/register/finish", post(register_finish))
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::Expired => Self::bad_request("expired_ceremony", e.to_string()),
            PasskeyError::Rejected(_) => Self::bad_request("passkey_rejected", e.to_string()),
            PasskeyError::LastPasskey => Self::Client {
                status: StatusCode::CONFLICT,
                code: "last_passkey",
                description: e.to_string(),
                www_authenticate: None,
            },
            PasskeyError::Locked => Self::Client {
                status: StatusCode::FORBIDDEN,
                code: "account_locked",
                description: e.to_string(),
                www_authenticate: None,
            },
            PasskeyError::NotFound => Self::Client {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                description: e.to_string(),
                www_authenticate: None,
            },
            PasskeyError::Cache(c) => c.into(),
            PasskeyError::Store(s) => s.into(),
            PasskeyError::Config(c) => Self::internal(c),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    /// The pending request's handle; anything else is dropped.
    #[serde(default, deserialize_with = "handle_or_empty")]
    auth: String,
    #[serde(default)]
    create: Option<String>,
}

fn handle_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(if is_handle(&s) { s } else { String::new() })
}

/// Adds the CSRF cookie, if new, to a page.
pub(super) fn with_cookie(mut res: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn signin_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    if q.create.is_some() {
        return create_page(State(app), headers, Query(q)).await;
    }
    let summary = app.oidc.pending_summary(&q.auth).await?;
    let (token, cookie) = csrf::token(&app.settings, &headers);
    let page = pages::SignIn {
        client_name: summary.as_ref().map(|(n, _)| n.as_str()),
        csrf: &token,
        auth: &q.auth,
        login_hint: summary
            .as_ref()
            .and_then(|(_, h)| h.as_deref())
            .unwrap_or_default(),
    };
    Ok(with_cookie(pages::render(&page), cookie))
}

async fn create_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    let summary = app.oidc.pending_summary(&q.auth).await?;
    let (token, cookie) = csrf::token(&app.settings, &headers);
    let page = pages::Create {
        client_name: summary.as_ref().map(|(n, _)| n.as_str()),
        csrf: &token,
        auth: &q.auth,
    };
    Ok(with_cookie(pages::render(&page), cookie))
}

fn forbidden() -> ApiError {
    ApiError::Client {
        status: StatusCode::FORBIDDEN,
        code: "invalid_request",
        description: "the request did not come from a Civitas page (CSRF token missing or wrong)"
            .into(),
        www_authenticate: None,
    }
}

fn too_many() -> ApiError {
    ApiError::Client {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "rate_limited",
        description: "too many attempts; wait a minute and try again".into(),
        www_authenticate: None,
    }
}

/// Checks CSRF and the per-address rate limit of `action`, a step of
/// `ceremony`; a refusal is counted.
async fn guard(
    app: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    (ceremony, action): (PasskeyCeremony, &str),
    per_minute: u64,
) -> Result<(), ApiError> {
    if !csrf::check(&app.settings, headers, None) {
        app.metrics.passkey_failed(ceremony, PasskeyFailure::Csrf);
        return Err(forbidden());
    }
    let subject = format!("{action}:ip:{}", ip);
    if !within_limit(&app.cache, &subject, per_minute, Duration::from_secs(60)).await? {
        app.metrics
            .passkey_failed(ceremony, PasskeyFailure::RateLimited);
        return Err(too_many());
    }
    Ok(())
}

/// Parses a ceremony request's JSON body; a malformed one is counted.
fn parse<T: serde::de::DeserializeOwned>(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    ceremony: PasskeyCeremony,
) -> Result<T, ApiError> {
    json(headers, body, "invalid_request").inspect_err(|_| {
        app.metrics
            .passkey_failed(ceremony, PasskeyFailure::Malformed);
    })
}

/// Counts a refused ceremony step (not a failure of Civitas).
fn refused(app: &AppState, ceremony: PasskeyCeremony) -> impl FnOnce(&PasskeyError) + '_ {
    move |e| {
        if let Some(reason) = PasskeyFailure::of(e) {
            app.metrics.passkey_failed(ceremony, reason);
        }
    }
}

/// Is `a` shaped like a pending-request handle (base64url, short)?
fn is_handle(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 64
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where the browser goes after signing in: back into the pending
/// authorization, or to the account page.
fn next_step(auth: Option<&str>) -> String {
    match auth.filter(|a| is_handle(a)) {
        Some(a) => format!("/authorize/resume?auth={a}"),
        None => "/account".to_owned(),
    }
}

/// The JSON answer that carries the next URL and sets the session cookie.
fn signed_in(app: &AppState, cookie: &str, next: String) -> Response {
    let mut res = super::token::no_store_json(&serde_json::json!({ "next": next }));
    res.headers_mut()
        .append(header::SET_COOKIE, session::set(&app.settings, cookie));
    res
}

pub(super) async fn current(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, ApiError> {
    let Some(cookie) = session::read(&app.settings, headers) else {
        return Ok(None);
    };
    let s = app.sessions.current(&cookie).await?;
    Ok(s.map(|s| (cookie, s)))
}

async fn signin_begin(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    guard(
        &app,
        &headers,
        ip,
        (PasskeyCeremony::SignIn, "signin"),
        app.settings.limits.signin_per_minute,
    )
    .await?;
    let (ceremony, options) = app.passkeys.begin_signin().await?;
    Ok(super::token::no_store_json(
        &serde_json::json!({ "ceremony": ceremony, "options": options }),
    ))
}

#[derive(Deserialize)]
struct SigninFinish {
    ceremony: String,
    credential: PublicKeyCredential,
    #[serde(default)]
    auth: Option<String>,
}

async fn signin_finish(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    guard(
        &app,
        &headers,
        ip,
        (PasskeyCeremony::SignIn, "signin-finish"),
        app.settings.limits.signin_per_minute,
    )
    .await?;
    let req: SigninFinish = parse(&app, &headers, &body, PasskeyCeremony::SignIn)?;
    // The service this sign-in is for, if it resumes an authorization request.
    let client = match req.auth.as_deref() {
        Some(handle) => app.oidc.pending_client(handle).await?,
        None => None,
    };
    let done = app
        .passkeys
        .finish_signin(&req.ceremony, &req.credential, client.as_deref())
        .await
        .inspect_err(refused(&app, PasskeyCeremony::SignIn))?;
    let level = done.acr;
    let previous = session::read(&app.settings, &headers);
    let (_, cookie) = app
        .sessions
        .establish(
            Authentication {
                account_id: done.account_id,
                amr: done.amr,
                acr: level.uri().to_owned(),
                credential: Some(done.credential_id),
            },
            previous.as_deref(),
        )
        .await?;
    app.metrics.signed_in(SignInMethod::Passkey, Some(level));
    Ok(signed_in(
        &app,
        cookie.expose(),
        next_step(req.auth.as_deref()),
    ))
}

#[derive(Deserialize)]
struct RegisterBegin {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

fn valid_email(e: &str) -> bool {
    let parts: Vec<&str> = e.split('@').collect();
    e.len() <= 200
        && parts.len() == 2
        && !parts[0].is_empty()
        && parts[1].contains('.')
        && !e.chars().any(char::is_whitespace)
}

async fn register_begin(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    guard(
        &app,
        &headers,
        ip,
        (PasskeyCeremony::Registration, "register"),
        app.settings.limits.register_per_minute,
    )
    .await?;
    let req: RegisterBegin = parse(&app, &headers, &body, PasskeyCeremony::Registration)?;
    let purpose = match current(&app, &headers).await? {
        Some((_, s)) => Purpose::AddTo(s.account_id),
        None => {
            let name = req
                .display_name
                .as_deref()
                .map(str::trim)
                .unwrap_or_default();
            let email = req.email.as_deref().map(str::trim).unwrap_or_default();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "please give your name (at most 100 characters)",
                ));
            }
            if !valid_email(email) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "please give a valid email address",
                ));
            }
            Purpose::NewAccount {
                display_name: name.to_owned(),
                email: Some(email.to_owned()),
            }
        }
    };
    let (ceremony, options) = app.passkeys.begin_registration(purpose).await?;
    Ok(super::token::no_store_json(
        &serde_json::json!({ "ceremony": ceremony, "options": options }),
    ))
}

#[derive(Deserialize)]
struct RegisterFinish {
    ceremony: String,
    credential: RegisterPublicKeyCredential,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

async fn register_finish(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    guard(
        &app,
        &headers,
        ip,
        (PasskeyCeremony::Registration, "register-finish"),
        app.settings.limits.register_per_minute,
    )
    .await?;
    let req: RegisterFinish = parse(&app, &headers, &body, PasskeyCeremony::Registration)?;
    let session = current(&app, &headers).await?;
    // The new passkey never counts above the session that enrols it (a
    // recovery session's level is what the recovery proved).
    let acting = session
        .as_ref()
        .map(|(_, s)| (&s.account_id, Level::parse(&s.acr).unwrap_or(Level::Low)));
    let done = app
        .passkeys
        .finish_registration(&req.ceremony, &req.credential, req.name.as_deref(), acting)
        .await
        .inspect_err(refused(&app, PasskeyCeremony::Registration))?;
    let restricted = session.as_ref().is_some_and(|(_, s)| s.restricted);
    if done.new_account || restricted {
        // A new account, or a recovered one: sign in with the new passkey.
        let previous = session.as_ref().map(|(c, _)| c.as_str());
        let proofing = crate::eid::proofing_level(&app.db, &done.account.id).await?;
        let level = Level::with_passkey(proofing, done.device_bound, done.max_level);
        let (_, cookie) = app
            .sessions
            .establish(
                Authentication {
                    account_id: done.account.id.clone(),
                    amr: amr_for(done.device_bound),
                    acr: level.uri().to_owned(),
                    credential: Some(done.credential_id.clone()),
                },
                previous,
            )
            .await?;
        app.metrics
            .signed_in(SignInMethod::PasskeyRegistration, Some(level));
        let next = if done.new_account {
            next_step(req.auth.as_deref())
        } else {
            "/account?notice=recovered".to_owned()
        };
        return Ok(signed_in(&app, cookie.expose(), next));
    }
    Ok(super::token::no_store_json(
        &serde_json::json!({ "next": "/account?notice=added" }),
    ))
}
