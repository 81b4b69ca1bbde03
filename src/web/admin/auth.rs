//! Authentication of the admin API: an access token Civitas signed, sent
//! as `Authorization: Bearer` (RFC 6750 §2.1).
//!
//! The token is verified as userinfo and introspection verify one
//! (signature by a published key, `typ` `at+jwt`, issuer, expiry, not
//! revoked). It must then carry scope `civitas:admin`, be the client's own
//! token (client_credentials: `sub` is the client, no grant, no `act`),
//! and its client must be admin **in the database at the time of the call**
//! (no cache), so a demotion takes effect at the next call even for tokens
//! already issued. National identifiers in clear need more: the token's
//! scope `civitas:admin:identifiers` and the client's identifiers flag,
//! also read from the database at the call ([`Admin::may_read_identifiers`]). Missing or invalid token: 401 with a `WWW-Authenticate:
//! Bearer` challenge (with `error="invalid_token"` when one was sent);
//! a valid token that does not qualify: 403 `insufficient_scope`. A refused
//! call records nothing. DPoP and mutual TLS sender-constraining are not
//! implemented yet: the token is a bearer token.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::super::extract::bearer;
use super::{ApiError, AppState};
use crate::accounts::roles::Granted;
use crate::audit::{self, Actor, Event, Kind};
use crate::clients::{ADMIN_SCOPE, IDENTIFIERS_SCOPE};
use crate::oidc::OAuthError;

/// An authenticated admin-API caller: the admin client.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// The admin client's id.
    pub(crate) client_id: String,
    /// Does the token carry `civitas:admin:identifiers`?
    identifiers_scope: bool,
}

/// 403 `insufficient_scope` naming the `scope` the call needs (RFC 6750 §3.1).
fn insufficient_scope(scope: &str, description: &str) -> ApiError {
    ApiError::Client {
        status: StatusCode::FORBIDDEN,
        code: "insufficient_scope",
        description: description.to_owned(),
        www_authenticate: Some(format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
        )),
    }
}

/// The refusal of national identifiers in clear to a caller not allowed them.
pub(crate) fn identifiers_refused() -> ApiError {
    insufficient_scope(
        &format!("{ADMIN_SCOPE} {IDENTIFIERS_SCOPE}"),
        "national identifiers in clear need a token with civitas:admin:identifiers \
         of a client the operator allowed them",
    )
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?.ok_or_else(|| {
            ApiError::invalid_token(false, "the admin API needs a bearer access token")
        })?;
        let claims = app
            .oidc
            .verify_access_token(token)
            .await
            .map_err(|e| match e {
                OAuthError::Protocol { description, .. } => {
                    ApiError::invalid_token(true, description)
                }
                other => other.into(),
            })?;
        if !claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
            return Err(insufficient_scope(
                ADMIN_SCOPE,
                "the token does not carry civitas:admin",
            ));
        }
        if claims.sub != claims.client_id || claims.gid.is_some() || claims.act.is_some() {
            return Err(insufficient_scope(
                ADMIN_SCOPE,
                "the admin API takes only a client's own client_credentials token",
            ));
        }
        if !app.clients.is_admin(&claims.client_id).await? {
            return Err(insufficient_scope(
                ADMIN_SCOPE,
                "this client is not (or no longer) allowed the admin API",
            ));
        }
        Ok(Self {
            identifiers_scope: claims.scope.split(' ').any(|s| s == IDENTIFIERS_SCOPE),
            client_id: claims.client_id,
        })
    }
}

impl Admin {
    /// The actor of the entries this call records.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Admin(self.client_id.clone())
    }

    /// May this call see national identifiers in clear? Only if its token
    /// carries `civitas:admin:identifiers` and the client is, in the
    /// database now, admin and marked for identifiers by the operator.
    pub(crate) async fn may_read_identifiers(&self, app: &AppState) -> Result<bool, ApiError> {
        Ok(self.identifiers_scope && app.clients.may_read_identifiers(&self.client_id).await?)
    }

    /// The call's `admin.action` entry, for calls that change nothing.
    pub(crate) fn entry(&self, action: &str) -> Event {
        Event::by(Kind::AdminAction, self.actor()).with("action", action)
    }

    /// Completes a grant's record: an added grant recorded its entry with
    /// the change; otherwise the call's entry says `unchanged`, or
    /// `not_found` and the call answers 404 naming `what`. `true` if the
    /// grant was added.
    pub(crate) async fn granted(
        &self,
        app: &AppState,
        entry: Event,
        granted: Granted,
        what: &str,
    ) -> Result<bool, ApiError> {
        match granted {
            Granted::Added => Ok(true),
            Granted::Unchanged => {
                self.note(app, &entry.with("outcome", "unchanged")).await?;
                Ok(false)
            }
            Granted::Missing => {
                self.note(app, &entry.with("outcome", "not_found")).await?;
                Err(super::not_found(what))
            }
        }
    }

    /// Records `event` on its own (reads, no-ops, missing targets).
    pub(crate) async fn note(&self, app: &AppState, event: &Event) -> Result<(), ApiError> {
        audit::record_alone(&app.db, event, app.clock.now()).await?;
        Ok(())
    }
}
