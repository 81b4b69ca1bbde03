//! The token, introspection and revocation endpoints: form-encoded requests
//! with client authentication, JSON answers that are never cached.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::extract::Body;
use super::{ApiError, State as AppState};
use crate::oidc::discovery::paths;
use crate::oidc::params::Params;
use crate::oidc::{ClientCredentials, OAuthError};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::TOKEN, post(token))
        .route(paths::INTROSPECTION, post(introspect))
        .route(paths::REVOCATION, post(revoke))
}

/// Parses a form body and the client credentials it carries (RFC 6749 §2.3).
pub(super) fn form_and_credentials(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Params, ClientCredentials), ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut params =
        Params::parse(body).map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                ApiError::from(OAuthError::invalid_client("malformed Authorization header"))
            })?;
            match v.split_once(' ') {
                Some((scheme, creds)) if scheme.eq_ignore_ascii_case("basic") => {
                    Some(ClientCredentials::parse_basic(creds).map_err(ApiError::from)?)
                }
                _ => {
                    return Err(OAuthError::invalid_client(
                        "only Basic authorization is accepted here",
                    )
                    .into());
                }
            }
        }
    };
    let creds = ClientCredentials {
        basic,
        client_id: params.take("client_id"),
        client_secret: params.take("client_secret"),
        client_assertion_type: params.take("client_assertion_type"),
        client_assertion: params.take("client_assertion"),
    };
    Ok((params, creds))
}

/// JSON with `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(super) fn no_store_json<T: serde::Serialize>(body: &T) -> Response {
    let mut res = axum::Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let (params, creds) = form_and_credentials(&headers, &body)?;
    let grant = params
        .get("grant_type")
        .and_then(crate::metrics::TokenGrant::from_grant_type);
    let response = app.oidc.token(params, &creds).await?;
    if let Some(grant) = grant {
        app.metrics.token_issued(grant);
    }
    Ok(no_store_json(&response))
}

async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let (params, creds) = form_and_credentials(&headers, &body)?;
    Ok(no_store_json(&app.oidc.introspect(params, &creds).await?))
}

async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let (params, creds) = form_and_credentials(&headers, &body)?;
    app.oidc.revoke(params, &creds).await?;
    Ok(no_store_json(&serde_json::json!({})))
}
