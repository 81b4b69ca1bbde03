//! The account page (`/account`): passkeys, email verification, recovery
//! codes, consents, activity and sign-out; and recovery with a code
//! (`/recover`). Every form carries the CSRF token; actions redirect back
//! with a notice chosen from a fixed list (nothing the request says is
//! echoed into the page).

use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::ClientIp;
use super::passkeys::with_cookie;
use super::{PageError, State as AppState, csrf, pages, session};
use crate::accounts::email::EmailError;
use crate::accounts::recovery;
use crate::assurance::Level;
use crate::ephemeral::within_limit;
use crate::oidc::OAuthError;
use crate::sessions::Session;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(account))
        .route("/account/passkeys/rename", post(rename))
        .route("/account/passkeys/remove", post(remove))
        .route("/account/email/send", post(email_send))
        .route("/account/email/verify", post(email_verify))
        .route("/account/recovery-codes", post(recovery_codes))
        .route("/account/consents/revoke", post(revoke_consent))
        .route("/account/signout", post(signout))
        .route("/recover", get(recover_page).post(recover))
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "added" => "Your new passkey is ready.",
        "recovered" => "Your new passkey is ready, and you are signed in again.",
        "renamed" => "The passkey was renamed.",
        "removed" => "The passkey was removed.",
        "last" => {
            "This is your only way to sign in: add another passkey or create recovery codes first."
        }
        "email-sent" => "We sent a code to your email address.",
        "email-verified" => "Your email address is verified.",
        "email-bad" => "That code is not valid. Request a new one.",
        "revoked" => "The service will ask for your consent again next time.",
        "rate" => "Too many attempts. Please wait a few minutes.",
        "email-rate-address" => {
            "Too many codes were sent to this address recently. Please wait an hour before asking for another."
        }
        "error" => "That did not work. Please try again.",
        _ => return None,
    })
}

fn err(e: impl Into<OAuthError>) -> PageError {
    PageError::from(e.into())
}

/// Why an account action stops early: an error page, or a redirect (to the
/// sign-in page, or back to the account page).
struct Stop(Response);

impl From<PageError> for Stop {
    fn from(e: PageError) -> Self {
        Self(e.into_response())
    }
}

impl From<OAuthError> for Stop {
    fn from(e: OAuthError) -> Self {
        Self(PageError::from(e).into_response())
    }
}

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        self.0
    }
}

type Answer = Result<Response, Stop>;

/// The session of a signed-in citizen, or a redirect to the sign-in page.
async fn require_session(app: &AppState, headers: &HeaderMap) -> Result<Session, Stop> {
    match super::authorize::current_session(app, headers).await? {
        Some(s) => Ok(s),
        None => Err(Stop(Redirect::to("/signin").into_response())),
    }
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    notice: Option<String>,
}

async fn account(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Answer {
    let session = require_session(&app, &headers).await?;
    let acc = app
        .accounts
        .get(&session.account_id)
        .await
        .map_err(err)?
        .ok_or_else(|| {
            PageError::bad_request("No such account", "This account no longer exists.")
        })?;
    let proofing = crate::eid::proofing_level(&app.db, &acc.id)
        .await
        .map_err(err)?;
    let passkeys = app
        .passkeys
        .list(&acc.id)
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?
        .into_iter()
        .map(|p| pages::PasskeyRow {
            // What a sign-in with it reaches now, and whether its own
            // ceiling (its enrolment) holds it below what the eID allows.
            level: Level::with_passkey(proofing, !p.synced, p.max_level).alias(),
            held_back: p.max_level < Level::achieved(proofing, !p.synced),
            kind: if p.synced {
                "synced passkey"
            } else {
                "device-bound passkey"
            },
            created: pages::format_time(p.created_at),
            last_used: p
                .last_used_at
                .map_or_else(|| "never".to_owned(), pages::format_time),
            id: p.credential_id,
            name: p.name,
        })
        .collect();
    let mut consents = Vec::new();
    for c in crate::oidc::consent::list(&app.db, &acc.id)
        .await
        .map_err(err)?
    {
        let name = app
            .clients
            .get(&c.client_id)
            .await
            .map_err(err)?
            .and_then(|cl| cl.metadata.client_name)
            .unwrap_or_else(|| c.client_id.clone());
        consents.push(pages::ConsentRow {
            client_id: c.client_id,
            name,
            scope: c.scope.to_string(),
        });
    }
    let recent = crate::audit::for_account(&app.db, &acc.id, 5)
        .await
        .map_err(err)?;
    let activity = super::activity::describe_all(&app, &recent)
        .await?
        .into_iter()
        .map(|l| {
            let what = match l.service {
                Some(s) => format!("{} ({s})", l.what),
                None => l.what,
            };
            (l.when, what)
        })
        .collect();
    let (token, cookie) = csrf::token(&app.settings, &headers);
    let page = pages::Account {
        restricted: session.restricted,
        notice: q.notice.as_deref().and_then(notice_text),
        display_name: &acc.display_name,
        account_ref: acc.id.as_str(),
        email: acc.email.as_deref(),
        email_verified: acc.email_verified,
        passkeys,
        recovery_remaining: recovery::remaining(&app.db, &acc.id).await.map_err(err)?,
        consents,
        activity,
        csrf: &token,
        connectors: app.eid.offered(),
        eid: crate::eid::binding(&app.db, &app.eid_keys, &acc.id)
            .await
            .map_err(|e| PageError::Internal(e.to_string()))?
            .map(|b| {
                (
                    b.identity.scheme,
                    b.identity.level.alias().to_owned(),
                    pages::format_time(b.verified_at),
                )
            }),
    };
    Ok(with_cookie(pages::render(&page), cookie))
}

/// Checks the form's CSRF token and that a full (not recovery) session is there.
async fn form_session(
    app: &AppState,
    headers: &HeaderMap,
    csrf_field: &str,
) -> Result<Session, Stop> {
    if !csrf::check(&app.settings, headers, Some(csrf_field)) {
        return Err(PageError::Client {
            status: StatusCode::FORBIDDEN,
            title: "Request could not be verified",
            message: "The form was not sent from a Civitas page. Please go back and try again."
                .into(),
        }
        .into());
    }
    let session = require_session(app, headers).await?;
    if session.restricted {
        return Err(Stop(Redirect::to("/account").into_response()));
    }
    Ok(session)
}

fn back(notice: &str) -> Response {
    Redirect::to(&format!("/account?notice={notice}")).into_response()
}

#[derive(Deserialize)]
struct PasskeyForm {
    csrf: String,
    credential_id: String,
    #[serde(default)]
    name: Option<String>,
}

async fn rename(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<PasskeyForm>,
) -> Answer {
    let s = form_session(&app, &headers, &f.csrf).await?;
    match app
        .passkeys
        .rename(
            &s.account_id,
            &f.credential_id,
            f.name.as_deref().unwrap_or_default(),
        )
        .await
    {
        Ok(()) => Ok(back("renamed")),
        Err(_) => Ok(back("error")),
    }
}

async fn remove(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<PasskeyForm>,
) -> Answer {
    let s = form_session(&app, &headers, &f.csrf).await?;
    match app.passkeys.remove(&s.account_id, &f.credential_id).await {
        Ok(()) => Ok(back("removed")),
        Err(crate::passkeys::PasskeyError::LastPasskey) => Ok(back("last")),
        Err(_) => Ok(back("error")),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

async fn email_send(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Answer {
    let s = form_session(&app, &headers, &f.csrf).await?;
    let window = Duration::from_secs(15 * 60);
    let account_ok = within_limit(
        &app.cache,
        &format!("email-send:acct:{}", s.account_id.as_str()),
        3,
        window,
    )
    .await
    .map_err(err)?;
    let ip_ok = within_limit(&app.cache, &format!("email-send:ip:{ip}"), 10, window)
        .await
        .map_err(err)?;
    if !(account_ok && ip_ok) {
        return Ok(back("rate"));
    }
    match app
        .accounts
        .send_email_code(&app.cache, &app.mailer, &s.account_id)
        .await
    {
        Ok(()) => Ok(back("email-sent")),
        Err(EmailError::AddressRateLimited) => Ok(back("email-rate-address")),
        // The store or the cache: an error page, logged with its cause
        // like every other (their errors never quote the address).
        Err(EmailError::Cache(e)) => Err(err(e).into()),
        Err(EmailError::Store(e)) => Err(err(e).into()),
        // The kind only: a relay's refusal quotes the recipient.
        Err(e) => {
            tracing::warn!(error.type = e.kind(), "verification code not sent");
            Ok(back("error"))
        }
    }
}

async fn email_verify(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Answer {
    let s = form_session(&app, &headers, &f.csrf).await?;
    let window = Duration::from_secs(15 * 60);
    let ok = within_limit(
        &app.cache,
        &format!("email-verify:acct:{}", s.account_id.as_str()),
        10,
        window,
    )
    .await
    .map_err(err)?
        && within_limit(&app.cache, &format!("email-verify:ip:{ip}"), 30, window)
            .await
            .map_err(err)?;
    if !ok {
        return Ok(back("rate"));
    }
    match app
        .accounts
        .verify_email_code(
            &app.cache,
            &s.account_id,
            f.code.as_deref().unwrap_or_default(),
        )
        .await
    {
        Ok(()) => Ok(back("email-verified")),
        Err(_) => Ok(back("email-bad")),
    }
}

async fn recovery_codes(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Answer {
    let s = form_session(&app, &headers, &f.csrf).await?;
    let codes = recovery::generate(&app.db, &s.account_id, app.clock.now())
        .await
        .map_err(err)?;
    Ok(pages::render(&pages::RecoveryCodes { codes: &codes }))
}

async fn revoke_consent(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Answer {
    let s = form_session(&app, &headers, &f.csrf).await?;
    let client_id = f.client_id.unwrap_or_default();
    crate::oidc::consent::withdraw(&app.db, &s.account_id, &client_id, app.clock.now())
        .await
        .map_err(err)?;
    Ok(back("revoked"))
}

async fn signout(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Answer {
    if !csrf::check(&app.settings, &headers, Some(&f.csrf)) {
        return Err(PageError::bad_request(
            "Request could not be verified",
            "Please go back and try again.",
        )
        .into());
    }
    if let Some(cookie) = session::read(&app.settings, &headers)
        && let Some(ended) = app.sessions.end(&cookie).await.map_err(err)?
    {
        app.oidc.session_ended(&ended).await?;
    }
    let mut res = pages::render(&pages::SignedOut { client_name: None });
    res.headers_mut()
        .insert(header::SET_COOKIE, session::clear(&app.settings));
    Ok(res)
}

async fn recover_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let (token, cookie) = csrf::token(&app.settings, &headers);
    with_cookie(
        pages::render(&pages::Recover {
            csrf: &token,
            error: None,
            connectors: app.eid.offered(),
        }),
        cookie,
    )
}

#[derive(Deserialize)]
struct RecoverForm {
    csrf: String,
    recovery_code: String,
}

async fn recover(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    axum::Form(f): axum::Form<RecoverForm>,
) -> Answer {
    let (token, _) = csrf::token(&app.settings, &headers);
    if !csrf::check(&app.settings, &headers, Some(&f.csrf)) {
        return Err(PageError::bad_request(
            "Request could not be verified",
            "Please go back and try again.",
        )
        .into());
    }
    let retry = |msg: &'static str| {
        let mut res = pages::render(&pages::Recover {
            csrf: &token,
            error: Some(msg),
            connectors: app.eid.offered(),
        });
        *res.status_mut() = StatusCode::BAD_REQUEST;
        res
    };
    if !within_limit(
        &app.cache,
        &format!("recover:ip:{ip}"),
        10,
        Duration::from_secs(15 * 60),
    )
    .await
    .map_err(err)?
    {
        return Ok(retry("Too many attempts. Please wait a few minutes."));
    }
    let account = match recovery::redeem(&app.db, &f.recovery_code, app.clock.now())
        .await
        .map_err(err)?
    {
        recovery::Redeemed::Account(account) => account,
        recovery::Redeemed::Locked => {
            let mut res = retry("This account is locked. Contact the service desk.");
            *res.status_mut() = StatusCode::FORBIDDEN;
            return Ok(res);
        }
        recovery::Redeemed::Invalid => {
            return Ok(retry(
                "That recovery code is not valid or was already used.",
            ));
        }
    };
    let previous = session::read(&app.settings, &headers);
    let (_, cookie) = app
        .sessions
        .establish_recovery(account, crate::assurance::Level::Low, previous.as_deref())
        .await
        .map_err(err)?;
    app.metrics
        .signed_in(crate::metrics::SignInMethod::RecoveryCode, None);
    let mut res = Redirect::to("/account").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set(&app.settings, cookie.expose()),
    );
    Ok(res)
}
