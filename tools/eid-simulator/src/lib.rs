//! A development eID provider for Civitas (`civitas-eid-simulator`): a
//! minimal, standards-conformant OpenID Connect provider that serves test
//! identities from a fixture file and lets the tester pick one and a level,
//! so that eID enrollment, step-up and recovery can be developed and tested
//! against a real upstream over HTTP.
//!
//! It is not part of Civitas: it is a workspace member of its own, never
//! linked into the `civitas` binary, and it listens on loopback addresses
//! only. Authorization code with PKCE S256, `private_key_jwt` client
//! authentication against the client's JWKS URL, RS256-signed ID tokens.
//! For tests it can be told to misbehave (bad state, wrong nonce, bad
//! signature, expired token, wrong issuer) from its page, one request at a
//! time.

mod key;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use key::SigningKey;

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Its issuer URL.
    pub issuer: String,
    /// The fixture file of test identities.
    pub fixtures: PathBuf,
    /// Where its signing key lives.
    pub keys_dir: PathBuf,
    /// The one client it serves (Civitas's connector).
    pub client_id: String,
    /// That client's redirect URI, matched exactly.
    pub redirect_uri: String,
    /// That client's JWK Set URL, for `private_key_jwt`.
    pub client_jwks_uri: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    id: String,
    person_identifier: String,
    given_name: String,
    family_name: String,
    birthdate: String,
    /// Sent as the `country` claim when present.
    #[serde(default)]
    country: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixtures {
    identities: Vec<Identity>,
}

struct Pending {
    state: Option<String>,
    nonce: Option<String>,
    challenge: String,
}

struct Code {
    identity: Identity,
    level: String,
    fault: String,
    nonce: Option<String>,
    challenge: String,
    issued: Instant,
}

struct Sim {
    cfg: SimulatorConfig,
    key: SigningKey,
    identities: Vec<Identity>,
    requests: Mutex<HashMap<String, Pending>>,
    codes: Mutex<HashMap<String, Code>>,
    http: reqwest::Client,
}

type S = Arc<Sim>;

/// A running simulator.
#[derive(Debug)]
pub struct RunningSimulator {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// Stops it.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Starts the simulator on `listener`, which must be on a loopback address.
///
/// # Errors
/// A listener on another address, or fixtures or a key that cannot be read.
pub async fn start(
    listener: TcpListener,
    cfg: SimulatorConfig,
) -> Result<RunningSimulator, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the eID simulator listens on loopback addresses only, not {addr}"
        ));
    }
    let text = std::fs::read_to_string(&cfg.fixtures)
        .map_err(|e| format!("{}: {e}", cfg.fixtures.display()))?;
    let fixtures: Fixtures =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", cfg.fixtures.display()))?;
    let sim = Arc::new(Sim {
        key: SigningKey::load_or_create(&cfg.keys_dir)?,
        cfg,
        identities: fixtures.identities,
        requests: Mutex::new(HashMap::new()),
        codes: Mutex::new(HashMap::new()),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/authorize/select", post(select))
        .route("/token", post(token))
        .route("/static/civitas.css", get(stylesheet))
        .with_state(sim);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(RunningSimulator { addr, task })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Unix seconds now. The simulator is a development tool on the system
/// clock; Civitas itself takes its clock as an argument.
#[allow(clippy::disallowed_methods)]
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    let _ = getrandom::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../templates/static/civitas.css"),
    )
        .into_response()
}

async fn discovery(State(sim): State<S>) -> Response {
    let i = &sim.cfg.issuer;
    axum::Json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid"],
        "acr_values_supported": ["low", "substantial", "high"],
        "claims_supported": ["sub", "given_name", "family_name", "birthdate", "acr", "country"],
    }))
    .into_response()
}

async fn jwks(State(sim): State<S>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::Json(sim.key.jwks().clone()),
    )
        .into_response()
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, msg.to_owned()).into_response()
}

#[derive(Template)]
#[template(path = "simulator.html")]
struct Page {
    request: String,
    identities: Vec<(String, String)>,
}

async fn authorize(State(sim): State<S>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("client_id") != Some(&sim.cfg.client_id)
        || q.get("redirect_uri") != Some(&sim.cfg.redirect_uri)
    {
        return bad("unknown client or redirect_uri");
    }
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || !q.contains_key("code_challenge")
    {
        return bad("response_type=code with PKCE S256 is required");
    }
    let id = random_token();
    lock(&sim.requests).insert(
        id.clone(),
        Pending {
            state: q.get("state").cloned(),
            nonce: q.get("nonce").cloned(),
            challenge: q["code_challenge"].clone(),
        },
    );
    let page = Page {
        request: id,
        identities: sim
            .identities
            .iter()
            .map(|i| {
                (
                    i.id.clone(),
                    format!(
                        "{} {} ({})",
                        i.given_name, i.family_name, i.person_identifier
                    ),
                )
            })
            .collect(),
    };
    match page.render() {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => bad(&e.to_string()),
    }
}

#[derive(Deserialize)]
struct Select {
    request: String,
    identity: String,
    level: String,
    #[serde(default)]
    fault: String,
    action: String,
}

fn redirect_with(base: &str, params: &[(&str, &str)]) -> Response {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    Redirect::to(&format!("{base}?{query}")).into_response()
}

async fn select(State(sim): State<S>, axum::Form(f): axum::Form<Select>) -> Response {
    let Some(req) = lock(&sim.requests).remove(&f.request) else {
        return bad("unknown request");
    };
    let state = req.state.clone().unwrap_or_default();
    if f.action != "approve" {
        return redirect_with(
            &sim.cfg.redirect_uri,
            &[("error", "access_denied"), ("state", &state)],
        );
    }
    let Some(identity) = sim.identities.iter().find(|i| i.id == f.identity).cloned() else {
        return bad("unknown identity");
    };
    let code = random_token();
    let returned_state = if f.fault == "bad_state" {
        "tampered-state".to_owned()
    } else {
        state
    };
    lock(&sim.codes).insert(
        code.clone(),
        Code {
            identity,
            level: f.level,
            fault: f.fault,
            nonce: req.nonce,
            challenge: req.challenge,
            issued: Instant::now(),
        },
    );
    redirect_with(
        &sim.cfg.redirect_uri,
        &[("code", &code), ("state", &returned_state)],
    )
}

/// Verifies the client's `private_key_jwt` assertion against its JWKS URL.
async fn client_authenticated(sim: &Sim, form: &HashMap<String, String>) -> bool {
    let (Some(kind), Some(assertion)) = (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) else {
        return false;
    };
    if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return false;
    }
    let Ok(res) = sim.http.get(&sim.cfg.client_jwks_uri).send().await else {
        return false;
    };
    let Ok(jwks) = res.json::<serde_json::Value>().await else {
        return false;
    };
    let Some((input, sig)) = assertion.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let verified = jwks["keys"].as_array().into_iter().flatten().any(|k| {
        let Some(map) = k.as_object() else {
            return false;
        };
        josekit::jwk::Jwk::from_map(map.clone())
            .ok()
            .and_then(|jwk| josekit::jws::ES256.verifier_from_jwk(&jwk).ok())
            .is_some_and(|v| josekit::jws::JwsVerifier::verify(&v, input.as_bytes(), &sig).is_ok())
    });
    if !verified {
        return false;
    }
    let Some(payload) = input.split('.').nth(1) else {
        return false;
    };
    let Ok(claims) = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|_| ()))
    else {
        return false;
    };
    let now = now();
    let aud_ok = claims["aud"] == sim.cfg.issuer.as_str()
        || claims["aud"] == format!("{}/token", sim.cfg.issuer).as_str();
    claims["iss"] == sim.cfg.client_id.as_str()
        && claims["sub"] == sim.cfg.client_id.as_str()
        && aud_ok
        && claims["exp"]
            .as_i64()
            .is_some_and(|e| e > now && e <= now + 600)
}

async fn token(
    State(sim): State<S>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let error = |code: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": code})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return error("unsupported_grant_type");
    }
    if !client_authenticated(&sim, &form).await {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let Some(code) = form.get("code").and_then(|c| lock(&sim.codes).remove(c)) else {
        return error("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if code.issued.elapsed() > Duration::from_secs(60)
        || form.get("redirect_uri") != Some(&sim.cfg.redirect_uri)
        || URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != code.challenge
    {
        return error("invalid_grant");
    }
    let now = now();
    let (iat, exp) = if code.fault == "expired" {
        (now - 900, now - 600)
    } else {
        (now, now + 300)
    };
    let mut claims = serde_json::json!({
        "iss": if code.fault == "wrong_issuer" { "https://impostor.example" } else { sim.cfg.issuer.as_str() },
        "sub": code.identity.person_identifier,
        "aud": sim.cfg.client_id,
        "iat": iat,
        "exp": exp,
        "nonce": if code.fault == "wrong_nonce" { Some("not-your-nonce".to_owned()) } else { code.nonce },
        "acr": code.level,
        "given_name": code.identity.given_name,
        "family_name": code.identity.family_name,
        "birthdate": code.identity.birthdate,
    });
    if let Some(country) = &code.identity.country {
        claims["country"] = serde_json::Value::String(country.clone());
    }
    let Ok(mut id_token) = sim.key.sign(&claims) else {
        return error("server_error");
    };
    if code.fault == "bad_signature" {
        let cut = id_token.len() - 6;
        id_token.replace_range(cut.., "AAAAAA");
    }
    axum::Json(serde_json::json!({
        "access_token": random_token(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_refuses_to_listen_beyond_loopback() {
        let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
        let dir = tempfile::tempdir().expect("temporary directory");
        let err = start(
            listener,
            SimulatorConfig {
                issuer: "http://127.0.0.1:9091".into(),
                fixtures: dir.path().join("none.json"),
                keys_dir: dir.path().join("keys"),
                client_id: "civitas".into(),
                redirect_uri: "http://localhost:8080/eid/callback".into(),
                client_jwks_uri: "http://localhost:8080/eid/jwks".into(),
            },
        )
        .await
        .expect_err("refused");
        assert!(err.contains("loopback"), "{err}");
    }
}
