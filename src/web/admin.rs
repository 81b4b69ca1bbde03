//! The operator's admin API: `POST /admin/register` imports a
//! business-register extract (the JSON shape of `civitas orgs import`).
//! Bearer-protected by `admin_token`; closed when none is configured.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;

use super::extract::{Body, bearer};
use super::{ApiError, State as AppState};
use crate::mandates::register::{self, ImportError};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/register", post(import))
}

async fn import(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let presented = bearer(&headers)?;
    let authorized = match (&app.settings.admin_token, presented) {
        (Some(expected), Some(token)) => expected.matches(token),
        _ => false,
    };
    if !authorized {
        return Err(ApiError::invalid_token(
            presented.is_some(),
            "the admin API needs the operator's admin token",
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_request", "the body is not UTF-8"))?;
    let entries = register::parse(text)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let summary = register::import(
        &app.db,
        &app.eid_keys,
        &entries,
        crate::audit::Actor::Operator,
        app.clock.now(),
    )
    .await
    .map_err(|e| match e {
        ImportError::Format(d) => ApiError::bad_request("invalid_request", d),
        ImportError::Store(s) => s.into(),
    })?;
    Ok(super::token::no_store_json(&serde_json::json!({
        "organizations": summary.organizations,
        "representatives": summary.representatives,
        "removed": summary.removed,
    })))
}
