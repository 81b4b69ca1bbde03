//! Browser side of the authorization endpoint: the request, the resumption
//! after sign-in, the consent page, and the response to the client.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::extract::Body;
use super::{PageError, State as AppState, pages, session};
use crate::oidc::authorize::{AuthorizationResponse, Outcome, ResponseMode};
use crate::oidc::discovery::paths;
use crate::sessions::Session;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::AUTHORIZE, get(authorize_get).post(authorize_post))
        .route("/authorize/resume", get(resume))
        .route("/consent", get(consent_page).post(consent_decide))
        .route("/authorize/cancel", axum::routing::post(cancel_step_up))
        .route("/authorize/represent", axum::routing::post(represent))
}

/// The browser's live session, if any.
pub(super) async fn current_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, PageError> {
    let Some(cookie) = session::read(&app.settings, headers) else {
        return Ok(None);
    };
    app.sessions
        .current(&cookie)
        .await
        .map_err(|e| crate::oidc::OAuthError::from(e).into())
}

/// The browser's live full session (not a recovery session), if any: what
/// the citizen's own pages need.
pub(super) async fn full_session(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, PageError> {
    Ok(current_session(app, headers)
        .await?
        .filter(|s| !s.restricted))
}

async fn authorize_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let session = current_session(&app, &headers).await?;
    let outcome = app
        .oidc
        .authorize(uri.query().unwrap_or_default().as_bytes(), session)
        .await?;
    Ok(respond(&app, outcome))
}

/// OIDC Core §3.1.2.1: the endpoint also takes a form POST.
async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, PageError> {
    let session = current_session(&app, &headers).await?;
    let outcome = app.oidc.authorize(&body, session).await?;
    Ok(respond(&app, outcome))
}

#[derive(Deserialize)]
struct Handle {
    auth: String,
}

async fn resume(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Handle>,
) -> Result<Response, PageError> {
    let session = current_session(&app, &headers).await?;
    Ok(respond(
        &app,
        app.oidc.resume_authorization(&q.auth, session).await?,
    ))
}

async fn consent_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Handle>,
) -> Result<Response, PageError> {
    let session = current_session(&app, &headers).await?;
    Ok(respond(
        &app,
        app.oidc.consent_page(&q.auth, session).await?,
    ))
}

#[derive(Deserialize)]
struct Decision {
    auth: String,
    csrf: String,
    decision: String,
}

async fn consent_decide(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Decision>,
) -> Result<Response, PageError> {
    let session = current_session(&app, &headers).await?;
    let allow = form.decision == "allow";
    Ok(respond(
        &app,
        app.oidc
            .decide_consent(&form.auth, &form.csrf, allow, session)
            .await?,
    ))
}

#[derive(Deserialize)]
struct Cancel {
    auth: String,
    csrf: String,
}

async fn cancel_step_up(
    State(app): State<AppState>,
    axum::Form(form): axum::Form<Cancel>,
) -> Result<Response, PageError> {
    Ok(respond(
        &app,
        app.oidc.cancel_step_up(&form.auth, &form.csrf).await?,
    ))
}

#[derive(Deserialize)]
struct Represent {
    auth: String,
    csrf: String,
    choice: String,
}

async fn represent(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Represent>,
) -> Result<Response, PageError> {
    let session = current_session(&app, &headers).await?;
    let outcome = app
        .oidc
        .choose_representation(&form.auth, &form.csrf, &form.choice, session)
        .await?;
    Ok(respond(&app, outcome))
}

/// Turns an authorization outcome into the browser's next step.
fn respond(app: &AppState, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Refused { title, message } => {
            PageError::bad_request(title, message).into_response()
        }
        Outcome::Respond(r) => to_client(&r),
        Outcome::SignIn { handle, create, .. } => {
            let mut to = format!("/signin?auth={handle}");
            if create {
                to.push_str("&create=1");
            }
            Redirect::to(&to).into_response()
        }
        Outcome::ChooseRepresentation(c) => allow_form_target(
            pages::render(&pages::Chooser {
                client_name: &c.client_name,
                requested: c.requested.join(", "),
                options: &c.options,
                handle: &c.handle,
                csrf: &c.csrf,
            }),
            Some(&c.redirect_uri),
        ),
        Outcome::StepUp(u) => allow_form_target(
            pages::render(&pages::StepUp {
                client_name: &u.client_name,
                required: u.required.alias(),
                achieved: u.achieved.alias(),
                passkey_would_help: u.passkey_would_help,
                handle: &u.handle,
                csrf: &u.csrf,
                connectors: app.eid.offered(),
            }),
            Some(&u.redirect_uri),
        ),
        Outcome::Consent(c) => allow_form_target(
            pages::render(&pages::Consent {
                client_name: &c.client_name,
                client_uri: c.client_uri.as_deref(),
                scopes: &c.scopes,
                claims: &c.claims,
                handle: &c.handle,
                csrf: &c.csrf,
            }),
            Some(&c.redirect_uri),
        ),
    }
}

/// The page's policy, with `form-action` also allowing the origin of
/// `target`: browsers apply `form-action` to the redirect that follows a form
/// submission, and the consent and logout forms end at the client.
pub(super) fn allow_form_target(mut res: Response, target: Option<&str>) -> Response {
    let origin = target
        .and_then(|t| url::Url::parse(t).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null");
    if let Some(origin) = origin {
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
}

/// Sends a response to the client's redirect URI, by redirect or form post.
fn to_client(r: &AuthorizationResponse) -> Response {
    match r.mode {
        ResponseMode::Query => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&r.location()) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        ResponseMode::FormPost => {
            let mut res = pages::render(&pages::FormPost {
                action: &r.redirect_uri,
                params: &r.params,
            });
            // The form must be allowed to post to the client's origin only.
            let origin = url::Url::parse(&r.redirect_uri)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            let csp = format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; form-action {origin}; frame-ancestors 'none'; base-uri 'none'"
            );
            if let Ok(v) = HeaderValue::from_str(&csp) {
                res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
            }
            res
        }
    }
}
