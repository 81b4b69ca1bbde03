//! The HTTP adapter: the only module that knows axum and askama.
//!
//! Handlers are thin: they parse the request into domain values, call the
//! domain, and turn its outcome into a response. Errors become responses in
//! one place per format ([`error`]). Layers, outermost first: request id
//! (generated, then echoed on the response), tracing, the internal-error
//! logger, panic catching, security headers, body limit.

mod account;
mod activity;
mod admin;
mod authorize;
mod csrf;
mod eid;
mod error;
mod extract;
mod logout;
mod meta;
mod organizations;
mod pages;
mod passkeys;
mod registration;
pub mod session;
pub mod simulator;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use admin::routes as admin_routes;
pub use error::{ApiError, PageError};

use crate::app::Civitas;
use crate::oidc::discovery::paths;

/// The request id header, generated for every request and returned.
pub(crate) const REQUEST_ID: &str = "x-request-id";

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

/// The whole application.
pub fn router(app: State) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    let mut layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(
            request_id.clone(),
            RandomRequestId::new(),
        ))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path only: query strings may carry codes and tokens.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(axum::middleware::from_fn(error::log_internal_errors))
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
        .route("/static/passkeys.js", get(meta::passkeys_script))
        .merge(passkeys::routes())
        .merge(account::routes())
        .merge(activity::routes())
        .merge(eid::routes())
        .merge(organizations::routes())
        .merge(admin::router())
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
