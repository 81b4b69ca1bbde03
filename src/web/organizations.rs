//! `/account/organizations`: the organizations a citizen can act for, the
//! mandates they hold and granted, and granting, accepting and revoking
//! mandates. Every form is CSRF-checked and needs a full session.
//!
//! An invitation link is `{issuer}/account/mandates/invitation#<token>`:
//! browsers never send the fragment, so the token is in no request line and
//! no log. The page's script (`invitation.js`) copies it into the form's
//! labelled field (which a citizen without JavaScript fills by hand), and
//! the token reaches Civitas only in the body of a POST to that fixed
//! address. A token that arrives in a path (links of earlier versions,
//! `/account/mandates/invitation/<token>`) may be in a log already: its
//! invitation is ended and the page says to ask for a new one.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::passkeys::with_cookie;
use super::{PageError, State as AppState, csrf, pages};
use crate::assurance::Level;
use crate::clock::UnixTime;
use crate::mandates::{GrantRequest, Grantee, MandateError, is_invitation_token};
use crate::sessions::Session;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/organizations", get(page))
        .route("/account/organizations/grant", post(grant))
        .route("/account/organizations/accept", post(accept))
        .route("/account/organizations/revoke", post(revoke))
        .route(
            "/account/mandates/invitation",
            get(invitation).post(accept_invitation),
        )
        .route(
            "/account/mandates/invitation/{token}",
            get(exposed_invitation).post(exposed_invitation),
        )
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "granted" => "The mandate was given. The person must accept it.",
        "accepted" => "You accepted the mandate.",
        "revoked" => "The mandate and everything delegated from it ended.",
        "refused" => "That could not be done.",
        _ => return None,
    })
}

async fn full_session(app: &AppState, headers: &HeaderMap) -> Result<Option<Session>, PageError> {
    Ok(super::authorize::current_session(app, headers)
        .await?
        .filter(|s| !s.restricted))
}

fn mandate_page_error(e: MandateError) -> PageError {
    match e {
        MandateError::Store(s) => crate::oidc::OAuthError::from(s).into(),
        other => PageError::bad_request("The mandate could not be changed", other.to_string()),
    }
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    notice: Option<String>,
}

async fn render(
    app: &AppState,
    headers: &HeaderMap,
    session: &Session,
    notice: Option<&str>,
    invitation: Option<String>,
) -> Result<Response, PageError> {
    let m = &app.mandates;
    let powers = m
        .powers_of(&session.account_id)
        .await
        .map_err(mandate_page_error)?;
    let delegable: Vec<(String, String)> = powers
        .iter()
        .filter(|p| p.may_delegate)
        .map(|p| {
            (
                p.mandate_ref.clone(),
                format!("{} ({})", p.org_name, p.powers.join(" ")),
            )
        })
        .collect();
    let power_rows: Vec<(String, String, String, String)> = powers
        .iter()
        .map(|p| {
            let statutory = p.mandate_ref.starts_with("statutory:");
            (
                p.org_name.clone(),
                if statutory {
                    "all powers".to_owned()
                } else {
                    p.powers.join(" ")
                },
                if statutory {
                    "statutory representative".to_owned()
                } else {
                    "mandate".to_owned()
                },
                if statutory {
                    String::new()
                } else {
                    p.mandate_ref.clone()
                },
            )
        })
        .collect();
    let granted = m
        .granted_by(&session.account_id)
        .await
        .map_err(mandate_page_error)?
        .into_iter()
        .map(|(g, org)| {
            let state = if g.accepted_at.is_some() {
                "accepted"
            } else {
                "not accepted yet"
            };
            (g.id, org, g.powers.join(" "), state.to_owned())
        })
        .collect::<Vec<_>>();
    let pending = m
        .pending_for(&session.account_id)
        .await
        .map_err(mandate_page_error)?
        .into_iter()
        .map(|(g, org)| (g.id, org, g.powers.join(" ")))
        .collect::<Vec<_>>();
    let (token, cookie) = csrf::token(&app.settings, headers);
    let page = pages::Organizations {
        notice,
        invitation: invitation.as_deref(),
        powers: power_rows,
        pending,
        granted,
        delegable,
        csrf: &token,
    };
    Ok(with_cookie(pages::render(&page), cookie))
}

async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let Some(session) = full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    render(
        &app,
        &headers,
        &session,
        q.notice.as_deref().and_then(notice_text),
        None,
    )
    .await
}

fn checked(app: &AppState, headers: &HeaderMap, token: &str) -> Result<(), PageError> {
    if csrf::check(&app.settings, headers, Some(token)) {
        Ok(())
    } else {
        Err(PageError::bad_request(
            "Request could not be verified",
            "Please go back and try again.",
        ))
    }
}

#[derive(Deserialize)]
struct GrantForm {
    csrf: String,
    from: String,
    powers: String,
    #[serde(default)]
    person_country: String,
    #[serde(default)]
    person_identifier: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    min_level: String,
    #[serde(default)]
    may_delegate: Option<String>,
}

async fn grant(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<GrantForm>,
) -> Result<Response, PageError> {
    checked(&app, &headers, &f.csrf)?;
    let Some(session) = full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let (org_id, parent) = match f.from.strip_prefix("statutory:") {
        Some(org) => (org.to_owned(), None),
        None => {
            let m = app
                .mandates
                .get(&f.from)
                .await
                .map_err(mandate_page_error)?
                .ok_or_else(|| mandate_page_error(MandateError::NotFound))?;
            (m.org_id, Some(m.id))
        }
    };
    let valid_until = match f.valid_until.trim() {
        "" => None,
        // Valid through the whole day named (UTC): it ends as the next day begins.
        d => Some(
            UnixTime::from_date(d)
                .ok_or_else(|| {
                    PageError::bad_request(
                        "Invalid date",
                        "Write a date of the calendar as YYYY-MM-DD.",
                    )
                })?
                .plus(86_400),
        ),
    };
    let grantee = if f.person_identifier.trim().is_empty() {
        Grantee::Invitation
    } else {
        Grantee::Person {
            country: f.person_country.trim().to_owned(),
            person_identifier: f.person_identifier.trim().to_owned(),
        }
    };
    let level = Level::parse(&session.acr).unwrap_or(Level::Low);
    let req = GrantRequest {
        org_id,
        grantee,
        powers: f.powers.split_whitespace().map(str::to_owned).collect(),
        valid_until,
        may_delegate: f.may_delegate.is_some(),
        min_level: Level::parse(&f.min_level).unwrap_or(Level::Substantial),
        parent,
    };
    let (_, invitation) = app
        .mandates
        .grant(&session.account_id, level, req)
        .await
        .map_err(mandate_page_error)?;
    match invitation {
        Some(token) => {
            let link = format!(
                "{}/account/mandates/invitation#{token}",
                app.settings.issuer
            );
            render(&app, &headers, &session, notice_text("granted"), Some(link)).await
        }
        None => Ok(Redirect::to("/account/organizations?notice=granted").into_response()),
    }
}

#[derive(Deserialize)]
struct MandateForm {
    csrf: String,
    mandate_id: String,
}

async fn accept(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<MandateForm>,
) -> Result<Response, PageError> {
    checked(&app, &headers, &f.csrf)?;
    let Some(session) = full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    app.mandates
        .accept(&session.account_id, Some(&f.mandate_id), None)
        .await
        .map_err(mandate_page_error)?;
    Ok(Redirect::to("/account/organizations?notice=accepted").into_response())
}

async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<MandateForm>,
) -> Result<Response, PageError> {
    checked(&app, &headers, &f.csrf)?;
    let Some(session) = full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    app.mandates
        .revoke(&session.account_id, &f.mandate_id)
        .await
        .map_err(mandate_page_error)?;
    Ok(Redirect::to("/account/organizations?notice=revoked").into_response())
}

/// The page an invitation link opens. Without a full session it says to
/// sign in and open the link again (the fragment stays in the browser).
async fn invitation(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let signed_in = full_session(&app, &headers).await?.is_some();
    let (csrf_token, cookie) = csrf::token(&app.settings, &headers);
    let page = pages::Invitation {
        csrf: &csrf_token,
        signed_in,
    };
    Ok(with_cookie(pages::render(&page), cookie))
}

#[derive(Deserialize)]
struct InvitationForm {
    csrf: String,
    #[serde(default)]
    invitation: String,
}

async fn accept_invitation(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<InvitationForm>,
) -> Result<Response, PageError> {
    checked(&app, &headers, &f.csrf)?;
    let Some(session) = full_session(&app, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let token = f.invitation.trim();
    if !is_invitation_token(token) {
        return Err(PageError::bad_request(
            "This is not an invitation code",
            "Open the invitation link again, or paste the 43 characters after # in it.",
        ));
    }
    app.mandates
        .accept(&session.account_id, None, Some(token))
        .await
        .map_err(mandate_page_error)?;
    Ok(Redirect::to("/account/organizations?notice=accepted").into_response())
}

/// A token in a path: an invitation link of an earlier version, whose token
/// may be in an access log by now. Its invitation ends; nothing else is
/// shown, and a path that is no token is not found.
async fn exposed_invitation(
    State(app): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    if !is_invitation_token(&token) {
        return Err(PageError::Client {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            message: "There is no page at this address.".into(),
        });
    }
    app.mandates
        .end_exposed_invitation(&token)
        .await
        .map_err(mandate_page_error)?;
    Err(PageError::Client {
        status: StatusCode::GONE,
        title: "This invitation link can no longer be used",
        message: "Links of this form carried the invitation in the address, where it may have been \
                  recorded, so the invitation was ended. Please ask the person who invited you for a new \
                  link."
            .into(),
    })
}
