//! The operator's admin API, under `/admin/`: clients, organizations and
//! mandates, accounts (lock, erasure, export, roles), the audit log. JSON in and out,
//! errors as `{error, error_description}`, `Cache-Control: no-store`.
//!
//! Authentication ([`auth`]): a bearer access token Civitas signed, with
//! scope `civitas:admin`, of a client the operator marked admin, checked in
//! the database at every call; national identifiers in clear in an export
//! also need scope `civitas:admin:identifiers` and the operator's second
//! flag. Every call that passes it and reaches its
//! handler leaves exactly one `admin.action` audit entry naming the client:
//! in the transaction of the change where there is one, standalone for
//! reads, no-ops and targets that do not exist.
//!
//! The routes come from one table ([`table`]), which builds the router and
//! is what [`routes`] lists; the OpenAPI document ([`openapi`]) is checked
//! against it by the tests.

mod accounts;
mod audit;
mod auth;
mod clients;
mod openapi;
mod orgs;

use std::collections::BTreeMap;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post, put};

use super::{ApiError, State as AppState};

pub(crate) use auth::Admin;

/// One route: method (lower case, as in OpenAPI), path, handler.
type Route = (&'static str, &'static str, MethodRouter<AppState>);

/// Every route of the admin API.
fn table() -> Vec<Route> {
    vec![
        ("get", "/admin/openapi.json", get(openapi::serve)),
        ("get", "/admin/clients", get(clients::list)),
        ("post", "/admin/clients", post(clients::register)),
        ("get", "/admin/clients/{client_id}", get(clients::show)),
        (
            "delete",
            "/admin/clients/{client_id}",
            delete(clients::delete),
        ),
        (
            "put",
            "/admin/clients/{client_id}/verified-claims",
            put(clients::allow_claims),
        ),
        (
            "put",
            "/admin/clients/{client_id}/owners/{account_id}",
            put(clients::add_owner),
        ),
        (
            "delete",
            "/admin/clients/{client_id}/owners/{account_id}",
            delete(clients::remove_owner),
        ),
        ("get", "/admin/audit", get(audit::page)),
        ("get", "/admin/audit/verify", get(audit::verify)),
        ("get", "/admin/organizations", get(orgs::list)),
        ("post", "/admin/register", post(orgs::import)),
        (
            "get",
            "/admin/organizations/{org_id}/mandates",
            get(orgs::mandates),
        ),
        (
            "post",
            "/admin/mandates/{mandate_id}/revoke",
            post(orgs::revoke),
        ),
        ("get", "/admin/accounts/{account_id}", get(accounts::show)),
        (
            "delete",
            "/admin/accounts/{account_id}",
            delete(accounts::erase),
        ),
        (
            "get",
            "/admin/accounts/{account_id}/export",
            get(accounts::export),
        ),
        (
            "put",
            "/admin/accounts/{account_id}/lock",
            put(accounts::lock),
        ),
        (
            "delete",
            "/admin/accounts/{account_id}/lock",
            delete(accounts::unlock),
        ),
        (
            "put",
            "/admin/accounts/{account_id}/roles/{role}",
            put(accounts::grant_role),
        ),
        (
            "delete",
            "/admin/accounts/{account_id}/roles/{role}",
            delete(accounts::revoke_role),
        ),
    ]
}

pub(super) fn router() -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for (_, path, handler) in table() {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}

/// Every route of the admin API as `(method, path)`, method in lower case
/// and path in OpenAPI's template syntax: what the router serves.
#[must_use]
pub fn routes() -> Vec<(String, String)> {
    table()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .collect()
}

/// A 404 `not_found` with `what` described.
fn not_found(what: &str) -> ApiError {
    ApiError::Client {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        description: format!("no such {what}"),
        www_authenticate: None,
    }
}

/// A JSON response with `status` and `Cache-Control: no-store`.
fn reply<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    let mut res = super::token::no_store_json(body);
    *res.status_mut() = status;
    res
}
