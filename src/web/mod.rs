//! The HTTP adapter: the only module that knows axum and askama.
//!
//! Handlers are thin: they parse the request into domain values, call the
//! domain, and turn its outcome into a response. Errors become responses in
//! one place per format ([`error`]). Layers, outermost first: the caller's
//! own `x-request-id` set aside, request id (always generated, then echoed
//! on the response), tracing, the internal-error
//! logger, metrics ([`metrics`]), panic catching, security headers, body
//! limit. `/metrics` is served by [`metrics::router`] on a listener of its
//! own, never by [`router`].

mod account;
mod activity;
mod admin;
mod authorize;
mod charts;
mod cookies;
mod csrf;
mod dashboard;
mod eid;
mod error;
mod extract;
mod logout;
mod meta;
pub mod metrics;
mod organizations;
mod pages;
mod passkeys;
mod registration;
pub mod session;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, HeaderValue, Request, Response, header};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{OnResponse, TraceLayer};

pub use admin::routes as admin_routes;
pub use error::{ApiError, PageError};

use crate::app::Civitas;
use crate::oidc::discovery::paths;

/// The request id header, generated for every request and returned.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The longest caller-sent `x-request-id` the log keeps.
const CALLER_REQUEST_ID_MAX: usize = 64;

/// Largest request body any endpoint reads (64 KiB): registration metadata
/// and token requests are small; anything larger is refused with 413.
const BODY_LIMIT: usize = 64 * 1024;

/// Strict policy for every response; pages load only Civitas's own script and
/// style, and can be framed by nobody.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type State = Arc<Civitas>;

/// Request ids: a random prefix per process and a counter, unique across
/// instances without a system call per request (they identify, they do not
/// authorize, so they need not be unpredictable).
#[derive(Clone)]
struct RandomRequestId {
    prefix: Arc<str>,
    counter: Arc<std::sync::atomic::AtomicU64>,
}

impl RandomRequestId {
    fn new() -> Self {
        Self {
            prefix: crate::secrets::random_token(6).into(),
            counter: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// The `x-request-id` a caller sent, sanitised: never the request id (a
/// caller could otherwise choose the reference an error page tells a
/// citizen to quote, or write into the log), only logged beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CallerRequestId(String);

impl CallerRequestId {
    /// Printable ASCII without spaces, anything else shown as `?`, at most
    /// [`CALLER_REQUEST_ID_MAX`] bytes.
    fn sanitise(value: &HeaderValue) -> Self {
        Self(
            value
                .as_bytes()
                .iter()
                .take(CALLER_REQUEST_ID_MAX)
                .map(|&b| {
                    if (0x21..=0x7e).contains(&b) {
                        char::from(b)
                    } else {
                        '?'
                    }
                })
                .collect(),
        )
    }
}

/// Takes the caller's `x-request-id` (every one of them) off the request,
/// so that the request id layer always generates one, and keeps the first,
/// sanitised, for the span.
async fn set_aside_caller_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let sent = req.headers().get(REQUEST_ID).map(CallerRequestId::sanitise);
    req.headers_mut().remove(REQUEST_ID);
    if let Some(sent) = sent {
        req.extensions_mut().insert(sent);
    }
    req
}

/// The span of a request, with OpenTelemetry's semantic field names (see
/// `crate::logging`). It carries the path only, never the query string:
/// codes and tokens travel there. A caller's own `x-request-id` is
/// `http.request.header.x_request_id`, recorded quoted.
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let caller = req
        .extensions()
        .get::<CallerRequestId>()
        .map(|c| c.0.as_str());
    tracing::info_span!(
        "request",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id = %id,
        http.request.header.x_request_id = caller,
    )
}

/// Records the status code on the request's span, and logs the response
/// at debug level (`RUST_LOG=civitas=debug`: an access log).
#[derive(Clone, Copy)]
struct RecordStatus;

impl<B> OnResponse<B> for RecordStatus {
    fn on_response(self, res: &Response<B>, latency: std::time::Duration, span: &tracing::Span) {
        span.record("http.response.status_code", res.status().as_u16());
        tracing::debug!(
            duration_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            "response"
        );
    }
}

/// The whole application.
pub fn router(app: State) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let mut layers = ServiceBuilder::new()
        .layer(axum::middleware::map_request(set_aside_caller_request_id))
        .layer(SetRequestIdLayer::new(
            request_id.clone(),
            RandomRequestId::new(),
        ))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(RecordStatus),
        )
        .layer(axum::middleware::from_fn(error::log_internal_errors))
        .layer(metrics::RecordLayer::new(app.clone()))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .into_inner();
    let hsts = app.settings.issuer_is_https().then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        )
    });
    let routes = Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route(paths::DISCOVERY, get(meta::discovery))
        .route(paths::OAUTH_METADATA, get(meta::discovery))
        .route(paths::JWKS, get(meta::jwks))
        .route("/static/civitas.css", get(meta::stylesheet))
        .route("/static/form_post.js", get(meta::form_post_script))
        .route("/static/invitation.js", get(meta::invitation_script))
        .route("/static/passkeys.js", get(meta::passkeys_script))
        .merge(passkeys::routes())
        .merge(account::routes())
        .merge(activity::routes())
        .merge(eid::routes())
        .merge(organizations::routes())
        .merge(admin::router())
        .merge(dashboard::routes())
        .merge(registration::routes())
        .merge(authorize::routes())
        .merge(token::routes())
        .merge(userinfo::routes())
        .merge(logout::routes())
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower::util::option_layer(hsts))
        .with_state(app);
    let _ = &mut layers;
    routes.layer(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_request_id_is_kept_printable_and_short() {
        let kept = |v: &[u8]| CallerRequestId::sanitise(&HeaderValue::from_bytes(v).unwrap()).0;
        assert_eq!(kept(b"abc-123"), "abc-123");
        assert_eq!(kept(b"a b\tc"), "a?b?c");
        assert_eq!(kept(b"caf\xc3\xa9"), "caf??");
        assert_eq!(kept(&[b'x'; 500]).len(), CALLER_REQUEST_ID_MAX);
    }
}
