//! A scripted citizen (a browser with a passkey) and a relying party, for the
//! tests and the benchmark. The citizen keeps cookies and the page's CSRF
//! token, and calls the ceremony endpoints as `passkeys.js` does; the relying
//! party registers itself, builds PKCE requests, redeems codes and refresh
//! tokens, and validates ID tokens against the published JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::authenticator::SoftAuthenticator;
pub use super::browser::WebSession;
use crate::secrets::random_token;

/// Why a scripted flow did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The request could not be sent or its answer read.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an unexpected status.
    #[error("{what}: status {status}: {body}")]
    Status {
        /// The step.
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The body, for the report.
        body: String,
    },
    /// The server answered something the flow cannot continue from.
    #[error("{0}")]
    Unexpected(String),
}

impl FlowError {
    /// The HTTP status, when the server answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, FlowError>;

/// An HTTP client that never follows redirects (the flows read them).
#[must_use]
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// A PKCE pair (RFC 7636): the verifier and its S256 challenge.
#[must_use]
pub fn pkce() -> (String, String) {
    let verifier = random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The value of a hidden input in `html`.
#[must_use]
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    html[start..].split('"').next().map(str::to_owned)
}

async fn expect_json(what: &'static str, res: reqwest::Response) -> Result<Value> {
    let status = res.status().as_u16();
    if status != 200 && status != 201 {
        let body = res.text().await.unwrap_or_default();
        return Err(FlowError::Status { what, status, body });
    }
    Ok(res.json().await?)
}

/// A citizen: a browser ([`WebSession`]) with a software passkey.
#[derive(Debug)]
pub struct Citizen {
    /// The browser; its methods are the citizen's (`Deref`).
    pub web: WebSession,
    /// The display name used when an account is created.
    pub name: String,
    /// The email address used when an account is created.
    pub email: String,
    /// The passkey.
    pub authenticator: SoftAuthenticator,
}

impl std::ops::Deref for Citizen {
    type Target = WebSession;
    fn deref(&self) -> &WebSession {
        &self.web
    }
}

impl std::ops::DerefMut for Citizen {
    fn deref_mut(&mut self) -> &mut WebSession {
        &mut self.web
    }
}

impl Citizen {
    /// A citizen with no account yet, whose pages have the origin `issuer`
    /// (the WebAuthn origin) and whose requests go to `base`.
    #[must_use]
    pub fn new(http: reqwest::Client, base: &str, issuer: &str, name: &str, email: &str) -> Self {
        Self {
            web: WebSession::new(http, base),
            name: name.to_owned(),
            email: email.to_owned(),
            authenticator: SoftAuthenticator::new(issuer.trim_end_matches('/'), false),
        }
    }

    /// Creates an account with a new passkey; the URL to go on to.
    ///
    /// # Errors
    /// If a ceremony step is refused.
    pub async fn create_account(&mut self, auth: Option<&str>) -> Result<String> {
        self.web
            .create_account(&mut self.authenticator, &self.name, &self.email, auth)
            .await
    }

    /// Signs in with the passkey, without a username; the URL to go on to.
    ///
    /// # Errors
    /// If a ceremony step is refused.
    pub async fn sign_in(&mut self, auth: Option<&str>) -> Result<String> {
        let (status, done) = self.web.sign_in(&mut self.authenticator, auth).await?;
        next_of("sign-in finish", status, &done)
    }

    /// The front channel of an authorization request: GET /authorize, sign
    /// in with the passkey (creating the account the first time) when asked,
    /// allow consent when asked, and return the parameters of the redirect
    /// to the client's `redirect_uri`.
    ///
    /// # Errors
    /// If any step is refused or the server answers something unexpected.
    pub async fn authorize(
        &mut self,
        rp: &Rp,
        request: &AuthRequest,
    ) -> Result<Vec<(String, String)>> {
        let mut res = self.get(&format!("/authorize?{}", request.query)).await?;
        for _ in 0..8 {
            let status = res.status().as_u16();
            match status {
                302 | 303 => {
                    let location = res
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    if location.starts_with(&rp.redirect_uri) {
                        return Ok(query_pairs(&location));
                    }
                    if !location.starts_with('/') {
                        return Err(FlowError::Unexpected(format!("redirected to {location}")));
                    }
                    if location.starts_with("/signin") {
                        let auth = query_pairs(&location)
                            .into_iter()
                            .find(|(k, _)| k == "auth")
                            .map(|(_, v)| v);
                        let next = if self.authenticator.credentials.is_empty() {
                            self.create_account(auth.as_deref()).await?
                        } else {
                            self.sign_in(auth.as_deref()).await?
                        };
                        res = self.get(&next).await?;
                    } else {
                        res = self.get(&location).await?;
                    }
                }
                200 => {
                    let html = res.text().await?;
                    if !html.contains("data-testid=\"consent-allow\"") {
                        return Err(FlowError::Unexpected(format!(
                            "an unexpected page: {}",
                            html.chars().take(300).collect::<String>()
                        )));
                    }
                    self.remember_csrf(&html);
                    let auth = hidden(&html, "auth").unwrap_or_default();
                    res = self
                        .post_form("/consent", &[("auth", &auth), ("decision", "allow")])
                        .await?;
                }
                _ => {
                    let body = res.text().await.unwrap_or_default();
                    return Err(FlowError::Status {
                        what: "authorize",
                        status,
                        body,
                    });
                }
            }
        }
        Err(FlowError::Unexpected("too many redirects".into()))
    }
}

pub(super) fn next_of(what: &'static str, status: u16, done: &Value) -> Result<String> {
    match done["next"].as_str() {
        Some(next) if status == 200 => Ok(next.to_owned()),
        _ => Err(FlowError::Status {
            what,
            status,
            body: done.to_string(),
        }),
    }
}

/// The query parameters of a URL or of a relative `path?query`.
#[must_use]
pub fn query_pairs(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of `name` in `params`.
#[must_use]
pub fn query_param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// One authorization request: its query string and the values the client
/// keeps to check the answer.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The query string for /authorize.
    pub query: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The state.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
}

/// A registered relying party.
#[derive(Debug, Clone)]
pub struct Rp {
    /// Its client id.
    pub client_id: String,
    /// Its secret (client_secret_basic), if confidential.
    pub secret: Option<String>,
    /// Its one redirect URI.
    pub redirect_uri: String,
    /// The registration response.
    pub registration: Value,
}

impl Rp {
    /// Registers a client at `base` (RFC 7591) with `metadata`; its first
    /// redirect URI is the one the flows use.
    ///
    /// # Errors
    /// If registration is refused.
    pub async fn register(
        http: &reqwest::Client,
        base: &str,
        initial_token: Option<&str>,
        metadata: &Value,
    ) -> Result<Self> {
        let mut req = http.post(format!("{base}/register")).json(metadata);
        if let Some(t) = initial_token {
            req = req.bearer_auth(t);
        }
        let reg = expect_json("register", req.send().await?).await?;
        Ok(Self {
            client_id: reg["client_id"].as_str().unwrap_or_default().to_owned(),
            secret: reg["client_secret"].as_str().map(str::to_owned),
            redirect_uri: metadata["redirect_uris"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            registration: reg,
        })
    }

    /// A new code-flow request with PKCE S256, state and nonce.
    #[must_use]
    pub fn request(&self, scope: &str) -> AuthRequest {
        let (verifier, challenge) = pkce();
        let (state, nonce) = (random_token(12), random_token(12));
        let query = format!(
            "response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
            urlencode(&self.client_id),
            urlencode(&self.redirect_uri),
            urlencode(scope),
        );
        AuthRequest {
            query,
            verifier,
            state,
            nonce,
        }
    }

    async fn token(
        &self,
        http: &reqwest::Client,
        base: &str,
        form: &[(&str, &str)],
    ) -> Result<Value> {
        let mut req = http.post(format!("{base}/token"));
        req = match &self.secret {
            Some(s) => req.basic_auth(&self.client_id, Some(s)),
            None => req,
        };
        let mut fields = form.to_vec();
        if self.secret.is_none() {
            fields.push(("client_id", &self.client_id));
        }
        expect_json("token", req.form(&fields).send().await?).await
    }

    /// Redeems `code` with the PKCE verifier; the token response.
    ///
    /// # Errors
    /// If the token endpoint refuses.
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        base: &str,
        code: &str,
        verifier: &str,
    ) -> Result<Value> {
        self.token(
            http,
            base,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Uses a refresh token; the token response (with its successor).
    ///
    /// # Errors
    /// If the token endpoint refuses.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        base: &str,
        refresh_token: &str,
    ) -> Result<Value> {
        self.token(
            http,
            base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}

/// Validates an ID token as a relying party must (OIDC Core §3.1.3.7):
/// signature by the JWKS key its `kid` names, with that key's algorithm;
/// issuer, audience, expiry and nonce. Returns the claims. Parses the JWKS
/// at every call; a relying party validating many tokens keeps an
/// [`IdTokenValidator`].
///
/// # Errors
/// [`FlowError::Unexpected`] naming the failed check.
pub fn validate_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<Value> {
    IdTokenValidator::new(jwks, issuer, client_id).validate(token, nonce, now)
}

/// A relying party's ID-token checks with the issuer's keys parsed once.
pub struct IdTokenValidator {
    keys: Vec<(String, String, Box<dyn josekit::jws::JwsVerifier>)>,
    issuer: String,
    client_id: String,
}

impl std::fmt::Debug for IdTokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenValidator")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl IdTokenValidator {
    /// Parses every key of `jwks` it can use; others are skipped.
    #[must_use]
    pub fn new(jwks: &Value, issuer: &str, client_id: &str) -> Self {
        use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256, RS256};
        let mut keys = Vec::new();
        for key in jwks["keys"].as_array().into_iter().flatten() {
            let (Some(kid), Some(alg)) = (key["kid"].as_str(), key["alg"].as_str()) else {
                continue;
            };
            let Ok(jwk) = josekit::jwk::Jwk::from_bytes(key.to_string()) else {
                continue;
            };
            let verifier: Option<Box<dyn JwsVerifier>> = match alg {
                "ES256" => ES256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _),
                "RS256" => RS256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _),
                "PS256" => PS256.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _),
                "EdDSA" => EdDSA.verifier_from_jwk(&jwk).ok().map(|v| Box::new(v) as _),
                _ => None,
            };
            if let Some(v) = verifier {
                keys.push((kid.to_owned(), alg.to_owned(), v));
            }
        }
        Self {
            keys,
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
        }
    }

    /// Checks `token` and returns its claims.
    ///
    /// # Errors
    /// [`FlowError::Unexpected`] naming the failed check.
    pub fn validate(&self, token: &str, nonce: &str, now: i64) -> Result<Value> {
        let bad = |why: &str| FlowError::Unexpected(format!("ID token: {why}"));
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a compact JWS"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| bad("bad base64url"))
        };
        let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| bad("bad header"))?;
        let (_, alg, verifier) = self
            .keys
            .iter()
            .find(|(kid, _, _)| header["kid"] == kid.as_str())
            .ok_or_else(|| bad("unknown kid"))?;
        if header["alg"] != alg.as_str() {
            return Err(bad("alg does not match the key"));
        }
        verifier
            .verify(&token.as_bytes()[..h.len() + 1 + p.len()], &decode(s)?)
            .map_err(|_| bad("bad signature"))?;
        let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|_| bad("bad claims"))?;
        if claims["iss"] != self.issuer.as_str() {
            return Err(bad("wrong issuer"));
        }
        let client_id = self.client_id.as_str();
        let aud_ok = claims["aud"] == client_id
            || claims["aud"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == client_id));
        if !aud_ok {
            return Err(bad("wrong audience"));
        }
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return Err(bad("expired"));
        }
        if claims["nonce"] != nonce {
            return Err(bad("wrong nonce"));
        }
        Ok(claims)
    }
}
