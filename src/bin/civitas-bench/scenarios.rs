//! The scenarios: what one step of each does, and the clients and citizens
//! they need, prepared before the clock starts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use civitas::testkit::citizen::{self, Citizen, IdTokenValidator, Rp, http_client};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::load::Worker;
use crate::server::REGISTRATION_TOKEN;

fn now() -> i64 {
    use civitas::clock::Clock as _;
    civitas::clock::SystemClock.now().0
}

async fn ok(res: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    let res = res.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

/// A GET of a fixed URL (discovery, JWKS).
pub struct Get {
    pub http: reqwest::Client,
    pub url: String,
}

impl Worker for Get {
    async fn step(&mut self) -> Result<(), String> {
        ok(self.http.get(&self.url).send().await).await
    }
}

/// A form POST with client_secret_basic (client_credentials, introspection).
pub struct BasicForm {
    pub http: reqwest::Client,
    pub url: String,
    pub form: Vec<(String, String)>,
    pub client_id: String,
    pub secret: String,
}

impl Worker for BasicForm {
    async fn step(&mut self) -> Result<(), String> {
        let req = self
            .http
            .post(&self.url)
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&self.form);
        ok(req.send().await).await
    }
}

/// client_credentials with private_key_jwt (RFC 7523 §2.2): a new ES256
/// assertion, with a new jti, for every request.
pub struct PrivateKeyJwt {
    pub http: reqwest::Client,
    pub url: String,
    /// The token endpoint's URL at the issuer (the assertion's audience).
    pub aud: String,
    pub client: std::sync::Arc<AssertionKey>,
}

/// A client's ES256 key and identity.
pub struct AssertionKey {
    pub client_id: String,
    pub key: EcdsaKeyPair,
    pub kid: String,
    pub rng: SystemRandom,
}

impl AssertionKey {
    pub fn generate() -> (Self, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("an ES256 key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key just generated");
        let point = key.public_key().as_ref();
        let kid = "bench-1".to_owned();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        (
            Self {
                client_id: String::new(),
                key,
                kid,
                rng,
            },
            json!({ "keys": [jwk] }),
        )
    }

    fn assertion(&self, aud: &str) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let now = now();
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": aud,
            "jti": civitas::secrets::random_token(16), "iat": now, "exp": now + 60,
        });
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self
            .key
            .sign(&self.rng, out.as_bytes())
            .expect("a signature");
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        out
    }
}

impl Worker for PrivateKeyJwt {
    async fn step(&mut self) -> Result<(), String> {
        let assertion = self.client.assertion(&self.aud);
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        ok(self.http.post(&self.url).form(&form).send().await).await
    }
}

/// GET /userinfo with a citizen's access token.
pub struct Userinfo {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
}

impl Worker for Userinfo {
    async fn step(&mut self) -> Result<(), String> {
        ok(self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await)
        .await
    }
}

/// Refresh-token rotation: each step redeems the current refresh token and
/// keeps its successor.
pub struct Refresh {
    pub http: reqwest::Client,
    pub base: String,
    pub rp: Rp,
    pub token: String,
}

impl Worker for Refresh {
    async fn step(&mut self) -> Result<(), String> {
        let res = self
            .rp
            .refresh(&self.http, &self.base, &self.token)
            .await
            .map_err(|e| e.to_string())?;
        self.token = res["refresh_token"]
            .as_str()
            .ok_or("no refresh token in the response")?
            .to_owned();
        Ok(())
    }
}

/// The whole authorization-code flow of a returning citizen in a new
/// browser: /authorize, the sign-in page, a passkey assertion (begin and
/// finish), back to /authorize with consent remembered, the code exchanged
/// with PKCE, and the ID token validated (signature, iss, aud, exp, nonce).
pub struct Flow {
    pub http: reqwest::Client,
    pub base: String,
    pub rp: Rp,
    pub citizen: Citizen,
    pub validator: std::sync::Arc<IdTokenValidator>,
}

impl Worker for Flow {
    async fn step(&mut self) -> Result<(), String> {
        self.citizen.forget_cookies();
        let request = self.rp.request("openid");
        let params = self
            .citizen
            .authorize(&self.rp, &request)
            .await
            .map_err(|e| e.to_string())?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("state") != Some(request.state.as_str()) {
            return Err(format!("state mismatch: {params:?}"));
        }
        let code = get("code").ok_or_else(|| format!("no code: {params:?}"))?;
        let tokens = self
            .rp
            .exchange(&self.http, &self.base, code, &request.verifier)
            .await
            .map_err(|e| e.to_string())?;
        let id_token = tokens["id_token"].as_str().ok_or("no ID token")?;
        self.validator
            .validate(id_token, &request.nonce, now())
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A portal for the citizen scenarios: authorization code and refresh
/// tokens, ES256 ID tokens (the RS256 default costs 1 ms of RSA per token).
pub async fn register_portal(base: &str) -> Rp {
    Rp::register(
        &http_client(),
        base,
        Some(REGISTRATION_TOKEN),
        &json!({
            "client_name": "Benchmark portal",
            "redirect_uris": ["https://portal.bench.example/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email offline_access",
            "id_token_signed_response_alg": "ES256",
        }),
    )
    .await
    .expect("register the portal")
}

/// `n` citizens, each with an account, a passkey and consent given to `rp`
/// for `scope`; with the token response of that first sign-in.
pub async fn citizens(
    base: &str,
    issuer: &str,
    rp: &Rp,
    n: usize,
    scope: &str,
    tag: &str,
) -> Vec<(Citizen, Value)> {
    let mut out = Vec::new();
    for i in 0..n {
        let http = http_client();
        let mut c = Citizen::new(
            http.clone(),
            base,
            issuer,
            &format!("Citizen {tag} {i}"),
            &format!("citizen-{tag}-{i}@bench.example"),
        );
        let request = rp.request(scope);
        let params = c.authorize(rp, &request).await.expect("a first sign-in");
        let code = citizen::query_param(&params, "code").expect("a code");
        let tokens = rp
            .exchange(&http, base, &code, &request.verifier)
            .await
            .expect("the first code exchange");
        out.push((c, tokens));
    }
    out
}
