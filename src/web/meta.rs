//! Discovery, JWKS, health and readiness, and the stylesheet: all served
//! from memory.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::State as AppState;

/// JSON bytes with caching suitable for public metadata; browsers of any
/// origin may read it (single-page relying parties fetch both).
fn public_json(body: bytes::Bytes, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn discovery(State(app): State<AppState>) -> Response {
    public_json(app.discovery(), "application/json")
}

pub(super) async fn jwks(State(app): State<AppState>) -> Response {
    public_json(app.keys.jwks(), "application/jwk-set+json")
}

pub(super) async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct ReadyBody {
    status: &'static str,
    database: &'static str,
    cache: &'static str,
}

pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    let r = app.readiness(Duration::from_secs(2)).await;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let ready = r.database && r.cache && !r.draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = ReadyBody {
        status: if r.draining {
            "draining"
        } else if ready {
            "ready"
        } else {
            "unavailable"
        },
        database: word(r.database),
        cache: word(r.cache),
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/static/civitas.css"),
    )
        .into_response()
}

pub(super) async fn form_post_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/static/form_post.js"),
    )
        .into_response()
}

pub(super) async fn invitation_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/static/invitation.js"),
    )
        .into_response()
}

pub(super) async fn passkeys_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/static/passkeys.js"),
    )
        .into_response()
}
