//! Admin API: organizations (list, business-register import) and mandates
//! (an organization's list, revocation by the operator).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::super::extract::Body;
use super::{Admin, ApiError, AppState, not_found, reply};
use crate::mandates::register::{self, ImportError};
use crate::mandates::{Mandate, MandateError};

impl From<MandateError> for ApiError {
    fn from(e: MandateError) -> Self {
        match e {
            MandateError::NotFound => not_found("mandate"),
            MandateError::Store(s) => s.into(),
            other => Self::bad_request("invalid_request", other.to_string()),
        }
    }
}

/// An organization from the business register.
#[derive(Serialize, ToSchema)]
pub(super) struct OrganizationView {
    /// `CC:code`.
    org_id: String,
    country: String,
    register_code: String,
    name: String,
    /// Statutory representatives listed by the register.
    representatives: i64,
    updated_at: i64,
}

/// A mandate.
#[derive(Serialize, ToSchema)]
pub(super) struct MandateView {
    mandate_id: String,
    org_id: String,
    /// The representative's account id, once accepted.
    representative_account: Option<String>,
    powers: Vec<String>,
    valid_from: i64,
    valid_until: Option<i64>,
    may_delegate: bool,
    parent_id: Option<String>,
    /// The granter's account id (`erased` after an erasure).
    granted_by: String,
    granted_at: i64,
    accepted_at: Option<i64>,
    revoked_at: Option<i64>,
    /// Lowest level of assurance at which it may be used.
    min_level: String,
}

impl From<Mandate> for MandateView {
    fn from(m: Mandate) -> Self {
        Self {
            mandate_id: m.id,
            org_id: m.org_id,
            representative_account: m.representative.map(|a| a.as_str().to_owned()),
            powers: m.powers,
            valid_from: m.valid_from.0,
            valid_until: m.valid_until.map(|t| t.0),
            may_delegate: m.may_delegate,
            parent_id: m.parent,
            granted_by: m.granted_by.as_str().to_owned(),
            granted_at: m.granted_at.0,
            accepted_at: m.accepted_at.map(|t| t.0),
            revoked_at: m.revoked_at.map(|t| t.0),
            min_level: m.min_level.alias().to_owned(),
        }
    }
}

/// What an import did.
#[derive(Serialize, ToSchema)]
pub(super) struct ImportSummaryView {
    organizations: usize,
    representatives: usize,
    removed: usize,
}

/// What a revocation did.
#[derive(Serialize, ToSchema)]
pub(super) struct Revoked {
    mandate_id: String,
    /// Mandates that ended now: this one and those delegated from it
    /// (0 if it had already ended).
    ended: u64,
}

#[utoipa::path(get, path = "/admin/organizations", tag = "organizations",
    responses((status = 200, body = [OrganizationView]), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn list(State(app): State<AppState>, admin: Admin) -> Result<Response, ApiError> {
    let orgs: Vec<OrganizationView> = app
        .mandates
        .organizations()
        .await?
        .into_iter()
        .map(|o| OrganizationView {
            org_id: o.org_id,
            country: o.country,
            register_code: o.register_code,
            name: o.name,
            representatives: o.representatives,
            updated_at: o.updated_at.0,
        })
        .collect();
    admin
        .note(
            &app,
            &admin.entry("organization.list").with("count", orgs.len()),
        )
        .await?;
    Ok(reply(StatusCode::OK, &orgs))
}

/// The extract: the JSON shape of `civitas orgs import`.
#[utoipa::path(post, path = "/admin/register", tag = "organizations",
    request_body(content = Object, description = "A business-register extract: [{country, code, name, representatives: [{country, person_identifier, name, role?}]}]"),
    responses((status = 200, body = ImportSummaryView), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn import(
    State(app): State<AppState>,
    admin: Admin,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let refused = |d: String| ApiError::bad_request("invalid_request", d);
    let parsed = std::str::from_utf8(&body)
        .map_err(|_| ImportError::Format("the body is not UTF-8".into()))
        .and_then(register::parse);
    let entries = match parsed {
        Ok(e) => e,
        Err(e) => {
            admin
                .note(
                    &app,
                    &admin.entry("register.import").with("outcome", "invalid"),
                )
                .await?;
            return Err(refused(e.to_string()));
        }
    };
    // Records register.imported and this call's admin entry together.
    let summary = match register::import(
        &app.db,
        &app.eid_keys,
        &entries,
        admin.actor(),
        app.clock.now(),
    )
    .await
    {
        Ok(s) => s,
        Err(ImportError::Format(d)) => {
            admin
                .note(
                    &app,
                    &admin.entry("register.import").with("outcome", "invalid"),
                )
                .await?;
            return Err(refused(d));
        }
        Err(ImportError::Store(s)) => return Err(s.into()),
    };
    Ok(reply(
        StatusCode::OK,
        &ImportSummaryView {
            organizations: summary.organizations,
            representatives: summary.representatives,
            removed: summary.removed,
        },
    ))
}

#[utoipa::path(get, path = "/admin/organizations/{org_id}/mandates", tag = "organizations",
    params(("org_id" = String, Path, description = "`CC:code`, e.g. `EE:12345678`")),
    responses((status = 200, body = [MandateView]), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn mandates(
    State(app): State<AppState>,
    admin: Admin,
    Path(org_id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = admin.entry("mandate.list").with("org", org_id.as_str());
    let Some(list) = app.mandates.of_organization(&org_id).await? else {
        admin
            .note(&app, &entry.with("outcome", "not_found"))
            .await?;
        return Err(not_found("organization"));
    };
    let views: Vec<MandateView> = list.into_iter().map(MandateView::from).collect();
    admin.note(&app, &entry.with("count", views.len())).await?;
    Ok(reply(StatusCode::OK, &views))
}

#[utoipa::path(post, path = "/admin/mandates/{mandate_id}/revoke", tag = "organizations",
    params(("mandate_id" = String, Path)),
    responses((status = 200, body = Revoked), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn revoke(
    State(app): State<AppState>,
    admin: Admin,
    Path(mandate_id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = admin
        .entry("mandate.revoke")
        .with("mandate", mandate_id.as_str());
    let ended = match app
        .mandates
        .revoke_by_operator(&mandate_id, &admin.actor())
        .await
    {
        Ok(n) => n,
        Err(MandateError::NotFound) => {
            admin
                .note(&app, &entry.with("outcome", "not_found"))
                .await?;
            return Err(not_found("mandate"));
        }
        Err(e) => return Err(e.into()),
    };
    if ended == 0 {
        admin
            .note(&app, &entry.with("outcome", "unchanged"))
            .await?;
    }
    Ok(reply(StatusCode::OK, &Revoked { mandate_id, ended }))
}
