//! Client metadata (RFC 7591 §2, OIDC Dynamic Client Registration §2):
//! parsed once at the boundary, validated strictly, and kept as typed values.
//!
//! Metadata Civitas does not understand is ignored and left out of every
//! response, as RFC 7591 §2 requires. Values it does understand must be
//! valid, or registration fails with `invalid_redirect_uri` or
//! `invalid_client_metadata` and a description naming the field.

use serde::{Deserialize, Serialize};
use url::Url;

use super::ClientError;
use crate::config::is_loopback_host;

/// A redirect URI, validated and kept exactly as registered: matching is by
/// simple string comparison (RFC 9700 §4.1.3, OIDC Core §3.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates `s`: an absolute `https` URI, or `http` on a loopback host
    /// (development and native clients, RFC 8252 §7.3); no fragment
    /// (RFC 6749 §3.1.2), no user info, no wildcard.
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > 2_000 {
            return Err("is longer than 2000 characters".into());
        }
        if s.contains('*') {
            return Err(format!(
                "`{s}` contains a wildcard; register each URI exactly"
            ));
        }
        let url = Url::parse(s).map_err(|e| format!("`{s}` is not an absolute URI ({e})"))?;
        if url.fragment().is_some() || s.contains('#') {
            return Err(format!("`{s}` has a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{s}` has user information"));
        }
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" if !host.is_empty() => Ok(Self(s.to_owned())),
            "http" if is_loopback_host(host) => Ok(Self(s.to_owned())),
            "http" => Err(format!(
                "`{s}` uses http on a host that is not loopback; use https"
            )),
            _ => Err(format!("`{s}` must use https (or http on a loopback host)")),
        }
    }

    /// The URI exactly as registered.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Grant types a client may use (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE always.
    AuthorizationCode,
    /// RFC 6749 §6, rotated at every use.
    RefreshToken,
    /// RFC 6749 §4.4, for machine clients.
    ClientCredentials,
    /// RFC 7523 §2.1 JWT bearer grant, for agency-to-agency calls.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
    /// RFC 8693 token exchange, along a call chain.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with a server-generated secret.
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A signed JWT assertion (RFC 7523) with a key from `jwks`/`jwks_uri`.
    PrivateKeyJwt,
    /// A public client; PKCE protects the code.
    None,
}

impl AuthMethod {
    /// Does this method use a client secret issued by Civitas?
    #[must_use]
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
}

/// OIDC application type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// A web application (the default).
    Web,
    /// A native application.
    Native,
}

/// JWS algorithms a client may ask its ID tokens to be signed with.
pub const ID_TOKEN_ALGS: &[&str] = &["RS256", "ES256", "PS256", "EdDSA"];
/// JWS algorithms accepted for client assertions (`private_key_jwt`).
pub const CLIENT_ASSERTION_ALGS: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];

/// Validated client metadata, as stored and as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Exact redirect URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<RedirectUri>,
    /// Token endpoint authentication.
    pub token_endpoint_auth_method: AuthMethod,
    /// Algorithm of `private_key_jwt` assertions, if fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Grants.
    pub grant_types: Vec<GrantType>,
    /// `["code"]` with the authorization code grant, else empty.
    pub response_types: Vec<String>,
    /// The scopes this client may ask for, space-separated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Human-readable name, shown on consent pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Contact addresses of the people responsible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// The client's public keys, by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// The client's public keys, by reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// ID token signing algorithm; RS256 when absent (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// Where to return after RP-initiated logout, exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// Where to POST logout tokens (OIDC Back-Channel Logout §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Does the client need `sid` in logout tokens? (Civitas always sends it.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
    /// The URL of a JSON array of the client's redirect URIs; its host is the
    /// sector of the client's pairwise subjects (OIDC Core §8.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// Levels of assurance required when a request names none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_acr_values: Vec<String>,
    /// Web or native.
    pub application_type: ApplicationType,
    /// Software identifier chosen by the developer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

/// A registration or update request as received. Only the members Civitas
/// understands are named; serde ignores the rest. Members that a client must
/// not send in an update (RFC 7592 §2.2) are named so that they can be refused.
#[derive(Debug, Default, Deserialize)]
pub struct MetadataRequest {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    contacts: Option<Vec<String>>,
    jwks: Option<serde_json::Value>,
    jwks_uri: Option<String>,
    id_token_signed_response_alg: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: Option<bool>,
    sector_identifier_uri: Option<String>,
    default_acr_values: Option<Vec<String>>,
    application_type: Option<String>,
    software_id: Option<String>,
    software_version: Option<String>,
    subject_type: Option<String>,
    /// RFC 7592 §2.2: the client's id, required in an update.
    pub client_id: Option<String>,
    /// RFC 7592 §2.2: may be sent in an update, must then match.
    pub client_secret: Option<String>,
    /// RFC 7592 §2.2: must not be sent in an update.
    pub registration_access_token: Option<serde::de::IgnoredAny>,
    /// RFC 7592 §2.2: must not be sent in an update.
    pub registration_client_uri: Option<serde::de::IgnoredAny>,
    /// RFC 7592 §2.2: must not be sent in an update.
    pub client_secret_expires_at: Option<serde::de::IgnoredAny>,
    /// RFC 7592 §2.2: must not be sent in an update.
    pub client_id_issued_at: Option<serde::de::IgnoredAny>,
}

fn bad(msg: impl Into<String>) -> ClientError {
    ClientError::InvalidMetadata(msg.into())
}

/// A short human-readable string member.
fn text(name: &str, v: Option<String>) -> Result<Option<String>, ClientError> {
    match v {
        Some(s) if s.chars().count() > 200 => {
            Err(bad(format!("{name} is longer than 200 characters")))
        }
        Some(s) if s.trim().is_empty() => Err(bad(format!("{name} is empty"))),
        Some(s) if s.chars().any(char::is_control) => {
            Err(bad(format!("{name} contains control characters")))
        }
        other => Ok(other),
    }
}

/// An https URL member (pages shown to users, key sets). For the URLs
/// Civitas fetches, `fetched::check_uris` then applies the fetcher's rules.
fn https_url(
    name: &str,
    v: Option<String>,
    allow_loopback_http: bool,
) -> Result<Option<String>, ClientError> {
    let Some(s) = v else { return Ok(None) };
    let url = Url::parse(&s).map_err(|_| bad(format!("{name} is not an absolute URL")))?;
    let host = url.host_str().unwrap_or_default();
    let ok = match url.scheme() {
        "https" => !host.is_empty(),
        "http" => allow_loopback_http && is_loopback_host(host),
        _ => false,
    };
    if !ok || s.len() > 2_000 || url.fragment().is_some() {
        return Err(bad(format!("{name} must be an https URL without fragment")));
    }
    Ok(Some(s))
}

/// The scope of the admin API. Only a client the operator marked admin
/// obtains it (client_credentials); registration metadata may not name it.
pub const ADMIN_SCOPE: &str = "civitas:admin";

/// The admin API's scope for national identifiers in clear in an export.
/// Only a client the operator marked for it (and admin) obtains it
/// (client_credentials); registration metadata may not name it.
pub const IDENTIFIERS_SCOPE: &str = "civitas:admin:identifiers";

/// Is `token` a valid scope token (RFC 6749 §3.3: 1*NQCHAR)?
#[must_use]
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn redirect_list(name: &str, v: Vec<String>) -> Result<Vec<RedirectUri>, ClientError> {
    if v.len() > 20 {
        return Err(ClientError::InvalidRedirectUri(format!(
            "{name}: at most 20 URIs"
        )));
    }
    v.iter()
        .map(|s| {
            RedirectUri::parse(s)
                .map_err(|e| ClientError::InvalidRedirectUri(format!("{name}: {e}")))
        })
        .collect()
}

fn validate_jwks(jwks: &serde_json::Value) -> Result<(), ClientError> {
    let keys = jwks
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("jwks must be a JWK Set: an object with a `keys` array"))?;
    if keys.is_empty() || keys.len() > 10 {
        return Err(bad("jwks must hold between 1 and 10 keys"));
    }
    for key in keys {
        let map = key
            .as_object()
            .ok_or_else(|| bad("every key in jwks must be an object"))?;
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| map.contains_key(*m))
        {
            return Err(bad(
                "jwks must hold public keys only; a private member was found",
            ));
        }
        josekit::jwk::Jwk::from_map(map.clone())
            .map_err(|e| bad(format!("jwks holds an invalid key: {e}")))?;
        if !matches!(
            map.get("kty").and_then(|v| v.as_str()),
            Some("RSA" | "EC" | "OKP")
        ) {
            return Err(bad("jwks keys must be of type RSA, EC or OKP"));
        }
    }
    Ok(())
}

impl MetadataRequest {
    /// Validates the request into metadata (RFC 7591 §2 and §3.2.2).
    ///
    /// # Errors
    /// `invalid_redirect_uri` or `invalid_client_metadata`, naming the member.
    pub fn validate(self) -> Result<ClientMetadata, ClientError> {
        let grant_types = match self.grant_types {
            None => vec![GrantType::AuthorizationCode],
            Some(g) if g.is_empty() => return Err(bad("grant_types is empty")),
            Some(g) => {
                let mut out = Vec::new();
                for name in g {
                    let grant = match name.as_str() {
                        "authorization_code" => GrantType::AuthorizationCode,
                        "refresh_token" => GrantType::RefreshToken,
                        "client_credentials" => GrantType::ClientCredentials,
                        "urn:ietf:params:oauth:grant-type:jwt-bearer" => GrantType::JwtBearer,
                        "urn:ietf:params:oauth:grant-type:token-exchange" => {
                            GrantType::TokenExchange
                        }
                        "implicit" | "password" => {
                            return Err(bad(format!(
                                "grant type `{name}` is not allowed (RFC 9700 §2.1)"
                            )));
                        }
                        _ => return Err(bad(format!("grant type `{name}` is not supported"))),
                    };
                    if !out.contains(&grant) {
                        out.push(grant);
                    }
                }
                out
            }
        };
        let code = grant_types.contains(&GrantType::AuthorizationCode);
        if grant_types.contains(&GrantType::RefreshToken) && !code {
            return Err(bad(
                "the refresh_token grant needs the authorization_code grant",
            ));
        }
        // RFC 7591 §2.1: grant_types and response_types must agree.
        let response_types = match self.response_types {
            None if code => vec!["code".to_owned()],
            None => vec![],
            Some(r) => {
                if let Some(other) = r.iter().find(|t| t.as_str() != "code") {
                    return Err(bad(format!(
                        "response type `{other}` is not supported; only `code` is (no implicit or hybrid flows)"
                    )));
                }
                if code != r.iter().any(|t| t == "code") {
                    return Err(bad(
                        "response_types `code` goes with, and only with, the authorization_code grant",
                    ));
                }
                vec!["code".to_owned()]
            }
        };
        let redirect_uris = redirect_list("redirect_uris", self.redirect_uris.unwrap_or_default())?;
        if code && redirect_uris.is_empty() {
            return Err(ClientError::InvalidRedirectUri(
                "the authorization_code grant needs at least one redirect URI".into(),
            ));
        }
        let post_logout_redirect_uris = redirect_list(
            "post_logout_redirect_uris",
            self.post_logout_redirect_uris.unwrap_or_default(),
        )?;

        let token_endpoint_auth_method = match self.token_endpoint_auth_method.as_deref() {
            None | Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
            Some("client_secret_post") => AuthMethod::ClientSecretPost,
            Some("private_key_jwt") => AuthMethod::PrivateKeyJwt,
            Some("none") => AuthMethod::None,
            Some(other) => {
                return Err(bad(format!(
                    "token_endpoint_auth_method `{other}` is not supported"
                )));
            }
        };
        if token_endpoint_auth_method == AuthMethod::None
            && (grant_types.contains(&GrantType::ClientCredentials)
                || grant_types.contains(&GrantType::TokenExchange))
        {
            return Err(bad(
                "a public client (token_endpoint_auth_method none) cannot use client_credentials",
            ));
        }
        if let Some(alg) = &self.token_endpoint_auth_signing_alg
            && (!CLIENT_ASSERTION_ALGS.contains(&alg.as_str())
                || token_endpoint_auth_method != AuthMethod::PrivateKeyJwt)
        {
            return Err(bad(format!(
                "token_endpoint_auth_signing_alg `{alg}` needs private_key_jwt and one of {CLIENT_ASSERTION_ALGS:?}"
            )));
        }
        // RFC 7591 §2: jwks and jwks_uri must not both be present.
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            return Err(bad("jwks and jwks_uri must not both be given"));
        }
        if let Some(jwks) = &self.jwks {
            validate_jwks(jwks)?;
        }
        let jwks_uri = https_url("jwks_uri", self.jwks_uri, true)?;
        if token_endpoint_auth_method == AuthMethod::PrivateKeyJwt
            && self.jwks.is_none()
            && jwks_uri.is_none()
        {
            return Err(bad("private_key_jwt needs jwks or jwks_uri"));
        }

        let scope = match self.scope {
            Some(s) => {
                let mut tokens: Vec<&str> = Vec::new();
                for t in s.split(' ') {
                    if !is_scope_token(t) {
                        return Err(bad(format!("scope holds an invalid scope token `{t}`")));
                    }
                    if t == ADMIN_SCOPE || t == IDENTIFIERS_SCOPE {
                        return Err(bad(format!(
                            "`{t}` is granted by the operator, never through metadata"
                        )));
                    }
                    if !tokens.contains(&t) {
                        tokens.push(t);
                    }
                }
                tokens.join(" ")
            }
            None if code => "openid".to_owned(),
            None => String::new(),
        };

        let id_token_signed_response_alg = match self.id_token_signed_response_alg {
            Some(alg) if !ID_TOKEN_ALGS.contains(&alg.as_str()) => {
                return Err(bad(format!(
                    "id_token_signed_response_alg `{alg}` is not supported; use one of {ID_TOKEN_ALGS:?}"
                )));
            }
            other => other,
        };
        let application_type = match self.application_type.as_deref() {
            None | Some("web") => ApplicationType::Web,
            Some("native") => ApplicationType::Native,
            Some(other) => {
                return Err(bad(format!(
                    "application_type `{other}` is not web or native"
                )));
            }
        };
        // OIDC Core §8: subjects are pairwise; `public` only by operator decision.
        match self.subject_type.as_deref() {
            None | Some("pairwise") => {}
            Some("public") => {
                return Err(bad(
                    "subject_type public is granted only by the operator; subjects are pairwise",
                ));
            }
            Some(other) => return Err(bad(format!("subject_type `{other}` is not supported"))),
        }
        // Back-Channel Logout §2.2: an absolute URI without fragment. Whether
        // Civitas may post to it (https; http on loopback only for a
        // localhost issuer; no internal address) is `fetched::check_uris`.
        let backchannel_logout_uri = match self.backchannel_logout_uri {
            None => None,
            Some(u) => Some(
                RedirectUri::parse(&u)
                    .map_err(|e| bad(format!("backchannel_logout_uri: {e}")))?
                    .as_str()
                    .to_owned(),
            ),
        };
        // OIDC Core §8.1: pairwise subjects are computed per sector; redirect
        // URIs on several hosts need a sector_identifier_uri, unless all are
        // loopback (such a client is a sector of its own, `sector.rs`).
        let hosts: std::collections::BTreeSet<_> = redirect_uris
            .iter()
            .filter_map(|u| {
                Url::parse(u.as_str())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
            })
            .collect();
        let sector_identifier_uri =
            https_url("sector_identifier_uri", self.sector_identifier_uri, true)?;
        if hosts.len() > 1
            && sector_identifier_uri.is_none()
            && !hosts.iter().all(|h| is_loopback_host(h))
        {
            return Err(ClientError::InvalidRedirectUri(
                "redirect URIs on several hosts need a sector_identifier_uri (OIDC Core §8.1)"
                    .into(),
            ));
        }
        let default_acr_values = self.default_acr_values.unwrap_or_default();
        if let Some(bad) = default_acr_values
            .iter()
            .find(|v| crate::assurance::Level::parse(v).is_none())
        {
            return Err(ClientError::InvalidMetadata(format!(
                "default_acr_values: `{bad}` is not low, substantial, high or their eIDAS URIs"
            )));
        }
        let contacts = self.contacts.unwrap_or_default();
        if contacts.len() > 10
            || contacts
                .iter()
                .any(|c| c.len() > 200 || c.trim().is_empty())
        {
            return Err(bad("contacts must be at most 10 non-empty addresses"));
        }

        Ok(ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method,
            token_endpoint_auth_signing_alg: self.token_endpoint_auth_signing_alg,
            grant_types,
            response_types,
            scope,
            client_name: text("client_name", self.client_name)?,
            client_uri: https_url("client_uri", self.client_uri, false)?,
            logo_uri: https_url("logo_uri", self.logo_uri, false)?,
            tos_uri: https_url("tos_uri", self.tos_uri, false)?,
            policy_uri: https_url("policy_uri", self.policy_uri, false)?,
            contacts,
            jwks: self.jwks,
            jwks_uri,
            id_token_signed_response_alg,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            backchannel_logout_session_required: self
                .backchannel_logout_session_required
                .unwrap_or(false),
            sector_identifier_uri,
            default_acr_values,
            application_type,
            software_id: text("software_id", self.software_id)?,
            software_version: text("software_version", self.software_version)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> Result<ClientMetadata, ClientError> {
        serde_json::from_value::<MetadataRequest>(json)
            .unwrap()
            .validate()
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http_without_fragment_or_wildcard() {
        assert!(RedirectUri::parse("https://portal.agency.example/cb").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:8000/cb").is_ok());
        assert!(RedirectUri::parse("http://[::1]/cb").is_ok());
        assert!(RedirectUri::parse("http://localhost/cb").is_ok());
        for bad in [
            "http://portal.agency.example/cb",
            "https://portal.agency.example/cb#frag",
            "https://*.agency.example/cb",
            "https://portal.agency.example/*",
            "/relative/cb",
            "com.example.app:/cb",
            "javascript:alert(1)",
            "https://user:pw@portal.agency.example/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn defaults_are_a_confidential_code_client_asking_for_openid() {
        let m = req(serde_json::json!({"redirect_uris": ["https://rp.example/cb"]})).unwrap();
        assert_eq!(m.grant_types, [GrantType::AuthorizationCode]);
        assert_eq!(m.response_types, ["code"]);
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.scope, "openid");
    }

    #[test]
    fn a_client_credentials_client_needs_no_redirect_uri() {
        let m = req(
            serde_json::json!({"grant_types": ["client_credentials"], "scope": "payments:read"}),
        )
        .unwrap();
        assert!(m.redirect_uris.is_empty());
        assert!(m.response_types.is_empty());
    }

    #[test]
    fn inconsistent_metadata_is_refused() {
        for json in [
            serde_json::json!({"grant_types": ["implicit"], "redirect_uris": ["https://rp.example/cb"]}),
            serde_json::json!({"response_types": ["token"], "redirect_uris": ["https://rp.example/cb"]}),
            serde_json::json!({"grant_types": ["refresh_token"]}),
            serde_json::json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            serde_json::json!({"redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            serde_json::json!({"redirect_uris": ["https://rp.example/cb"], "scope": "openid bad\"scope"}),
            serde_json::json!({"redirect_uris": ["https://rp.example/cb"], "subject_type": "public"}),
            serde_json::json!({"redirect_uris": ["https://rp.example/cb"], "id_token_signed_response_alg": "none"}),
            serde_json::json!({"redirect_uris": ["https://rp.example/cb"], "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ] {
            assert!(
                matches!(req(json.clone()), Err(ClientError::InvalidMetadata(_))),
                "{json} accepted"
            );
        }
    }
}
