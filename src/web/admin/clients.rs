//! Admin API: clients. List, show, register with the operator's options,
//! delete, set the verified claims allowed (with legal basis), and add or
//! remove owners. Making a client admin is not offered here: only the
//! command line does that (`civitas clients add --admin`, `clients
//! set-admin`), so the admin API cannot widen its own circle.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::extract::{Body, json};
use super::{Admin, ApiError, AppState, not_found, reply};
use crate::accounts::AccountId;
use crate::accounts::roles;
use crate::clients::{Client, ClientError, MetadataRequest, OperatorOptions, SubjectType};

/// A client as the operator sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct ClientView {
    client_id: String,
    /// The registered metadata (RFC 7591 names).
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    first_party: bool,
    /// `pairwise` or `public`.
    subject_type: String,
    /// Allowed the admin API (set only with the command line).
    admin: bool,
    created_at: i64,
    updated_at: i64,
}

impl ClientView {
    fn of(c: &Client) -> Result<Self, ApiError> {
        Ok(Self {
            client_id: c.client_id.as_str().to_owned(),
            metadata: serde_json::to_value(&c.metadata).map_err(ApiError::internal)?,
            first_party: c.first_party,
            subject_type: match c.subject_type {
                SubjectType::Pairwise => "pairwise".into(),
                SubjectType::Public => "public".into(),
            },
            admin: c.admin,
            created_at: c.created_at.0,
            updated_at: c.updated_at.0,
        })
    }
}

/// A verified claim a client may receive, with the legal basis.
#[derive(Serialize, ToSchema)]
pub(super) struct AllowedClaim {
    claim: String,
    legal_basis: String,
}

/// One client in detail.
#[derive(Serialize, ToSchema)]
pub(super) struct ClientDetail {
    #[serde(flatten)]
    client: ClientView,
    allowed_claims: Vec<AllowedClaim>,
    /// Account ids of its owners.
    owners: Vec<String>,
}

/// A client to register, with the operator's decisions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterClient {
    /// Client metadata as in RFC 7591 (validated the same way).
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// First-party service: consent is not asked.
    #[serde(default)]
    first_party: bool,
    /// Public (non-pairwise) subject identifiers.
    #[serde(default)]
    public_subject: bool,
    /// Issue a registration access token (RFC 7592).
    #[serde(default)]
    registration_token: bool,
}

/// A registered client and the secrets issued to it (shown once).
#[derive(Serialize, ToSchema)]
pub(super) struct Registered {
    #[serde(flatten)]
    client: ClientView,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_access_token: Option<String>,
}

/// The verified claims a client may receive (replaces the whole list).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AllowClaims {
    /// Among given_name, family_name, birthdate, nationalities, person_identifier.
    claims: Vec<String>,
    /// Required unless `claims` is empty.
    #[serde(default)]
    legal_basis: String,
}

/// Whether an account owns a client after the call.
#[derive(Serialize, ToSchema)]
pub(super) struct Ownership {
    client_id: String,
    account_id: String,
    owner: bool,
    /// Did the call change anything?
    changed: bool,
}

/// What a deletion did.
#[derive(Serialize, ToSchema)]
pub(super) struct Deleted {
    client_id: String,
    deleted: bool,
}

fn client_error(e: ClientError) -> ApiError {
    match e {
        ClientError::NotFound(_) => not_found("client"),
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/admin/clients", tag = "clients",
    responses((status = 200, body = [ClientView]), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn list(State(app): State<AppState>, admin: Admin) -> Result<Response, ApiError> {
    let clients = app.clients.list().await?;
    let views = clients
        .iter()
        .map(ClientView::of)
        .collect::<Result<Vec<_>, _>>()?;
    admin
        .note(&app, &admin.entry("client.list").with("count", views.len()))
        .await?;
    Ok(reply(StatusCode::OK, &views))
}

#[utoipa::path(get, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientDetail), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn show(
    State(app): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = admin.entry("client.show").client(&client_id);
    let Some(client) = app.clients.get(&client_id).await? else {
        admin
            .note(&app, &entry.with("outcome", "not_found"))
            .await?;
        return Err(not_found("client"));
    };
    let allowed_claims = app
        .clients
        .allowed_claims(&client_id)
        .await?
        .into_iter()
        .map(|(claim, legal_basis)| AllowedClaim { claim, legal_basis })
        .collect();
    let owners = roles::owners_of(&app.db, &client_id)
        .await?
        .into_iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    let detail = ClientDetail {
        client: ClientView::of(&client)?,
        allowed_claims,
        owners,
    };
    admin.note(&app, &entry).await?;
    Ok(reply(StatusCode::OK, &detail))
}

#[utoipa::path(post, path = "/admin/clients", tag = "clients",
    request_body = RegisterClient,
    responses((status = 201, body = Registered), (status = 400), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn register(
    State(app): State<AppState>,
    admin: Admin,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: RegisterClient = json(&headers, &body, "invalid_request")?;
    let metadata: MetadataRequest = serde_json::from_value(request.metadata)
        .map_err(|e| ApiError::bad_request("invalid_client_metadata", e.to_string()))?;
    let metadata = match metadata.validate() {
        Ok(m) => m,
        Err(e) => {
            admin
                .note(
                    &app,
                    &admin.entry("client.register").with("outcome", "invalid"),
                )
                .await?;
            return Err(e.into());
        }
    };
    let options = OperatorOptions {
        first_party: request.first_party,
        subject_type: if request.public_subject {
            SubjectType::Public
        } else {
            SubjectType::Pairwise
        },
        registration_token: request.registration_token,
        admin: false,
    };
    // Records client.registered and this call's admin entry together.
    let issued = app
        .clients
        .register(metadata, options, &admin.actor())
        .await?;
    let registered = Registered {
        client: ClientView::of(&issued.client)?,
        client_secret: issued.client_secret.map(|s| s.expose().to_owned()),
        registration_access_token: issued
            .registration_access_token
            .map(|s| s.expose().to_owned()),
    };
    Ok(reply(StatusCode::CREATED, &registered))
}

#[utoipa::path(delete, path = "/admin/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn delete(
    State(app): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    if !app.clients.delete(&client_id, &admin.actor()).await? {
        let entry = admin.entry("client.delete").client(&client_id);
        admin
            .note(&app, &entry.with("outcome", "not_found"))
            .await?;
        return Err(not_found("client"));
    }
    Ok(reply(
        StatusCode::OK,
        &Deleted {
            client_id,
            deleted: true,
        },
    ))
}

#[utoipa::path(put, path = "/admin/clients/{client_id}/verified-claims", tag = "clients",
    params(("client_id" = String, Path)),
    request_body = AllowClaims,
    responses((status = 200, body = [AllowedClaim]), (status = 400), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn allow_claims(
    State(app): State<AppState>,
    admin: Admin,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let request: AllowClaims = json(&headers, &body, "invalid_request")?;
    let done = app
        .clients
        .allow_claims(
            &client_id,
            &request.claims,
            &request.legal_basis,
            &admin.actor(),
        )
        .await;
    if let Err(e) = done {
        let outcome = match &e {
            ClientError::NotFound(_) => "not_found",
            ClientError::Store(_) => return Err(e.into()),
            _ => "invalid",
        };
        let entry = admin.entry("client.allow_claims").client(&client_id);
        admin.note(&app, &entry.with("outcome", outcome)).await?;
        return Err(client_error(e));
    }
    let allowed: Vec<AllowedClaim> = app
        .clients
        .allowed_claims(&client_id)
        .await?
        .into_iter()
        .map(|(claim, legal_basis)| AllowedClaim { claim, legal_basis })
        .collect();
    Ok(reply(StatusCode::OK, &allowed))
}

#[utoipa::path(put, path = "/admin/clients/{client_id}/owners/{account_id}", tag = "clients",
    params(("client_id" = String, Path), ("account_id" = String, Path)),
    responses((status = 200, body = Ownership), (status = 404), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn add_owner(
    State(app): State<AppState>,
    admin: Admin,
    Path((client_id, account_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let entry = admin
        .entry("client.add_owner")
        .client(&client_id)
        .account(&account);
    let granted = roles::add_owner(&app.db, &client_id, &account, &entry, app.clock.now()).await?;
    let changed = admin
        .granted(&app, entry, granted, "client or account")
        .await?;
    Ok(reply(
        StatusCode::OK,
        &Ownership {
            client_id,
            account_id: account.as_str().to_owned(),
            owner: true,
            changed,
        },
    ))
}

#[utoipa::path(delete, path = "/admin/clients/{client_id}/owners/{account_id}", tag = "clients",
    params(("client_id" = String, Path), ("account_id" = String, Path)),
    responses((status = 200, body = Ownership), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub(super) async fn remove_owner(
    State(app): State<AppState>,
    admin: Admin,
    Path((client_id, account_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = AccountId::new(account_id);
    let entry = admin
        .entry("client.remove_owner")
        .client(&client_id)
        .account(&account);
    let changed =
        roles::remove_owner(&app.db, &client_id, &account, &entry, app.clock.now()).await?;
    if !changed {
        admin
            .note(&app, &entry.with("outcome", "unchanged"))
            .await?;
    }
    Ok(reply(
        StatusCode::OK,
        &Ownership {
            client_id,
            account_id: account.as_str().to_owned(),
            owner: false,
            changed,
        },
    ))
}
