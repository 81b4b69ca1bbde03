//! Tokens for a client itself, with no citizen: `client_credentials`
//! (RFC 6749 §4.4) and the JWT bearer grant (RFC 7523 §2.1), and the two
//! scopes of the admin API that only the operator can open.

use super::params::{Params, Scope};
use super::token::TokenResponse;
use super::{OAuthError, Provider};
use crate::clients::{ADMIN_SCOPE, Client, GrantType, IDENTIFIERS_SCOPE};

impl Provider {
    /// A token for the client itself: `client_credentials`, or the JWT
    /// bearer grant (RFC 7523 §2.1) whose assertion names the client as its
    /// own subject.
    ///
    /// The admin API's scopes are granted only through `client_credentials`
    /// and only when asked for: `civitas:admin` to a client the operator
    /// marked admin, `civitas:admin:identifiers` to one the operator also
    /// marked for identifiers. Both flags are read from the database, not
    /// the five-second cache.
    pub(super) async fn machine_token(
        &self,
        client: &Client,
        params: &mut Params,
        grant: GrantType,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, grant)?;
        let registered = Scope::parse(&client.metadata.scope).unwrap_or_default();
        let scope = match params.take("scope") {
            None => registered.clone(),
            Some(s) => Scope::parse(&s).map_err(|e| OAuthError::new("invalid_scope", e))?,
        };
        let id = client.client_id.as_str();
        let by_credentials = grant == GrantType::ClientCredentials;
        if scope.contains(ADMIN_SCOPE) && !(by_credentials && self.clients.is_admin(id).await?) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("{ADMIN_SCOPE} is only for clients the operator allowed the admin API"),
            ));
        }
        if scope.contains(IDENTIFIERS_SCOPE)
            && !(by_credentials && self.clients.may_read_identifiers(id).await?)
        {
            return Err(OAuthError::new(
                "invalid_scope",
                format!(
                    "{IDENTIFIERS_SCOPE} is only for admin clients the operator allowed national identifiers"
                ),
            ));
        }
        let extra: Vec<_> = scope
            .not_in(&registered)
            .into_iter()
            .filter(|s| *s != ADMIN_SCOPE && *s != IDENTIFIERS_SCOPE)
            .collect();
        if !extra.is_empty() {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("the client may not ask for: {}", extra.join(" ")),
            ));
        }
        if scope.contains("openid") || scope.contains("offline_access") {
            return Err(OAuthError::new(
                "invalid_scope",
                "openid and offline_access need a user; not for client_credentials",
            ));
        }
        // RFC 9068 §2.2: without a resource owner, `sub` is the client.
        let claims = self.access_claims(id.to_owned(), id, scope.to_string());
        Ok(TokenResponse {
            access_token: self.sign_access_token(&claims)?,
            token_type: "Bearer",
            expires_in: self.settings.tokens.access_token_ttl.as_secs(),
            scope: scope.to_string(),
            id_token: None,
            refresh_token: None,
            issued_token_type: None,
        })
    }
}
