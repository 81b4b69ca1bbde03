//! The tokens Civitas signs: access tokens (RFC 9068 JWTs), ID tokens
//! (OIDC Core §2) and logout tokens (Back-Channel Logout §2.4); and the
//! checks Civitas applies to an access token presented back to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{OAuthError, Provider, grants};
use crate::ephemeral::{Ephemeral as _, Key, Namespace};
use crate::keys::Alg;
use crate::secrets::random_token;

/// Access-token claims (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The citizen's subject for this client, or the client for machine tokens.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scope: String,
    /// Unique id (revocation of a single token).
    pub jti: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the citizen authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Level of assurance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authentication methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The grant the token comes from (private claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// RFC 8693 §4.1: who acts on behalf of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 9396: what was authorized (the representation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

/// ID-token claims (OIDC Core §2, §3.1.3.6).
#[derive(Debug, Clone, Serialize)]
pub struct IdTokenClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) aud: &'a str,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<&'a str>,
    pub(crate) acr: &'a str,
    pub(crate) amr: &'a [String],
    pub(crate) azp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) at_hash: Option<String>,
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, serde_json::Value>,
}

impl Provider {
    /// Signs an access token (ES256, `typ: at+jwt`).
    pub(crate) fn sign_access_token(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<String, OAuthError> {
        Ok(self.keys.sign(Alg::ES256, "at+jwt", claims)?)
    }

    /// Builds access-token claims that expire after the configured lifetime.
    pub(crate) fn access_claims(
        &self,
        sub: String,
        client_id: &str,
        scope: String,
    ) -> AccessTokenClaims {
        let now = self.clock.now();
        AccessTokenClaims {
            iss: self.settings.issuer.clone(),
            sub,
            aud: self.settings.issuer.clone(),
            client_id: client_id.to_owned(),
            scope,
            jti: random_token(16),
            exp: now.plus(self.settings.tokens.access_token_ttl.as_secs()).0,
            iat: now.0,
            auth_time: None,
            acr: None,
            amr: None,
            gid: None,
            act: None,
            authorization_details: None,
        }
    }

    /// Verifies an access token presented to Civitas itself (userinfo,
    /// introspection): signature by a published key, `typ` `at+jwt`
    /// (RFC 9068 §4), issuer, expiry, and that neither the token nor its grant
    /// has been revoked.
    ///
    /// # Errors
    /// `invalid_token` with the reason, or an unavailable dependency.
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, OAuthError> {
        Ok(self.verify_access_token_and_grant(token).await?.0)
    }

    /// [`Provider::verify_access_token`], also returning the grant it
    /// checked (none for a machine token), so that a caller that needs the
    /// grant does not read it a second time.
    ///
    /// # Errors
    /// As [`Provider::verify_access_token`].
    pub(crate) async fn verify_access_token_and_grant(
        &self,
        token: &str,
    ) -> Result<(AccessTokenClaims, Option<grants::Grant>), OAuthError> {
        let invalid = |why: &str| OAuthError::new("invalid_token", why.to_owned());
        let (header, claims) = self
            .keys
            .verify(token)
            .map_err(|_| invalid("the token is not a valid Civitas token"))?;
        if header["typ"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref()
            != Some("at+jwt")
        {
            return Err(invalid("the token is not an access token"));
        }
        let claims: AccessTokenClaims = serde_json::from_value(claims)
            .map_err(|_| invalid("the token's claims are not an access token's"))?;
        if claims.iss != self.settings.issuer {
            return Err(invalid("the token was issued by someone else"));
        }
        if claims.exp <= self.clock.now().0 {
            return Err(invalid("the token has expired"));
        }
        if self
            .cache
            .get(&Key::new(
                Namespace::Replay,
                format!("revoked-at:{}", claims.jti),
            ))
            .await?
            .is_some()
        {
            return Err(invalid("the token has been revoked"));
        }
        let grant = match &claims.gid {
            Some(gid) => {
                let grant = grants::get(&self.db, gid)
                    .await?
                    .filter(|g| g.is_active(self.clock.now()))
                    .ok_or_else(|| invalid("the token has been revoked"))?;
                Some(grant)
            }
            None => None,
        };
        Ok((claims, grant))
    }

    /// Revokes one access token until it would have expired anyway.
    pub(crate) async fn revoke_access_token(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<(), OAuthError> {
        let remaining = self
            .clock
            .now()
            .secs_until(crate::clock::UnixTime(claims.exp))
            .max(1);
        self.cache
            .put(
                &Key::new(Namespace::Replay, format!("revoked-at:{}", claims.jti)),
                b"1",
                std::time::Duration::from_secs(remaining),
            )
            .await?;
        Ok(())
    }

    /// The algorithm the client's ID tokens are signed with: its registered
    /// `id_token_signed_response_alg`, RS256 by default (OIDC Registration §2).
    pub(crate) fn id_token_alg(client: &crate::clients::Client) -> Alg {
        client
            .metadata
            .id_token_signed_response_alg
            .as_deref()
            .and_then(Alg::parse)
            .unwrap_or(Alg::RS256)
    }
}
