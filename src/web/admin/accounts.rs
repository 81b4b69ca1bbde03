//! Admin API: accounts. Summary, lock and unlock, erasure and export (data
//! protection), and the `admin` role.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Admin, ApiError, AppState, not_found, reply};
use crate::accounts::export::PersonIdentifier;
use crate::accounts::lock::LockChange;
use crate::accounts::roles::{self, Role};
use crate::accounts::{AccountError, AccountId};
use crate::ephemeral::within_limit;

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::NotFound => not_found("account"),
            AccountError::Store(s) => s.into(),
            AccountError::Cache(c) => c.into(),
            AccountError::Eid(e) => Self::internal(e),
        }
    }
}

/// An account at a glance.
#[derive(Serialize, ToSchema)]
pub(super) struct AccountSummary {
    account_id: String,
    display_name: String,
    email: Option<String>,
    email_verified: bool,
    created_at: i64,
    /// Locked since (Unix seconds), if locked.
    locked_at: Option<i64>,
    passkeys: i64,
    /// Unused recovery codes.
    recovery_codes: i64,
    /// eID proofing level, if an eID is bound.
    eid_level: Option<String>,
    active_grants: i64,
    roles: Vec<String>,
    owned_clients: Vec<String>,
}

/// The lock state after the call.
#[derive(Serialize, ToSchema)]
pub(super) struct LockState {
    account_id: String,
    locked: bool,
    /// Did the call change anything?
    changed: bool,
    /// Grants (and their tokens) revoked by this lock.
    grants_revoked: u64,
}

/// What an erasure removed.
#[derive(Serialize, ToSchema)]
pub(super) struct ErasureReport {
    account_id: String,
    erased: bool,
    passkeys: u64,
    grants: u64,
    consents: u64,
    mandates_revoked: u64,
}

/// Whether the account holds the role after the call.
#[derive(Serialize, ToSchema)]
pub(super) struct RoleState {
    account_id: String,
    role: String,
    held: bool,
    /// Did the call change anything?
    changed: bool,
}

/// Runs `result`; a missing account is noted (with `entry`) and is 404.
async fn or_not_found<T>(
    app: &AppState,
    admin: &Admin,
    entry: crate::audit::Event,
    result: Result<T, AccountError>,
) -> Result<T, ApiError> {
    match result {
        Ok(v) => Ok(v),
        Err(AccountError::NotFound) => {
            admin.note(app, &entry.with("outcome", "not_found")).await?;
            Err(not_found("account"))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/admin/accounts/{account_id}", tag = "accounts",
    params(("account_id" = String, Path)),
    responses((status = 200, body = AccountSummary), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn show(
    State(app): State<AppState>,
    admin: Admin,
    Path(account_id): Path<String>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let entry = admin.entry("account.show").account(&account);
    let Some(s) = app.accounts.summary(&account).await? else {
        admin
            .note(&app, &entry.with("outcome", "not_found"))
            .await?;
        return Err(not_found("account"));
    };
    admin.note(&app, &entry).await?;
    Ok(reply(
        StatusCode::OK,
        &AccountSummary {
            account_id: s.id.as_str().to_owned(),
            display_name: s.display_name,
            email: s.email,
            email_verified: s.email_verified,
            created_at: s.created_at.0,
            locked_at: s.locked_at.map(|t| t.0),
            passkeys: s.passkeys,
            recovery_codes: s.recovery_codes,
            eid_level: s.eid_level,
            active_grants: s.active_grants,
            roles: s.roles,
            owned_clients: s.owned_clients,
        },
    ))
}

#[utoipa::path(put, path = "/admin/accounts/{account_id}/lock", tag = "accounts",
    params(("account_id" = String, Path)),
    responses((status = 200, body = LockState), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn lock(
    State(app): State<AppState>,
    admin: Admin,
    Path(account_id): Path<String>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let entry = admin.entry("account.lock").account(&account);
    let result = app
        .accounts
        .lock(&app.sessions, &account, &admin.actor())
        .await;
    let change = or_not_found(&app, &admin, entry.clone(), result).await?;
    let (changed, grants_revoked) = match change {
        LockChange::Changed { grants_revoked } => (true, grants_revoked),
        LockChange::Unchanged => {
            admin
                .note(&app, &entry.with("outcome", "unchanged"))
                .await?;
            (false, 0)
        }
    };
    Ok(reply(
        StatusCode::OK,
        &LockState {
            account_id: account.as_str().to_owned(),
            locked: true,
            changed,
            grants_revoked,
        },
    ))
}

#[utoipa::path(delete, path = "/admin/accounts/{account_id}/lock", tag = "accounts",
    params(("account_id" = String, Path)),
    responses((status = 200, body = LockState), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn unlock(
    State(app): State<AppState>,
    admin: Admin,
    Path(account_id): Path<String>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let entry = admin.entry("account.unlock").account(&account);
    let result = app
        .accounts
        .unlock(&app.sessions, &account, &admin.actor())
        .await;
    let change = or_not_found(&app, &admin, entry.clone(), result).await?;
    let changed = change != LockChange::Unchanged;
    if !changed {
        admin
            .note(&app, &entry.with("outcome", "unchanged"))
            .await?;
    }
    Ok(reply(
        StatusCode::OK,
        &LockState {
            account_id: account.as_str().to_owned(),
            locked: false,
            changed,
            grants_revoked: 0,
        },
    ))
}

#[utoipa::path(delete, path = "/admin/accounts/{account_id}", tag = "accounts",
    params(("account_id" = String, Path)),
    responses((status = 200, body = ErasureReport), (status = 404, description = "No such account, or already erased"), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn erase(
    State(app): State<AppState>,
    admin: Admin,
    Path(account_id): Path<String>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let entry = admin.entry("account.erase").account(&account);
    let result = app
        .accounts
        .erase(&app.sessions, &account, &admin.actor())
        .await;
    let done = or_not_found(&app, &admin, entry, result).await?;
    Ok(reply(
        StatusCode::OK,
        &ErasureReport {
            account_id: account.as_str().to_owned(),
            erased: true,
            passkeys: done.passkeys,
            grants: done.grants,
            consents: done.consents,
            mandates_revoked: done.mandates_revoked,
        },
    ))
}

/// Exports with national identifiers in clear, per client and hour.
const IDENTIFIER_EXPORTS_PER_HOUR: u64 = 10;

/// `?include=person_identifier` (the only value `include` takes, and it may
/// be repeated): does the caller ask for the identifier in clear?
fn asks_for_identifier(query: Option<&str>) -> Result<bool, ApiError> {
    let mut asks = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "include" {
            if value != "person_identifier" {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "include takes only `person_identifier`",
                ));
            }
            asks = true;
        }
    }
    Ok(asks)
}

#[utoipa::path(get, path = "/admin/accounts/{account_id}/export", tag = "accounts",
    params(("account_id" = String, Path),
        ("include" = Option<String>, Query, description = "`person_identifier`: the national identifier in clear, for a token with scope civitas:admin:identifiers of a client the operator allowed it (at most 10 such exports per client and hour). Without it the identifier is masked.")),
    responses((status = 200, description = "Everything held about the citizen (format civitas-account-export/1)", body = Object),
        (status = 400, description = "`include` names something else"), (status = 404), (status = 401),
        (status = 403, description = "Not an admin token, or `include=person_identifier` without the identifiers scope and the operator's flag"),
        (status = 429, description = "Too many exports with identifiers by this client in the hour")),
    security(("bearer" = [])))]
pub(super) async fn export(
    State(app): State<AppState>,
    admin: Admin,
    Path(account_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let asks = asks_for_identifier(query.as_deref())?;
    let account = AccountId::new(account_id);
    let mut entry = admin.entry("account.export").account(&account);
    let identifier = if asks {
        entry = entry.with("person_identifier", "requested");
        if !admin.may_read_identifiers(&app).await? {
            admin
                .note(&app, &entry.with("outcome", "forbidden"))
                .await?;
            return Err(super::auth::identifiers_refused());
        }
        let key = format!("admin-identifiers:client:{}", admin.client_id);
        let hour = std::time::Duration::from_secs(3600);
        if !within_limit(&app.cache, &key, IDENTIFIER_EXPORTS_PER_HOUR, hour).await? {
            admin
                .note(&app, &entry.with("outcome", "rate_limited"))
                .await?;
            return Err(ApiError::Client {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                description: format!(
                    "at most {IDENTIFIER_EXPORTS_PER_HOUR} exports with identifiers per client and hour"
                ),
                www_authenticate: None,
            });
        }
        PersonIdentifier::Clear
    } else {
        PersonIdentifier::Masked
    };
    let result = app
        .accounts
        .export(&app.eid_keys, &account, &admin.actor(), identifier)
        .await;
    let doc = or_not_found(&app, &admin, entry, result).await?;
    Ok(reply(StatusCode::OK, &doc))
}

fn role_of(name: &str) -> Result<Role, ApiError> {
    Role::parse(name)
        .ok_or_else(|| ApiError::bad_request("invalid_request", format!("no role `{name}`")))
}

#[utoipa::path(put, path = "/admin/accounts/{account_id}/roles/{role}", tag = "accounts",
    params(("account_id" = String, Path), ("role" = String, Path, description = "`admin`")),
    responses((status = 200, body = RoleState), (status = 400), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn grant_role(
    State(app): State<AppState>,
    admin: Admin,
    Path((account_id, role)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let role = role_of(&role)?;
    let entry = admin
        .entry("role.grant")
        .account(&account)
        .with("role", role.as_str());
    // The grant reports what it did, so that two identical calls at once
    // each leave exactly one entry.
    let granted = roles::grant_role(&app.db, &account, role, &entry, app.clock.now()).await?;
    let changed = admin.granted(&app, entry, granted, "account").await?;
    Ok(reply(
        StatusCode::OK,
        &RoleState {
            account_id: account.as_str().to_owned(),
            role: role.as_str().to_owned(),
            held: true,
            changed,
        },
    ))
}

#[utoipa::path(delete, path = "/admin/accounts/{account_id}/roles/{role}", tag = "accounts",
    params(("account_id" = String, Path), ("role" = String, Path, description = "`admin`")),
    responses((status = 200, body = RoleState), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn revoke_role(
    State(app): State<AppState>,
    admin: Admin,
    Path((account_id, role)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let role = role_of(&role)?;
    let entry = admin
        .entry("role.revoke")
        .account(&account)
        .with("role", role.as_str());
    let changed = roles::revoke_role(&app.db, &account, role, &entry, app.clock.now()).await?;
    if !changed {
        admin
            .note(&app, &entry.with("outcome", "unchanged"))
            .await?;
    }
    Ok(reply(
        StatusCode::OK,
        &RoleState {
            account_id: account.as_str().to_owned(),
            role: role.as_str().to_owned(),
            held: false,
            changed,
        },
    ))
}
