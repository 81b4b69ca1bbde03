//! Discovery, JWKS, health and readiness.

use serde_json::Value;

use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

async fn the_jwks_publishes_public_keys_a_relying_party_library_accepts(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let res = app.get("/jwks").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
    let text = res.text().await.unwrap();
    let jwks: openidconnect::core::CoreJsonWebKeySet = serde_json::from_str(&text).unwrap();
    assert_eq!(jwks.keys().len(), civitas::keys::Alg::ALL.len());
    let raw: Value = serde_json::from_str(&text).unwrap();
    let algs: Vec<&str> = raw["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"RS256"),
        "{algs:?}"
    );
    for key in raw["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                key.get(private).is_none(),
                "private member `{private}` published"
            );
        }
        assert!(
            key["kid"].as_str().is_some_and(|k| k.len() == 43),
            "RFC 7638 thumbprint kid"
        );
    }
}

async fn the_discovery_document_names_this_issuer_and_its_endpoints(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], app.base.as_str());
    assert_eq!(doc["jwks_uri"], app.url("/jwks"));
    assert_eq!(doc["registration_endpoint"], app.url("/register"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc,
        app.get_json("/.well-known/oauth-authorization-server")
            .await
    );
    // Every advertised endpoint exists on this server.
    for (name, url) in doc.as_object().unwrap() {
        if name.ends_with("_endpoint") || name == "jwks_uri" {
            let res = app
                .get(url.as_str().unwrap().trim_start_matches(&app.base))
                .await;
            assert_ne!(res.status(), 404, "{name} is advertised but not served");
        }
    }
}

async fn health_and_readiness_report_the_dependencies(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    assert_eq!(app.get("/healthz").await.status(), 200);
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "database": "ok", "cache": "ok"})
    );
}

on_both_stacks!(
    the_jwks_publishes_public_keys_a_relying_party_library_accepts,
    the_discovery_document_names_this_issuer_and_its_endpoints,
    health_and_readiness_report_the_dependencies,
);

#[tokio::test]
async fn readiness_names_an_unreachable_cache() {
    // Nothing listens on port 1: the instance starts, but is not ready.
    let env = TestEnv::new(Stack::Embedded).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = env.settings(port, "");
    settings.cache_url = "redis://127.0.0.1:1".into();
    let server = civitas::startup::start_on(
        listener,
        settings,
        std::sync::Arc::new(civitas::clock::SystemClock),
    )
    .await
    .unwrap();
    let res = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["cache"], "unavailable");
    assert_eq!(body["database"], "ok");
    let res = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "alive, though not ready");
    server.shutdown().await.unwrap();
}

/// With `drain_delay`, a stopping instance first says `draining` at /readyz
/// while it still serves, then closes its listener.
#[tokio::test]
async fn a_stopping_instance_drains_before_it_closes() {
    let Some(env) = TestEnv::new(Stack::Embedded).await else {
        return;
    };
    let app = env
        .spawn_with(
            std::sync::Arc::new(civitas::clock::SystemClock),
            "drain_delay = \"2s\"",
        )
        .await;
    let (http, url) = (app.http.clone(), app.url(""));
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let res = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "draining");
    let res = http
        .get(format!("{url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "still serving while draining");
    stopping.await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "the listener is closed after the delay"
    );
}
