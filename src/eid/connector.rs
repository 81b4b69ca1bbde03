//! eID connectors: Civitas as an OpenID Connect relying party of an upstream
//! national eID provider (as TARA, FranceConnect or an eIDAS node are
//! reached), with the `openidconnect` crate.
//!
//! Authorization code with PKCE S256, `state` and `nonce` checked,
//! `private_key_jwt` client authentication with the connector's own ES256
//! key (in the keys directory, signed through josekit, published at
//! `/eid/jwks`), and the ID token fully validated by the library (issuer,
//! audience, signature against the upstream JWKS, expiry, nonce) before any
//! claim is read. The flow's state lives in the ephemeral store, so it can
//! finish on any instance.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jws::{ES256, JwsSigner};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl,
};
use serde::{Deserialize, Serialize};

use super::ProvenIdentity;
use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::clock::SharedClock;
use crate::config::ConnectorSettings;
use crate::ephemeral::{Cache, Ephemeral as _, EphemeralError, Key, Namespace};
use crate::secrets::random_token;

/// How long a citizen has to finish at the upstream eID provider.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

/// Why an eID flow failed. Each ends in a clear page and no binding.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// No such connector.
    #[error("this eID is not offered here")]
    UnknownConnector,
    /// The citizen cancelled at the eID provider (`access_denied`) or it refused.
    #[error("the eID sign-in was cancelled or refused ({0})")]
    Refused(String),
    /// The `state` does not name a flow of this browser (forged, replayed or expired).
    #[error("this eID response does not belong to a sign-in started here, or it expired")]
    BadState,
    /// The eID is of a country this connector is not trusted for
    /// (`countries` in its settings).
    #[error("this eID provider is not trusted for identities of that country")]
    ForeignCountry,
    /// The upstream answer failed validation (signature, issuer, audience,
    /// expiry, nonce) or the exchange failed.
    #[error("the eID provider's answer could not be verified: {0}")]
    Invalid(String),
    /// The eID's level maps to no eIDAS level.
    #[error("the eID reported a level of assurance Civitas does not accept")]
    UnknownLevel,
    /// The ephemeral store failed.
    #[error(transparent)]
    Cache(#[from] EphemeralError),
}

/// What the flow is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowPurpose {
    /// Bind (or re-proof) the eID to this account.
    Enroll(AccountId),
    /// Recover an account that lost every passkey.
    Recover,
}

/// A flow begun at [`Connectors::begin`] and taken back by
/// [`Connectors::take`]: what it was for, for the page that follows.
#[derive(Serialize, Deserialize)]
pub struct Flow {
    connector: String,
    purpose: FlowPurpose,
    resume: Option<String>,
    /// Hash of the browser-binding value (the flow cookie of the browser
    /// that started the flow): a response delivered to another browser is
    /// refused (no login CSRF into someone else's account).
    browser: String,
    verifier: String,
    nonce: String,
}

impl Flow {
    /// What the flow is for.
    #[must_use]
    pub fn purpose(&self) -> &FlowPurpose {
        &self.purpose
    }

    /// The handle of the pending authorization to resume, if any.
    #[must_use]
    pub fn resume(&self) -> Option<&str> {
        self.resume.as_deref()
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("connector", &self.connector)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// The connector's signing key (`keys/eid-connector.pem`), for `private_key_jwt`.
struct ConnectorKey {
    signer: Box<dyn JwsSigner>,
    kid: String,
    jwks: serde_json::Value,
}

impl ConnectorKey {
    fn load_or_create(dir: &Path) -> Result<Self, String> {
        let path = dir.join("eid-connector.pem");
        let pem = if path.exists() {
            std::fs::read(&path).map_err(|e| e.to_string())?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let pair = EcKeyPair::generate(EcCurve::P256).map_err(|e| e.to_string())?;
            let pem = pair.to_pem_private_key();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut f) => std::io::Write::write_all(&mut f, &pem).map_err(|e| e.to_string())?,
                // Another instance created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.to_string()),
            }
            std::fs::read(&path).map_err(|e| e.to_string())?
        };
        let pair = EcKeyPair::from_pem(&pem, Some(EcCurve::P256)).map_err(|e| e.to_string())?;
        let mut public = pair.to_jwk_public_key();
        let x = public
            .parameter("x")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let y = public
            .parameter("y")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid =
            URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(canonical.as_bytes()));
        public.set_key_id(kid.clone());
        public.set_algorithm("ES256");
        public.set_key_use("sig");
        let signer = ES256.signer_from_pem(&pem).map_err(|e| e.to_string())?;
        let jwks = serde_json::json!({ "keys": [serde_json::Value::Object(public.into())] });
        Ok(Self {
            signer: Box::new(signer),
            kid,
            jwks,
        })
    }
}

/// The configured connectors.
#[derive(Clone)]
pub struct Connectors {
    settings: Arc<Vec<ConnectorSettings>>,
    key: Arc<ConnectorKey>,
    redirect_uri: String,
    http: crate::outbound::Upstream,
    cache: Cache,
    clock: SharedClock,
    metadata: Arc<Mutex<HashMap<String, CoreProviderMetadata>>>,
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors")
            .field("count", &self.settings.len())
            .finish_non_exhaustive()
    }
}

impl Connectors {
    /// The connectors of `settings`, with the connector key from `keys_dir`;
    /// every request to an upstream goes through `outbound`.
    ///
    /// # Errors
    /// If the key cannot be read or created.
    pub fn new(
        settings: Vec<ConnectorSettings>,
        keys_dir: &Path,
        issuer: &str,
        cache: Cache,
        clock: SharedClock,
        outbound: &crate::outbound::Fetcher,
    ) -> Result<Self, String> {
        Ok(Self {
            settings: Arc::new(settings),
            key: Arc::new(ConnectorKey::load_or_create(keys_dir)?),
            redirect_uri: format!("{issuer}/eid/callback"),
            http: outbound.upstream(crate::outbound::Use::Eid),
            cache,
            clock,
            metadata: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The connectors offered: id and name.
    #[must_use]
    pub fn offered(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect()
    }

    /// The public key set of the connector key (`/eid/jwks`).
    #[must_use]
    pub fn jwks(&self) -> &serde_json::Value {
        &self.key.jwks
    }

    fn settings_of(&self, id: &str) -> Result<&ConnectorSettings, FlowError> {
        self.settings
            .iter()
            .find(|c| c.id == id)
            .ok_or(FlowError::UnknownConnector)
    }

    async fn client(
        &self,
        conn: &ConnectorSettings,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        FlowError,
    > {
        let cached = self
            .metadata
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&conn.id)
            .cloned();
        let metadata = match cached {
            Some(m) => m,
            None => {
                let issuer = IssuerUrl::new(conn.issuer.clone())
                    .map_err(|e| FlowError::Invalid(e.to_string()))?;
                let m = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| FlowError::Invalid(format!("discovery failed: {e}")))?;
                self.metadata
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(conn.id.clone(), m.clone());
                m
            }
        };
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(conn.client_id.clone()),
            None,
        )
        .set_auth_type(AuthType::RequestBody)
        .set_redirect_uri(
            RedirectUrl::new(self.redirect_uri.clone())
                .map_err(|e| FlowError::Invalid(e.to_string()))?,
        ))
    }

    /// Starts a flow at connector `id`; the URL to send the browser to.
    ///
    /// # Errors
    /// An unknown connector, or the upstream's discovery failing.
    pub async fn begin(
        &self,
        id: &str,
        purpose: FlowPurpose,
        resume: Option<String>,
        browser: &str,
    ) -> Result<String, FlowError> {
        let conn = self.settings_of(id)?;
        let client = self.client(conn).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let flow = Flow {
            connector: conn.id.clone(),
            purpose,
            resume,
            browser: crate::secrets::SecretHash::of(browser).as_str().to_owned(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        };
        let bytes = serde_json::to_vec(&flow).map_err(|e| FlowError::Invalid(e.to_string()))?;
        self.cache
            .put(
                &Key::new(Namespace::Challenge, format!("eid:{}", state.secret())),
                &bytes,
                FLOW_TTL,
            )
            .await?;
        Ok(url.to_string())
    }

    /// The client assertion for the upstream token endpoint (RFC 7523 §2.2).
    fn assertion(&self, conn: &ConnectorSettings, audience: &str) -> Result<String, FlowError> {
        let now = self.clock.now();
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.key.kid});
        let claims = serde_json::json!({
            "iss": conn.client_id, "sub": conn.client_id, "aud": audience,
            "jti": random_token(16), "iat": now.0, "exp": now.plus(60).0,
        });
        let mut out = String::new();
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&header).unwrap_or_default(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims).unwrap_or_default(), &mut out);
        let sig = self
            .key
            .signer
            .sign(out.as_bytes())
            .map_err(|e| FlowError::Invalid(e.to_string()))?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }

    /// Takes the flow that the upstream's redirect names (`state`), once:
    /// only the browser that began it (`browser`, the value of its flow
    /// cookie) gets it back.
    ///
    /// # Errors
    /// [`FlowError::BadState`] for a missing, unknown, used or expired
    /// `state` or another browser; [`FlowError::Cache`].
    pub async fn take(
        &self,
        params: &HashMap<String, String>,
        browser: Option<&str>,
    ) -> Result<Flow, FlowError> {
        let state = params.get("state").ok_or(FlowError::BadState)?;
        let bytes = self
            .cache
            .take(&Key::new(Namespace::Challenge, format!("eid:{state}")))
            .await?
            .ok_or(FlowError::BadState)?;
        let flow: Flow = serde_json::from_slice(&bytes).map_err(|_| FlowError::BadState)?;
        let Some(browser) = browser else {
            return Err(FlowError::BadState);
        };
        if !crate::secrets::SecretHash::from_stored(flow.browser.clone()).verify(browser) {
            return Err(FlowError::BadState);
        }
        Ok(flow)
    }

    /// Completes a flow this browser took back: the identity the upstream
    /// proved, from its redirect parameters.
    ///
    /// # Errors
    /// Every failure of [`FlowError`]; none of them binds anything.
    pub async fn complete(
        &self,
        flow: Flow,
        params: &HashMap<String, String>,
    ) -> Result<ProvenIdentity, FlowError> {
        if let Some(error) = params.get("error") {
            return Err(FlowError::Refused(
                error
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(40)
                    .collect(),
            ));
        }
        let code = params
            .get("code")
            .ok_or_else(|| FlowError::Invalid("no code".into()))?;
        let conn = self.settings_of(&flow.connector)?;
        let client = self.client(conn).await?;
        let token_url = client
            .token_uri()
            .map(|u| u.to_string())
            .unwrap_or_else(|| conn.issuer.clone());
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .map_err(|e| FlowError::Invalid(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
            .add_extra_param(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .add_extra_param("client_assertion", self.assertion(conn, &token_url)?)
            .request_async(&self.http)
            .await
            .map_err(|e| FlowError::Invalid(format!("code exchange failed: {e}")))?;
        let id_token = openidconnect::TokenResponse::id_token(&tokens)
            .ok_or_else(|| FlowError::Invalid("no ID token".into()))?;
        // The library checks signature, issuer, audience, expiry and nonce.
        id_token
            .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce))
            .map_err(|e| FlowError::Invalid(e.to_string()))?;
        // Verified: now read the claims the connector maps.
        let raw = id_token.to_string();
        let payload = raw
            .split('.')
            .nth(1)
            .ok_or_else(|| FlowError::Invalid("malformed".into()))?;
        let claims: serde_json::Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| FlowError::Invalid("malformed claims".into()))?;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let upstream_acr = text("acr").unwrap_or_default();
        let level_name = if conn.acr_map.is_empty() {
            upstream_acr
        } else {
            conn.acr_map.get(&upstream_acr).cloned().unwrap_or_default()
        };
        let level = Level::parse(&level_name).ok_or(FlowError::UnknownLevel)?;
        let person_identifier = text(&conn.person_identifier_claim)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| FlowError::Invalid("no person identifier".into()))?;
        let country = conn
            .country_claim
            .as_deref()
            .and_then(text)
            .unwrap_or_else(|| conn.country.clone())
            .to_ascii_uppercase();
        // A connector asserts only the identities of its own countries, and
        // only identifiers of that country.
        if !conn.accepts_country(&country) {
            return Err(FlowError::ForeignCountry);
        }
        super::PersonIdentifier::parse(&country, &person_identifier).map_err(|_| {
            FlowError::Invalid("the person identifier is not one of its country".into())
        })?;
        Ok(ProvenIdentity {
            connector: conn.id.clone(),
            scheme: conn.scheme.clone(),
            country,
            person_identifier,
            given_name: text(&conn.given_name_claim),
            family_name: text(&conn.family_name_claim),
            birthdate: text(&conn.birthdate_claim),
            level,
        })
    }
}
