//! The UserInfo endpoint (OIDC Core §5.3): GET or POST with a bearer token
//! in the header, or in the form body of a POST (RFC 6750 §2.2).

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;

use super::extract::{Body, bearer};
use super::token::no_store_json;
use super::{ApiError, State as AppState};
use crate::oidc::discovery::paths;
use crate::oidc::params::Params;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(paths::USERINFO, get(userinfo_get).post(userinfo_post))
}

async fn answer(app: &AppState, token: Option<&str>) -> Result<Response, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::invalid_token(
            false,
            "an access token is required",
        ));
    };
    Ok(no_store_json(&app.oidc.userinfo(token).await?))
}

async fn userinfo_get(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    answer(&app, bearer(&headers)?).await
}

async fn userinfo_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let from_header = bearer(&headers)?;
    let mut form = Params::parse(&body)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let from_body = form.take("access_token");
    if from_header.is_some() && from_body.is_some() {
        // RFC 6750 §2: only one way of sending the token per request.
        return Err(ApiError::bad_request(
            "invalid_request",
            "send the access token in one place only",
        ));
    }
    answer(&app, from_header.or(from_body.as_deref())).await
}
