//! RP-Initiated Logout: the end-session endpoint and its confirmation.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::Body;
use super::{PageError, State as AppState, pages, session};
use crate::oidc::discovery::paths;
use crate::oidc::logout::{LogoutOutcome, PostLogout};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            paths::END_SESSION,
            get(end_session_get).post(end_session_post),
        )
        .route("/logout/confirm", post(confirm))
}

async fn end_session_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    end_session(&app, &headers, uri.query().unwrap_or_default().as_bytes()).await
}

async fn end_session_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, PageError> {
    end_session(&app, &headers, &body).await
}

async fn end_session(
    app: &AppState,
    headers: &HeaderMap,
    query: &[u8],
) -> Result<Response, PageError> {
    let session = super::authorize::current_session(app, headers).await?;
    match app.oidc.end_session(query, session.as_ref()).await? {
        LogoutOutcome::Invalid(message) => Err(PageError::bad_request(
            "Sign-out request is not valid",
            message,
        )),
        LogoutOutcome::Confirm {
            handle,
            csrf,
            client_name,
            redirect,
        } => Ok(super::authorize::allow_form_target(
            pages::render(&pages::LogoutConfirm {
                client_name: client_name.as_deref(),
                handle: &handle,
                csrf: &csrf,
            }),
            redirect.as_deref(),
        )),
        LogoutOutcome::Done(after) => sign_out(app, headers, &after).await,
    }
}

#[derive(Deserialize)]
struct Confirmation {
    handle: String,
    csrf: String,
}

async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Confirmation>,
) -> Result<Response, PageError> {
    match app.oidc.confirm_logout(&form.handle, &form.csrf).await? {
        Some(after) => sign_out(&app, &headers, &after).await,
        None => Err(PageError::bad_request(
            "Sign-out could not be confirmed",
            "This page has expired or was already used. You may already be signed out.",
        )),
    }
}

/// Ends the browser's session everywhere, clears the cookie and redirects or
/// shows the signed-out page.
async fn sign_out(
    app: &AppState,
    headers: &HeaderMap,
    after: &PostLogout,
) -> Result<Response, PageError> {
    if let Some(cookie) = session::read(&app.settings, headers)
        && let Some(ended) = app
            .sessions
            .end(&cookie)
            .await
            .map_err(crate::oidc::OAuthError::from)?
    {
        app.oidc.session_ended(&ended).await?;
    }
    let mut res = match &after.redirect {
        Some(to) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => pages::render(&pages::SignedOut {
            client_name: after.client_name.as_deref(),
        }),
    };
    res.headers_mut()
        .insert(header::SET_COOKIE, session::clear(&app.settings));
    Ok(res)
}
