//! Outbound fetches of URLs a client chose (review M3), through Civitas:
//! registration refuses `jwks_uri`, `sector_identifier_uri` and
//! `backchannel_logout_uri` on internal addresses; at fetch time a client
//! stored with such a URI gets the same answer as one whose key does not
//! verify, `localhost` is never connected to under an https issuer, an endless key set is cut at the cap, a failed fetch is not
//! repeated at once, and a logout token is never posted inside the network.
//! The fetcher itself (timeouts, redirects, caps) is in `outbound_fetcher.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, TestEnv};
use crate::machine::assertion;
use crate::on_both_stacks;

const HTTPS_ISSUER: &str = "https://id.example.gov";

/// The public key set of `key` (kid `k1`).
fn key_set(key: &EcKeyPair) -> Value {
    let mut public = key.to_jwk_public_key();
    public.set_key_id("k1");
    json!({"keys": [Value::Object(public.into())]})
}

/// Serves `router` on a loopback port; its port.
async fn serve(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// Serves `body` at `/jwks` on a loopback port; its URL.
async fn serve_json(body: Value) -> String {
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(body) }),
    );
    format!("http://127.0.0.1:{}/jwks", serve(router).await)
}

/// A loopback port that accepts connections, counts them and closes them.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

/// Registers a `private_key_jwt` machine client with these keys; its id.
async fn machine_client(app: &TestApp, keys: Value) -> String {
    let mut metadata = json!({
        "grant_types": ["client_credentials"],
        "scope": "cases:read",
        "token_endpoint_auth_method": "private_key_jwt",
    });
    for (k, v) in keys.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    let reg = app.register_ok(&metadata).await;
    reg["client_id"].as_str().unwrap().to_owned()
}

/// A client_credentials request authenticated with an assertion by `key`
/// for `aud`; status and body.
async fn token_with(app: &TestApp, key: &EcKeyPair, id: &str, aud: &str) -> (u16, Value) {
    let jti = civitas::secrets::random_token(12);
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                assertion(key, id, aud, 60, &jti).as_str(),
            ),
        ])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Changes a stored client's metadata as a client registered before the
/// registration check would have it (or as DNS could change under it):
/// replaces `from` by `to` in its metadata.
async fn rewrite_metadata(app: &TestApp, client_id: &str, from: &str, to: &str) {
    let done =
        sqlx::query("UPDATE clients SET metadata = REPLACE(metadata, $1, $2) WHERE client_id = $3")
            .bind(from)
            .bind(to)
            .bind(client_id)
            .execute(app.app().db.pool())
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

/// Metadata that names `uri` as `field`, otherwise acceptable.
fn metadata_naming(field: &str, uri: &str) -> Value {
    match field {
        "jwks_uri" => json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": uri,
        }),
        "sector_identifier_uri" => json!({
            "redirect_uris": ["https://portal.agency.example/callback"],
            "sector_identifier_uri": uri,
        }),
        _ => json!({
            "redirect_uris": ["https://portal.agency.example/callback"],
            field: uri,
        }),
    }
}

async fn assert_refused(app: &TestApp, field: &str, uri: &str) {
    let expected = if uri.starts_with("http:") {
        "https"
    } else {
        "address"
    };
    let res = app.register(&metadata_naming(field, uri)).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 400, "{field} {uri} accepted: {body}");
    assert_eq!(
        body["error"], "invalid_client_metadata",
        "{field} {uri}: {body}"
    );
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(field) && description.contains(expected),
        "{field} {uri}: the description names the field and says `{expected}`: {description}"
    );
}

async fn registration_refuses_uris_that_name_internal_addresses(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    for (field, uri) in [
        ("jwks_uri", "https://10.0.0.7:8443/internal/status"),
        ("jwks_uri", "https://172.16.0.1/jwks"),
        ("jwks_uri", "https://169.254.169.254/latest/meta-data/"),
        ("jwks_uri", "https://100.64.0.1/jwks"),
        ("jwks_uri", "https://0.0.0.0/jwks"),
        ("jwks_uri", "https://224.0.0.251/jwks"),
        ("jwks_uri", "https://255.255.255.255/jwks"),
        ("jwks_uri", "https://192.0.2.1/jwks"),
        // 10.0.0.7 written as one number: the URL parser reads it as IPv4.
        ("jwks_uri", "https://167772167/jwks"),
        ("jwks_uri", "https://[fd00::7]/jwks"),
        ("jwks_uri", "https://[fe80::1]/jwks"),
        ("jwks_uri", "https://[::ffff:10.0.0.7]/jwks"),
        ("jwks_uri", "https://[ff02::1]/jwks"),
        ("jwks_uri", "https://[::]/jwks"),
        ("sector_identifier_uri", "https://192.168.1.10/sector.json"),
        ("backchannel_logout_uri", "https://10.1.2.3/logout"),
        ("backchannel_logout_uri", "https://[fe80::1]/logout"),
    ] {
        assert_refused(&app, field, uri).await;
    }
}

async fn with_an_https_issuer_loopback_and_http_are_refused_at_registration(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let app = env.spawn_behind(HTTPS_ISSUER).await;
    for (field, uri) in [
        ("jwks_uri", "http://127.0.0.1:8080/jwks"),
        ("jwks_uri", "https://127.0.0.1/jwks"),
        ("jwks_uri", "https://localhost/jwks"),
        ("jwks_uri", "https://[::1]/jwks"),
        ("jwks_uri", "https://2130706433/jwks"),
        ("sector_identifier_uri", "https://127.0.0.1/sector.json"),
        ("backchannel_logout_uri", "http://localhost/logout"),
        ("backchannel_logout_uri", "https://127.0.0.2/logout"),
    ] {
        assert_refused(&app, field, uri).await;
    }
    // A public name is accepted: registration does not fetch a jwks_uri.
    let res = app
        .register(&metadata_naming(
            "jwks_uri",
            "https://keys.agency.example/jwks",
        ))
        .await;
    assert_eq!(res.status(), 201);
}

async fn a_jwks_uri_on_an_internal_address_is_answered_like_a_key_that_does_not_verify(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let other = EcKeyPair::generate(EcCurve::P256).unwrap();
    let served = serve_json(key_set(&other)).await;
    let wrong_key = machine_client(&app, json!({"jwks_uri": served})).await;
    let (status, expected) = token_with(&app, &key, &wrong_key, &app.base).await;
    assert_eq!(
        (status, expected["error"].as_str()),
        (401, Some("invalid_client"))
    );

    for internal in [
        "https://169.254.169.254/latest/meta-data/iam",
        "https://10.0.0.7:8443/internal/status",
    ] {
        let id = machine_client(&app, json!({"jwks_uri": served})).await;
        rewrite_metadata(&app, &id, &served, internal).await;
        let (status, body) = token_with(&app, &key, &id, &app.base).await;
        assert_eq!(status, 401, "{internal}: {body}");
        assert_eq!(
            body, expected,
            "{internal}: the same answer as a key that does not verify"
        );
    }
}

async fn a_stored_jwks_uri_on_localhost_is_never_connected_to_under_an_https_issuer(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let app = env.spawn_behind(HTTPS_ISSUER).await;
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let other = EcKeyPair::generate(EcCurve::P256).unwrap();
    let wrong_key = machine_client(&app, json!({"jwks": key_set(&other)})).await;
    let (status, expected) = token_with(&app, &key, &wrong_key, HTTPS_ISSUER).await;
    assert_eq!(status, 401);

    let (port, accepted) = counting_listener().await;
    let public = "https://keys.agency.example/jwks";
    let id = machine_client(&app, json!({"jwks_uri": public})).await;
    rewrite_metadata(&app, &id, public, &format!("https://localhost:{port}/jwks")).await;
    let (status, body) = token_with(&app, &key, &id, HTTPS_ISSUER).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body, expected,
        "the same answer as a key that does not verify"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "localhost is loopback: no connection was made"
    );
}

/// Sets its flag when dropped: the server stopped sending.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn an_endless_jwks_is_cut_at_the_cap(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicBool::new(false));
    let (s, e) = (sent.clone(), ended.clone());
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (sent, guard) = (s.clone(), Dropped(e.clone()));
            async move {
                // `{"keys":[` and then spaces, forever (64 KiB a millisecond).
                let chunks =
                    futures::stream::unfold((sent, guard, true), |(sent, g, first)| async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let chunk = if first {
                            bytes::Bytes::from_static(b"{\"keys\":[")
                        } else {
                            bytes::Bytes::from(vec![b' '; 64 * 1024])
                        };
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        Some((Ok::<_, std::io::Error>(chunk), (sent, g, false)))
                    });
                axum::body::Body::from_stream(chunks)
            }
        }),
    );
    let uri = format!("http://127.0.0.1:{}/jwks", serve(router).await);
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let id = machine_client(&app, json!({"jwks_uri": uri})).await;
    let (status, body) = token_with(&app, &key, &id, &app.base).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ended.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ended.load(Ordering::SeqCst), "the connection was closed");
    let total = sent.load(Ordering::SeqCst);
    assert!(
        total < 16 * 1024 * 1024,
        "the body was cut near the 64 KiB cap, not read on: {total} bytes sent"
    );
}

async fn a_failed_jwks_fetch_is_not_repeated_at_once(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }
        }),
    );
    let uri = format!("http://127.0.0.1:{}/jwks", serve(router).await);
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let id = machine_client(&app, json!({"jwks_uri": uri})).await;
    let first = token_with(&app, &key, &id, &app.base).await;
    assert_eq!(first.0, 401);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    let second = token_with(&app, &key, &id, &app.base).await;
    assert_eq!(second, first, "the same answer");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "the second token request within the window did not fetch again"
    );
}

async fn a_logout_token_is_never_posted_to_an_internal_address(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (port, _) = counting_listener().await;
    let registered = format!("http://127.0.0.1:{port}/backchannel");
    let rp = app
        .portal(json!({"backchannel_logout_uri": registered}))
        .await;
    let internal = "https://169.254.169.254/backchannel";
    rewrite_metadata(&app, &rp.client_id, &registered, internal).await;
    let browser = app.sign_in("Ida", "ida@example.eu").await;
    let tokens = app.tokens_for(&rp, &browser, "openid").await;
    let hint = tokens["id_token"].as_str().unwrap();
    app.browse(Some(&browser), &format!("/logout?id_token_hint={hint}"))
        .await;

    let pool = app.app().db.pool();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let last_error = loop {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT uri, last_error FROM logout_deliveries WHERE client_id = $1")
                .bind(&rp.client_id)
                .fetch_optional(pool)
                .await
                .unwrap();
        if let Some((uri, Some(error))) = row {
            assert_eq!(uri, internal);
            break error;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt was recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        last_error.contains("link-local"),
        "refused before connecting, for its address class: {last_error}"
    );
}

on_both_stacks!(
    registration_refuses_uris_that_name_internal_addresses,
    with_an_https_issuer_loopback_and_http_are_refused_at_registration,
    a_jwks_uri_on_an_internal_address_is_answered_like_a_key_that_does_not_verify,
    a_stored_jwks_uri_on_localhost_is_never_connected_to_under_an_https_issuer,
    an_endless_jwks_is_cut_at_the_cap,
    a_failed_jwks_fetch_is_not_repeated_at_once,
    a_logout_token_is_never_posted_to_an_internal_address,
);
