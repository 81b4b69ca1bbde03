//! Dynamic Client Registration (RFC 7591) and Client Configuration
//! Management (RFC 7592).
//!
//! `POST /register` needs the operator's initial access token; the client
//! configuration endpoint `/register/{client_id}` needs the client's
//! registration access token, which is rotated at every use (RFC 7592 §3:
//! the client must then discard the old one), because Civitas keeps only its
//! hash and can return a token only when it has just made it.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::extract::{Body, bearer, json};
use super::{ApiError, State as AppState};
use crate::audit::Actor;
use crate::clients::{Client, ClientError, Issued, MetadataRequest, OperatorOptions};
use crate::oidc::discovery::paths;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::REGISTRATION, post(register))
        .route(
            "/register/{client_id}",
            axum::routing::get(read).put(update).delete(delete),
        )
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidRedirectUri(d) => Self::bad_request("invalid_redirect_uri", d),
            ClientError::InvalidMetadata(d) => Self::bad_request("invalid_client_metadata", d),
            ClientError::Unauthorized | ClientError::NotFound(_) => {
                Self::invalid_token(true, "the registration access token is invalid")
            }
            ClientError::Store(e) => e.into(),
        }
    }
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3).
fn client_information(
    issuer: &str,
    issued: &Issued,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let client: &Client = &issued.client;
    let mut body = match serde_json::to_value(&client.metadata).map_err(ApiError::internal)? {
        serde_json::Value::Object(map) => map,
        _ => return Err(ApiError::internal("client metadata is not an object")),
    };
    body.insert("client_id".into(), client.client_id.as_str().into());
    body.insert("client_id_issued_at".into(), client.created_at.0.into());
    if let Some(secret) = &issued.client_secret {
        body.insert("client_secret".into(), secret.expose().into());
    }
    if client.metadata.token_endpoint_auth_method.uses_secret() {
        // Server-generated secrets do not expire; the operator resets them.
        body.insert("client_secret_expires_at".into(), 0.into());
    }
    if let Some(token) = &issued.registration_access_token {
        body.insert("registration_access_token".into(), token.expose().into());
        body.insert(
            "registration_client_uri".into(),
            format!("{issuer}/register/{}", client.client_id).into(),
        );
    }
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// RFC 7591 §3: register a new client.
async fn register(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    // RFC 7591 §3: the initial access token gates registration; without a
    // configured token, registration is closed and no token is right.
    let presented = bearer(&headers)?;
    let authorized = match (&app.settings.registration_token, presented) {
        (Some(expected), Some(token)) => expected.matches(token),
        _ => false,
    };
    if !authorized {
        return Err(ApiError::invalid_token(
            presented.is_some(),
            "registration needs the operator's initial access token",
        ));
    }
    let request: MetadataRequest = json(&headers, &body, "invalid_client_metadata")?;
    let metadata = request.validate()?;
    let issued = app
        .clients
        .register(metadata, OperatorOptions::default(), &Actor::Registrant)
        .await?;
    client_information(&app.settings.issuer, &issued, StatusCode::CREATED)
}

/// Authenticates a configuration request and rotates the token.
async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Issued, ApiError> {
    let Some(token) = bearer(headers)? else {
        return Err(ApiError::invalid_token(
            false,
            "the registration access token is missing",
        ));
    };
    let client = app.clients.authorize_management(client_id, token).await?;
    Ok(app
        .clients
        .rotate_registration_token(&client, token)
        .await?)
}

/// RFC 7592 §2.1: read the client's configuration.
async fn read(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let issued = authorize(&app, &headers, &client_id).await?;
    client_information(&app.settings.issuer, &issued, StatusCode::OK)
}

/// RFC 7592 §2.2: replace the client's metadata.
async fn update(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let Some(token) = bearer(&headers)? else {
        return Err(ApiError::invalid_token(
            false,
            "the registration access token is missing",
        ));
    };
    let client = app.clients.authorize_management(&client_id, token).await?;
    let request: MetadataRequest = json(&headers, &body, "invalid_client_metadata")?;
    if request.client_id.as_deref() != Some(client_id.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the body's client_id must be present and equal the client's",
        ));
    }
    if request.registration_access_token.is_some()
        || request.registration_client_uri.is_some()
        || request.client_secret_expires_at.is_some()
        || request.client_id_issued_at.is_some()
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            "registration_access_token, registration_client_uri, client_secret_expires_at and \
             client_id_issued_at must not be sent in an update (RFC 7592 §2.2)",
        ));
    }
    if let Some(secret) = &request.client_secret
        && !client.verify_secret(secret)
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            "client_secret does not match the client's secret",
        ));
    }
    let metadata = request.validate()?;
    let updated = app
        .clients
        .update(
            &client,
            metadata,
            &Actor::Client(client.client_id.to_string()),
        )
        .await?;
    let issued = app
        .clients
        .rotate_registration_token(&updated.client, token)
        .await?;
    let issued = Issued {
        client_secret: updated.client_secret,
        ..issued
    };
    client_information(&app.settings.issuer, &issued, StatusCode::OK)
}

/// RFC 7592 §2.3: deregister the client.
async fn delete(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = bearer(&headers)? else {
        return Err(ApiError::invalid_token(
            false,
            "the registration access token is missing",
        ));
    };
    app.clients.authorize_management(&client_id, token).await?;
    app.clients
        .delete(&client_id, &Actor::Client(client_id.to_string()))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
