//! The audit log through the admin API: a page of entries as JSON Lines,
//! and the chain's verification. Each call is itself recorded (an
//! `admin.action` read), after the page it returns was read, so a page
//! never contains its own call.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Admin, reply};
use crate::web::{ApiError, State as AppState};

/// The largest page.
const MAX_PAGE: i64 = 10_000;

/// The media type of JSON Lines.
const JSON_LINES: &str = "application/jsonl";

/// Which entries.
#[derive(Deserialize, IntoParams)]
pub(super) struct PageQuery {
    /// Entries after this sequence number (0, the default, from the start).
    #[serde(default)]
    after: i64,
    /// At most this many (default and maximum 10 000).
    #[serde(default)]
    limit: Option<i64>,
}

/// What `civitas audit verify` reports.
#[derive(Serialize, ToSchema)]
pub(super) struct VerifyView {
    /// Is the chain intact?
    intact: bool,
    /// Entries checked.
    entries: u64,
    /// Signed checkpoints checked.
    checkpoints: u64,
    /// Checkpoints signed by a key neither in the keys directory nor
    /// exported: not checked, they cover nothing.
    unverifiable_checkpoints: u64,
    /// Entries written after the check began, not yet sealed.
    unsealed: u64,
    /// The first broken entry's sequence number, if any.
    broken_at: Option<i64>,
    /// Why it is broken.
    reason: Option<String>,
}

/// A page of the log, oldest first, one JSON object per line: `seq`,
/// `occurred_at`, `kind`, `actor`, `account_id`, `client_id`, `detail`,
/// `prev_hash`, `hash`. Fetch the next page with `after` = the last `seq`.
#[utoipa::path(get, path = "/admin/audit", tag = "audit",
    params(PageQuery),
    responses((status = 200, description = "JSON Lines, one entry per line; empty when there are no more", content_type = "application/jsonl"),
        (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn page(
    State(app): State<AppState>,
    admin: Admin,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) || q.after < 0 {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit must be 1 to {MAX_PAGE} and after at least 0"),
        ));
    }
    // Chain what was written since the last round first, as the command
    // line does, so that the page holds everything committed before it.
    crate::audit::seal(&app.db).await?;
    let entries = crate::audit::query::page(&app.db, q.after, limit).await?;
    let mut body = Vec::with_capacity(entries.len() * 300);
    for e in &entries {
        serde_json::to_writer(&mut body, e)
            .map_err(|e| ApiError::internal(format!("audit export: {e}")))?;
        body.push(b'\n');
    }
    admin
        .note(
            &app,
            &admin
                .entry("audit.export")
                .with("after", q.after)
                .with("count", entries.len()),
        )
        .await?;
    let mut res = (StatusCode::OK, body).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_LINES));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Checks the whole chain, its signed checkpoints, the pruned marker and
/// the checkpoint cadence, as `civitas audit verify` does (without the
/// exported checkpoints of `--trusted`).
#[utoipa::path(get, path = "/admin/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyView), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn verify(
    State(app): State<AppState>,
    admin: Admin,
) -> Result<Response, ApiError> {
    crate::audit::seal(&app.db).await?;
    let how = crate::audit::Verification::new(&app.settings.audit, app.clock.now());
    let report = crate::audit::verify(&app.db, &app.keys, &how).await?;
    admin
        .note(
            &app,
            &admin
                .entry("audit.verify")
                .with("intact", report.is_intact()),
        )
        .await?;
    Ok(reply(
        StatusCode::OK,
        &VerifyView {
            intact: report.is_intact(),
            entries: report.entries,
            checkpoints: report.checkpoints,
            unverifiable_checkpoints: report.unverifiable_checkpoints,
            unsealed: report.unsealed,
            broken_at: report.broken.as_ref().map(|b| b.seq),
            reason: report.broken.map(|b| b.reason),
        },
    ))
}
