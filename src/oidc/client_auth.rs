//! Client authentication at the token, introspection and revocation
//! endpoints: `client_secret_basic`, `client_secret_post`, `private_key_jwt`
//! (RFC 7523 §2.2, OIDC Core §9) and `none` for public clients.
//!
//! A client must use the one method it registered. Client assertions must be
//! signed with a key of the client's `jwks` or `jwks_uri`, name the client as
//! `iss` and `sub`, have the issuer or the endpoint as `aud`, expire within
//! five minutes, and carry a `jti` that is refused if seen again (the replay
//! cache is in the ephemeral store, so it holds across instances).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256, RS256};

use super::{OAuthError, Provider};
use crate::clients::metadata::CLIENT_ASSERTION_ALGS;
use crate::clients::{AuthMethod, Client};
use crate::ephemeral::{Ephemeral as _, Key, Namespace};
use crate::outbound::{Fetcher, Use};

/// RFC 7523 §2.2.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest accepted lifetime of a client assertion.
const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Longest accepted lifetime of a JWT bearer grant assertion (RFC 7523 §2.1).
pub(crate) const MAX_GRANT_ASSERTION_LIFETIME: i64 = 120;
/// Allowed clock skew.
const SKEW: i64 = 30;

/// The credentials a request carries.
#[derive(Default, Clone)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`.
    pub basic: Option<(String, String)>,
    /// `client_id` parameter.
    pub client_id: Option<String>,
    /// `client_secret` parameter.
    pub client_secret: Option<String>,
    /// `client_assertion_type` parameter.
    pub client_assertion_type: Option<String>,
    /// `client_assertion` parameter.
    pub client_assertion: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("basic_client_id", &self.basic.as_ref().map(|(id, _)| id))
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Parses an `Authorization: Basic` value (RFC 6749 §2.3.1: id and secret
    /// are form-urlencoded before base64).
    ///
    /// # Errors
    /// `invalid_client` if it is malformed.
    pub fn parse_basic(value: &str) -> Result<(String, String), OAuthError> {
        let bad = || OAuthError::invalid_client("the Basic authorization header is malformed");
        let decoded = STANDARD.decode(value.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .ok_or_else(bad)
        };
        Ok((unescape(id)?, unescape(secret)?))
    }
}

/// Clients' key sets fetched from `jwks_uri` (through the [`Fetcher`]),
/// cached per instance; and the verifiers parsed from clients' keys, so that
/// a key is parsed once, not at every assertion (parsing a P-256 key costs
/// more than verifying with it).
#[derive(Clone)]
pub struct JwksCache {
    outbound: Fetcher,
    entries: Arc<Mutex<HashMap<String, (Instant, serde_json::Value)>>>,
    /// Keyed by the algorithm and the JWK's whole JSON text, so a changed key
    /// is a new entry and never meets an old verifier.
    verifiers: Arc<RwLock<HashMap<String, Arc<dyn JwsVerifier>>>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").finish_non_exhaustive()
    }
}

/// Most parsed verifiers kept; beyond it the map starts again empty.
const MAX_VERIFIERS: usize = 4096;

const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

impl JwksCache {
    /// An empty cache fetching through `outbound`.
    #[must_use]
    pub fn new(outbound: Fetcher) -> Self {
        Self {
            outbound,
            entries: Arc::new(Mutex::new(HashMap::new())),
            verifiers: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// The verifier for `key` (a JWK) with `alg`, parsed once.
    fn verifier(&self, alg: &str, key: &serde_json::Value) -> Option<Arc<dyn JwsVerifier>> {
        let id = format!("{alg}:{key}");
        if let Some(v) = self
            .verifiers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
        {
            return Some(v.clone());
        }
        let jwk = Jwk::from_map(key.as_object()?.clone()).ok()?;
        let verifier: Arc<dyn JwsVerifier> = Arc::from(verifier_for(alg, &jwk)?);
        let mut map = self
            .verifiers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_VERIFIERS {
            map.clear();
        }
        map.insert(id, verifier.clone());
        Some(verifier)
    }

    /// Verifies `token`'s signature against the JWKS `jwks`; the claims.
    fn verify_with(
        &self,
        jwks: &serde_json::Value,
        token: &str,
        alg: &str,
        kid: Option<&str>,
    ) -> Option<serde_json::Value> {
        let (input, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let keys = jwks.get("keys")?.as_array()?;
        for key in keys {
            if kid.is_some_and(|k| key.get("kid").and_then(|v| v.as_str()) != Some(k)) {
                continue;
            }
            let Some(verifier) = self.verifier(alg, key) else {
                continue;
            };
            if verifier.verify(input.as_bytes(), &signature).is_ok() {
                let payload = input.split('.').nth(1)?;
                return serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok();
            }
        }
        None
    }

    fn cached(&self, uri: &str, max_age: Duration) -> Option<serde_json::Value> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(uri)
            .filter(|(t, _)| t.elapsed() < max_age)
            .map(|(_, v)| v.clone())
    }

    /// The key set at `uri`; fetched again when `refresh` and the cached copy
    /// is older than a few seconds (a client that rotated its keys). `None`
    /// if it could not be fetched (the fetcher logs why).
    async fn get(&self, uri: &str, refresh: bool) -> Option<serde_json::Value> {
        let max_age = if refresh { JWKS_MIN_REFETCH } else { JWKS_TTL };
        if let Some(v) = self.cached(uri, max_age) {
            return Some(v);
        }
        let fetched: serde_json::Value = self.outbound.get_json(uri, Use::ClientJwks).await.ok()?;
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uri.to_owned(), (Instant::now(), fetched.clone()));
        Some(fetched)
    }

    /// Verifies `token` against the key set at `uri`, fetched again once if
    /// no cached key verifies it. `None` both when no key verifies and when
    /// the key set could not be fetched: a caller cannot tell the two apart.
    async fn verify_remote(
        &self,
        uri: &str,
        token: &str,
        alg: &str,
        kid: Option<&str>,
    ) -> Option<serde_json::Value> {
        let jwks = self.get(uri, false).await?;
        if let Some(claims) = self.verify_with(&jwks, token, alg, kid) {
            return Some(claims);
        }
        self.verify_with(&self.get(uri, true).await?, token, alg, kid)
    }
}

fn verifier_for(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    Some(match alg {
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).ok()?),
        "RS256" => Box::new(RS256.verifier_from_jwk(jwk).ok()?),
        "PS256" => Box::new(PS256.verifier_from_jwk(jwk).ok()?),
        "EdDSA" => Box::new(EdDSA.verifier_from_jwk(jwk).ok()?),
        _ => return None,
    })
}

impl Provider {
    /// Authenticates the client of a request to `endpoint_url`.
    ///
    /// # Errors
    /// `invalid_client` (RFC 6749 §5.2) for every failure; `invalid_request`
    /// when more than one method is used.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
        endpoint_url: &str,
    ) -> Result<Client, OAuthError> {
        let methods = usize::from(creds.basic.is_some())
            + usize::from(creds.client_secret.is_some())
            + usize::from(creds.client_assertion.is_some());
        if methods > 1 {
            return Err(OAuthError::invalid_request(
                "use exactly one client authentication method",
            ));
        }
        if let Some((id, secret)) = &creds.basic {
            if creds.client_id.as_ref().is_some_and(|c| c != id) {
                return Err(OAuthError::invalid_client(
                    "client_id does not match the authorization header",
                ));
            }
            return self
                .check_secret(id, secret, AuthMethod::ClientSecretBasic)
                .await;
        }
        if let Some(secret) = &creds.client_secret {
            let id = creds
                .client_id
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_client("client_id is missing"))?;
            return self
                .check_secret(id, secret, AuthMethod::ClientSecretPost)
                .await;
        }
        if let Some(assertion) = &creds.client_assertion {
            if creds.client_assertion_type.as_deref() != Some(JWT_BEARER) {
                return Err(OAuthError::invalid_client(
                    "client_assertion_type must be jwt-bearer",
                ));
            }
            return self
                .check_assertion(
                    assertion,
                    creds.client_id.as_deref(),
                    endpoint_url,
                    MAX_ASSERTION_LIFETIME,
                )
                .await;
        }
        let id = creds
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_client("client authentication is missing"))?;
        let client = self.known_client(id).await?;
        if client.metadata.token_endpoint_auth_method != AuthMethod::None {
            return Err(OAuthError::invalid_client("this client must authenticate"));
        }
        Ok(client)
    }

    async fn known_client(&self, id: &str) -> Result<Client, OAuthError> {
        self.clients
            .get_recent(id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))
    }

    async fn check_secret(
        &self,
        id: &str,
        secret: &str,
        method: AuthMethod,
    ) -> Result<Client, OAuthError> {
        let client = self.known_client(id).await?;
        if client.metadata.token_endpoint_auth_method != method {
            return Err(OAuthError::invalid_client(
                "the client registered another authentication method",
            ));
        }
        if !client.verify_secret(secret) {
            return Err(OAuthError::invalid_client("client authentication failed"));
        }
        Ok(client)
    }

    pub(crate) async fn check_assertion(
        &self,
        assertion: &str,
        client_id: Option<&str>,
        endpoint_url: &str,
        max_lifetime: i64,
    ) -> Result<Client, OAuthError> {
        let bad = |why: &str| OAuthError::invalid_client(format!("client assertion: {why}"));
        let mut parts = assertion.split('.');
        let (Some(h), Some(p), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a compact JWS"));
        };
        let decode = |s: &str| -> Option<serde_json::Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
        };
        let header = decode(h).ok_or_else(|| bad("malformed header"))?;
        let unverified = decode(p).ok_or_else(|| bad("malformed claims"))?;
        let alg = header["alg"].as_str().unwrap_or_default();
        if !CLIENT_ASSERTION_ALGS.contains(&alg) {
            return Err(bad("alg is not accepted"));
        }
        let iss = unverified["iss"]
            .as_str()
            .ok_or_else(|| bad("iss is missing"))?;
        if client_id.is_some_and(|c| c != iss) {
            return Err(bad("iss does not match client_id"));
        }
        let client = self.known_client(iss).await?;
        if client.metadata.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
            return Err(OAuthError::invalid_client(
                "the client registered another authentication method",
            ));
        }
        if client
            .metadata
            .token_endpoint_auth_signing_alg
            .as_deref()
            .is_some_and(|a| a != alg)
        {
            return Err(bad("alg is not the registered one"));
        }
        let kid = header["kid"].as_str();
        // One answer whether no key verifies or the jwks_uri could not be
        // fetched (review M3: no oracle on what the jwks_uri reaches).
        let claims = match (&client.metadata.jwks, &client.metadata.jwks_uri) {
            (Some(jwks), _) => self.jwks_cache.verify_with(jwks, assertion, alg, kid),
            (None, Some(uri)) => {
                self.jwks_cache
                    .verify_remote(uri, assertion, alg, kid)
                    .await
            }
            (None, None) => None,
        }
        .ok_or_else(|| bad("the signature does not verify with the client's keys"))?;

        if claims["sub"].as_str() != Some(client.client_id.as_str())
            || claims["iss"].as_str() != Some(client.client_id.as_str())
        {
            return Err(bad("iss and sub must both be the client_id"));
        }
        let audience_ok = |v: &serde_json::Value| {
            v == self.settings.issuer.as_str()
                || v == endpoint_url
                || v == self.endpoints.token.as_str()
        };
        let aud_ok = match &claims["aud"] {
            serde_json::Value::Array(a) => a.iter().any(audience_ok),
            v => audience_ok(v),
        };
        if !aud_ok {
            return Err(bad("aud must be the issuer or the endpoint"));
        }
        let now = self.clock.now().0;
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| bad("exp is missing"))?;
        if exp <= now - SKEW {
            return Err(bad("expired"));
        }
        if exp > now + max_lifetime + SKEW {
            return Err(bad("exp is too far in the future"));
        }
        if claims["iat"].as_i64().is_some_and(|iat| iat > now + SKEW) {
            return Err(bad("iat is in the future"));
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + SKEW) {
            return Err(bad("not yet valid"));
        }
        let jti = claims["jti"]
            .as_str()
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| bad("jti is missing"))?;
        let ttl = Duration::from_secs(u64::try_from(exp - now + SKEW).unwrap_or(1).max(1));
        let key = Key::new(Namespace::Replay, format!("jti:{}:{jti}", client.client_id));
        if !self.cache.put_new(&key, b"1", ttl).await? {
            return Err(bad("this assertion was already used (jti replay)"));
        }
        Ok(client)
    }
}
