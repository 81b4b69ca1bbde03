//! OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).
//!
//! Built once at start-up and served from memory. Only what Civitas really
//! implements is advertised: each capability is added here in the same change
//! that implements it, and a test compares the document with the routes.

use bytes::Bytes;
use serde::Serialize;

use crate::clients::metadata::{CLIENT_ASSERTION_ALGS, ID_TOKEN_ALGS};

/// Paths of the endpoints, relative to the issuer. The web adapter routes
/// exactly these.
pub mod paths {
    /// Discovery document.
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    /// RFC 8414 metadata (same document).
    pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// JWK Set.
    pub const JWKS: &str = "/jwks";
    /// Dynamic client registration (RFC 7591).
    pub const REGISTRATION: &str = "/register";
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "/authorize";
    /// Token endpoint.
    pub const TOKEN: &str = "/token";
    /// UserInfo endpoint.
    pub const USERINFO: &str = "/userinfo";
    /// Token introspection (RFC 7662).
    pub const INTROSPECTION: &str = "/introspect";
    /// Token revocation (RFC 7009).
    pub const REVOCATION: &str = "/revoke";
    /// RP-Initiated Logout.
    pub const END_SESSION: &str = "/logout";
}

/// The discovery document's wire form.
#[derive(Debug, Serialize)]
pub struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    end_session_endpoint: String,
    jwks_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<String>,
    response_types_supported: Vec<&'static str>,
    response_modes_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    subject_types_supported: Vec<&'static str>,
    id_token_signing_alg_values_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    code_challenge_methods_supported: Vec<&'static str>,
    scopes_supported: Vec<&'static str>,
    claims_supported: Vec<&'static str>,
    authorization_details_types_supported: Vec<&'static str>,
    acr_values_supported: Vec<&'static str>,
    prompt_values_supported: Vec<&'static str>,
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
    claims_parameter_supported: bool,
    verified_claims_supported: bool,
    trust_frameworks_supported: Vec<&'static str>,
    evidence_supported: Vec<&'static str>,
    claims_in_verified_claims_supported: Vec<&'static str>,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    authorization_response_iss_parameter_supported: bool,
}

/// What the discovery document is built from.
#[derive(Debug, Clone)]
pub struct DiscoveryInput<'a> {
    /// The issuer identifier.
    pub issuer: &'a str,
    /// Is dynamic registration open (an initial access token configured)?
    pub registration_enabled: bool,
}

impl ProviderMetadata {
    /// The document for this instance.
    #[must_use]
    pub fn new(input: &DiscoveryInput<'_>) -> Self {
        let url = |path: &str| format!("{}{path}", input.issuer);
        Self {
            issuer: input.issuer.to_owned(),
            authorization_endpoint: url(paths::AUTHORIZE),
            token_endpoint: url(paths::TOKEN),
            userinfo_endpoint: url(paths::USERINFO),
            introspection_endpoint: url(paths::INTROSPECTION),
            revocation_endpoint: url(paths::REVOCATION),
            end_session_endpoint: url(paths::END_SESSION),
            jwks_uri: url(paths::JWKS),
            registration_endpoint: input.registration_enabled.then(|| url(paths::REGISTRATION)),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query", "form_post"],
            grant_types_supported: vec![
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
            subject_types_supported: vec!["pairwise", "public"],
            id_token_signing_alg_values_supported: ID_TOKEN_ALGS.to_vec(),
            token_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ],
            token_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGS.to_vec(),
            code_challenge_methods_supported: vec!["S256"],
            scopes_supported: vec!["openid", "profile", "email", "offline_access", "represent"],
            authorization_details_types_supported: vec![super::representation::REPRESENTATION_TYPE],
            claims_supported: [
                super::userinfo::SUPPORTED_CLAIMS,
                &[
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "acr",
                    "amr",
                    "azp",
                    "sid",
                    "nonce",
                ],
            ]
            .concat(),
            prompt_values_supported: vec!["none", "login", "consent", "select_account", "create"],
            acr_values_supported: crate::assurance::Level::ALL
                .iter()
                .map(|l| l.uri())
                .collect(),
            introspection_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            revocation_endpoint_auth_methods_supported: vec![
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ],
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            claims_parameter_supported: true,
            verified_claims_supported: true,
            trust_frameworks_supported: vec!["eidas"],
            evidence_supported: vec!["electronic_record"],
            claims_in_verified_claims_supported: crate::clients::VERIFIABLE_CLAIMS.to_vec(),
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            authorization_response_iss_parameter_supported: true,
        }
    }

    /// The document, serialised once.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}
