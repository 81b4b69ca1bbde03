//! Reading requests: bodies within the limit, JSON with errors that name the
//! field, and bearer tokens (RFC 6750 §2.1).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A request body read within the body limit; too large is a 413 JSON error.
#[derive(Debug)]
pub(crate) struct Body(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::Client {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        code: "invalid_request",
                        description: "the request body is too large".into(),
                        www_authenticate: None,
                    }
                } else {
                    ApiError::bad_request("invalid_request", "the request body could not be read")
                }
            })
    }
}

/// Parses a JSON body into `T`; a wrong content type, malformed JSON, invalid
/// UTF-8, a duplicate member or a wrong type is `code` with a description
/// that names the offending member.
pub(crate) fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    code: &'static str,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::Client {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code,
            description: "the request body must be application/json".into(),
            www_authenticate: None,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = if path == "." {
            format!("the request body is not valid JSON: {inner}")
        } else {
            format!("`{path}`: {inner}")
        };
        ApiError::bad_request(code, what)
    })?;
    de.end().map_err(|_| {
        ApiError::bad_request(
            code,
            "the request body has trailing data after the JSON value",
        )
    })?;
    Ok(value)
}

/// The bearer token of the `Authorization` header, if one is present.
///
/// # Errors
/// A 401 if the header is present but not a well-formed bearer token.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_token(true, "the Authorization header is not valid"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::invalid_token(
            true,
            "expected `Authorization: Bearer <token>`",
        )),
    }
}
