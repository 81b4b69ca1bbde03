//! Errors as HTTP responses, in one place per format.
//!
//! - [`ApiError`]: JSON endpoints, RFC 6749 §5.2 style
//!   (`{"error": code, "error_description": …}`), `Cache-Control: no-store`,
//!   and `WWW-Authenticate` where RFC 6750 §3 asks for it.
//! - [`PageError`]: browser endpoints, an HTML page.
//!
//! An internal failure becomes a 500 whose body says only that something
//! failed and which request id to quote; the cause travels in a response
//! extension to [`log_internal_errors`], which logs it with the request id
//! and never lets it reach the caller.
//!
//! An answer caused by the database or the cache also carries that in an
//! extension ([`super::metrics::DependencyFailure`]), which the metrics
//! layer counts.

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::metrics::DependencyFailure;
use crate::metrics::{Dependency, DependencyError, FailureKind};

/// The cause of an internal error, carried to the logging middleware.
#[derive(Debug, Clone)]
pub(crate) struct InternalCause {
    cause: String,
    html: bool,
}

/// An error from a JSON endpoint.
#[derive(Debug)]
pub enum ApiError {
    /// A client error with its RFC code.
    Client {
        /// HTTP status (4xx).
        status: StatusCode,
        /// RFC error code, for example `invalid_request`.
        code: &'static str,
        /// A description for the developer.
        description: String,
        /// `WWW-Authenticate` value, for 401 responses.
        www_authenticate: Option<String>,
    },
    /// The cache or database is unreachable: 503, retry later.
    Unavailable(String),
    /// Anything unexpected: 500, cause logged only.
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, description: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.into(),
            www_authenticate: None,
        }
    }

    /// A 401 for a missing or bad bearer token (RFC 6750 §3.1): without any
    /// credentials, no error code is given.
    pub fn invalid_token(presented: bool, description: impl Into<String>) -> Self {
        let description = description.into();
        let www = if presented {
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                description.replace('"', "'")
            )
        } else {
            "Bearer".to_owned()
        };
        Self::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_token",
            description,
            www_authenticate: Some(www),
        }
    }

    /// An internal error; `cause` is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

fn json_error(status: StatusCode, body: &ErrorBody<'_>) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Client {
                status,
                code,
                description,
                www_authenticate,
            } => {
                let mut res = json_error(
                    status,
                    &ErrorBody {
                        error: code,
                        error_description: &description,
                        request_id: None,
                    },
                );
                if let Some(www) = www_authenticate.and_then(|w| HeaderValue::from_str(&w).ok()) {
                    res.headers_mut().insert(header::WWW_AUTHENTICATE, www);
                }
                res
            }
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                let mut res = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &ErrorBody {
                        error: "temporarily_unavailable",
                        error_description: unavailable_description(&cause),
                        request_id: None,
                    },
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                mark_dependency(&mut res, &cause, FailureKind::Unavailable);
                res
            }
            Self::Internal(cause) => internal_response(cause, false),
        }
    }
}

/// Marks `res` with the dependency `cause` names, if any, for the metrics.
fn mark_dependency(res: &mut Response, cause: &str, kind: FailureKind) {
    if let Some(e) = DependencyError::classify(cause, kind) {
        res.extensions_mut().insert(DependencyFailure(e));
    }
}

/// A 500 whose cause rides to [`log_internal_errors`].
fn internal_response(cause: String, html: bool) -> Response {
    let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    mark_dependency(&mut res, &cause, FailureKind::Other);
    res.extensions_mut().insert(InternalCause { cause, html });
    res
}

/// What the caller of a 503 is told: which dependency is missing (the cache
/// or the database), never the cause itself, which may name hosts. Causes
/// are the `Display` of `EphemeralError` ("cache unavailable: …") and of
/// `StoreError` ("database: …"), also when carried by `OAuthError`.
fn unavailable_description(cause: &str) -> &'static str {
    match DependencyError::classify(cause, FailureKind::Unavailable).map(|e| e.dependency) {
        Some(Dependency::Cache) => "the cache (ephemeral state) is unavailable; retry shortly",
        Some(Dependency::Database) => "the database is unavailable; retry shortly",
        None => "the service is temporarily unavailable; retry shortly",
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e.to_string())
        } else {
            Self::internal(e)
        }
    }
}

impl From<crate::ephemeral::EphemeralError> for ApiError {
    fn from(e: crate::ephemeral::EphemeralError) -> Self {
        match e {
            crate::ephemeral::EphemeralError::Unavailable(_) => Self::Unavailable(e.to_string()),
            other @ crate::ephemeral::EphemeralError::ZeroTtl => Self::internal(other),
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    request_id: Option<&'a str>,
}

fn render_page(
    status: StatusCode,
    title: &str,
    message: &str,
    request_id: Option<&str>,
) -> Response {
    let page = ErrorPage {
        title,
        message,
        request_id,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, "error").into_response(),
    }
}

/// An error from a browser endpoint: an HTML page.
#[derive(Debug)]
pub enum PageError {
    /// Something the user or the relying party got wrong.
    Client {
        /// HTTP status (4xx).
        status: StatusCode,
        /// The page heading.
        title: &'static str,
        /// What happened and what to do.
        message: String,
    },
    /// The cache or database is unreachable: 503, retry later; the cause
    /// is logged only.
    Unavailable(String),
    /// Anything unexpected: 500, cause logged only.
    Internal(String),
}

impl PageError {
    /// A 400 page.
    pub fn bad_request(title: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            title,
            message: message.into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::Client {
                status,
                title,
                message,
            } => render_page(status, title, &message, None),
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                let mut res = render_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "Civitas cannot complete your request right now. Please try again in a moment.",
                    None,
                );
                mark_dependency(&mut res, &cause, FailureKind::Unavailable);
                res
            }
            Self::Internal(cause) => internal_response(cause, true),
        }
    }
}

/// Logs the cause of every internal error with the request id, and replaces
/// the response body with one that shows only the request id.
pub(crate) async fn log_internal_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(super::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let mut res = next.run(req).await;
    let Some(InternalCause { cause, html }) = res.extensions_mut().remove::<InternalCause>() else {
        return res;
    };
    tracing::error!(request_id, error = %cause, "internal error");
    let status = res.status();
    let mut out = if html {
        render_page(
            status,
            "Something went wrong",
            "Civitas could not complete your request. Please try again in a moment.",
            Some(&request_id),
        )
    } else {
        json_error(
            status,
            &ErrorBody {
                error: "server_error",
                error_description: "an internal error occurred; quote the request id when reporting it",
                request_id: Some(&request_id),
            },
        )
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        out.headers_mut().insert(super::REQUEST_ID, v);
    }
    out
}

/// Turns a panic into an internal error (logged with its message), so that a
/// bug in one request never takes the process down or shows a stack trace.
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    ApiError::Internal(format!("panic: {message}")).into_response()
}

/// 404 for unknown paths: a page for browsers, JSON for everything else.
pub(crate) async fn not_found(req: Request) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        render_page(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no page at this address. Check the link, or start again from the service you were using.",
            None,
        )
    } else {
        ApiError::Client {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            description: "no such endpoint".into(),
            www_authenticate: None,
        }
        .into_response()
    }
}

impl From<crate::oidc::OAuthError> for ApiError {
    /// RFC 6749 §5.2: `invalid_client` is 401 with a `WWW-Authenticate`
    /// challenge; RFC 6750 §3.1: `invalid_token` 401, `insufficient_scope` 403.
    fn from(e: crate::oidc::OAuthError) -> Self {
        use crate::oidc::OAuthError;
        match e {
            OAuthError::Protocol { code, description } => {
                let (status, www) = match code {
                    "invalid_client" => (
                        StatusCode::UNAUTHORIZED,
                        Some("Basic realm=\"civitas\"".to_owned()),
                    ),
                    "invalid_token" => (
                        StatusCode::UNAUTHORIZED,
                        Some(format!(
                            "Bearer error=\"invalid_token\", error_description=\"{}\"",
                            description.replace('"', "'")
                        )),
                    ),
                    "insufficient_scope" => (
                        StatusCode::FORBIDDEN,
                        Some("Bearer error=\"insufficient_scope\", scope=\"openid\"".to_owned()),
                    ),
                    _ => (StatusCode::BAD_REQUEST, None),
                };
                Self::Client {
                    status,
                    code,
                    description,
                    www_authenticate: www,
                }
            }
            OAuthError::Unavailable(cause) => Self::Unavailable(cause),
            OAuthError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<crate::oidc::OAuthError> for PageError {
    fn from(e: crate::oidc::OAuthError) -> Self {
        use crate::oidc::OAuthError;
        match e {
            OAuthError::Protocol { description, .. } => {
                Self::bad_request("Request could not be completed", description)
            }
            OAuthError::Unavailable(cause) => Self::Unavailable(cause),
            OAuthError::Internal(cause) => Self::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn unavailability_names_the_dependency_and_never_the_cause() {
        let cache: ApiError = crate::ephemeral::EphemeralError::Unavailable(
            "Connection refused (redis.internal)".into(),
        )
        .into();
        let res = cache.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        let b = body(res).await;
        assert_eq!(b["error"], "temporarily_unavailable");
        assert!(b["error_description"].as_str().unwrap().contains("cache"));
        assert!(!b.to_string().contains("redis.internal"));

        let lost = crate::store::StoreError::from(sqlx::Error::Protocol("db.internal".into()));
        let res = ApiError::from(lost).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let b = body(res).await;
        assert!(
            b["error_description"]
                .as_str()
                .unwrap()
                .contains("database")
        );
        assert!(!b.to_string().contains("db.internal"));

        // Through the protocol's error type too.
        let oauth = crate::oidc::OAuthError::from(crate::ephemeral::EphemeralError::Unavailable(
            "timed out".into(),
        ));
        let b = body(ApiError::from(oauth).into_response()).await;
        assert!(b["error_description"].as_str().unwrap().contains("cache"));

        // A failing statement is not an outage.
        let bad = crate::store::StoreError::from(sqlx::Error::RowNotFound);
        assert_eq!(
            ApiError::from(bad).into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
