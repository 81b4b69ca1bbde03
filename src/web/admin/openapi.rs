//! The admin API's OpenAPI 3.1 document, generated from the handlers'
//! annotations (utoipa) and served at `GET /admin/openapi.json` without
//! authentication. The tests compare its paths with the router's table.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, audit, clients, orgs};

/// The bearer scheme: an access token with scope `civitas:admin` (and
/// `civitas:admin:identifiers` for identifiers in clear).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from the token endpoint (client_credentials, \
                         scope civitas:admin) of a client the operator marked admin. \
                         National identifiers in clear in an export also need scope \
                         civitas:admin:identifiers, of a client the operator marked for them.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Civitas admin API",
        description = "The operator's API: clients, organizations and mandates, accounts \
                       (lock, data-protection export and erasure, roles). See docs/admin-api.md."
    ),
    paths(
        serve,
        clients::list,
        clients::register,
        clients::show,
        clients::delete,
        clients::allow_claims,
        clients::add_owner,
        clients::remove_owner,
        orgs::list,
        orgs::import,
        orgs::mandates,
        orgs::revoke,
        accounts::show,
        accounts::erase,
        accounts::export,
        accounts::lock,
        accounts::unlock,
        accounts::grant_role,
        accounts::revoke_role,
        audit::page,
        audit::verify,
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "clients", description = "Relying parties"),
        (name = "organizations", description = "Business register and mandates"),
        (name = "accounts", description = "Citizens' accounts and data protection"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "meta", description = "This document"),
    )
)]
struct AdminApi;

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| AdminApi::openapi().to_json().unwrap_or_default());

/// This document.
#[utoipa::path(get, path = "/admin/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(super) async fn serve() -> Response {
    let mut res = DOCUMENT.as_str().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
