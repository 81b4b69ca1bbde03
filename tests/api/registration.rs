//! Dynamic client registration (RFC 7591) and client configuration
//! management (RFC 7592) over HTTP.

use serde_json::{Value, json};

use crate::helpers::{REGISTRATION_TOKEN, Stack, TestApp};
use crate::on_both_stacks;

fn portal() -> Value {
    json!({
        "client_name": "Permit portal",
        "redirect_uris": ["https://portal.agency.example/callback"],
        "post_logout_redirect_uris": ["https://portal.agency.example/"],
        "scope": "openid profile email",
        "contacts": ["it@agency.example"],
        "software_statement_colour": "blue",
    })
}

async fn a_portal_registers_and_gets_credentials_once(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let res = app.register(&portal()).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();

    let client_id = body["client_id"].as_str().unwrap();
    let secret = body["client_secret"].as_str().unwrap();
    assert!(
        secret.len() >= 43,
        "a 256-bit secret is at least 43 base64url characters"
    );
    assert_eq!(body["client_secret_expires_at"], 0);
    assert!(body["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        body["redirect_uris"],
        json!(["https://portal.agency.example/callback"])
    );
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(body["scope"], "openid profile email");
    assert_eq!(
        body["registration_client_uri"],
        format!("{}/register/{client_id}", app.base)
    );
    assert!(body["registration_access_token"].as_str().unwrap().len() >= 43);
    assert!(
        body.get("software_statement_colour").is_none(),
        "unknown metadata is left out"
    );

    // Stored only as a hash, yet verifiable.
    let stored = app.app().clients.get(client_id).await.unwrap().unwrap();
    assert!(stored.verify_secret(secret));
    let row: (String,) = sqlx::query_as("SELECT metadata FROM clients WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(app.app().db.pool())
        .await
        .unwrap();
    assert!(!row.0.contains(secret));
}

async fn a_machine_client_needs_no_redirect_uri(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let body = app
        .register_ok(&json!({
            "client_name": "Payment system",
            "grant_types": ["client_credentials"],
            "scope": "payments:read payments:write",
        }))
        .await;
    assert!(body.get("redirect_uris").is_none());
    assert_eq!(body["response_types"], json!([]));
    assert_eq!(body["scope"], "payments:read payments:write");
}

async fn a_public_native_client_gets_no_secret(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let body = app
        .register_ok(&json!({
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1:53117/callback"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert!(body.get("client_secret").is_none());
    assert!(body.get("client_secret_expires_at").is_none());
}

async fn invalid_metadata_is_refused_with_the_rfc_error(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let cb = json!(["https://portal.agency.example/cb"]);
    let cases = [
        (
            json!({"redirect_uris": ["http://portal.agency.example/cb"]}),
            "invalid_redirect_uri",
            "http",
        ),
        (
            json!({"redirect_uris": ["https://portal.agency.example/cb#top"]}),
            "invalid_redirect_uri",
            "fragment",
        ),
        (
            json!({"redirect_uris": ["https://*.agency.example/cb"]}),
            "invalid_redirect_uri",
            "wildcard",
        ),
        (
            json!({"redirect_uris": ["/cb"]}),
            "invalid_redirect_uri",
            "absolute",
        ),
        (
            json!({"redirect_uris": ["custom.scheme:/cb"]}),
            "invalid_redirect_uri",
            "https",
        ),
        (
            json!({"redirect_uris": []}),
            "invalid_redirect_uri",
            "at least one",
        ),
        (json!({}), "invalid_redirect_uri", "at least one"),
        (
            json!({"redirect_uris": "https://portal.agency.example/cb"}),
            "invalid_client_metadata",
            "redirect_uris",
        ),
        (
            json!({"redirect_uris": cb, "grant_types": ["implicit"]}),
            "invalid_client_metadata",
            "implicit",
        ),
        (
            json!({"redirect_uris": cb, "grant_types": ["password"]}),
            "invalid_client_metadata",
            "password",
        ),
        (
            json!({"redirect_uris": cb, "response_types": ["code id_token"]}),
            "invalid_client_metadata",
            "response type",
        ),
        (
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
            "tls_client_auth",
        ),
        (
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "jwks",
        ),
        (
            json!({"redirect_uris": cb, "jwks_uri": "https://rp.example/jwks", "jwks": {"keys": []}}),
            "invalid_client_metadata",
            "both",
        ),
        (
            json!({"redirect_uris": cb, "jwks_uri": "http://rp.example/jwks"}),
            "invalid_client_metadata",
            "jwks_uri",
        ),
        (
            json!({"redirect_uris": cb, "scope": "openid \u{7f}"}),
            "invalid_client_metadata",
            "scope",
        ),
        (
            json!({"redirect_uris": cb, "subject_type": "public"}),
            "invalid_client_metadata",
            "operator",
        ),
        (
            json!({"redirect_uris": cb, "id_token_signed_response_alg": "none"}),
            "invalid_client_metadata",
            "none",
        ),
        (
            json!({"redirect_uris": cb, "client_uri": "javascript:alert(1)"}),
            "invalid_client_metadata",
            "client_uri",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
            "public",
        ),
        (
            json!({"grant_types": ["refresh_token"]}),
            "invalid_client_metadata",
            "authorization_code",
        ),
    ];
    for (metadata, code, hint) in cases {
        let res = app.register(&metadata).await;
        assert_eq!(res.status(), 400, "{metadata}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], code, "{metadata}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains(hint),
            "{metadata}: `{description}` should mention `{hint}`"
        );
    }
    assert!(
        app.app().clients.list().await.unwrap().is_empty(),
        "nothing half-registered"
    );
}

async fn registration_without_the_initial_access_token_is_unauthorised(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let url = app.url("/register");
    let none = app.http.post(&url).json(&portal()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .http
        .post(&url)
        .bearer_auth("not-the-token-0123456789")
        .json(&portal())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let basic = app
        .http
        .post(&url)
        .basic_auth("a", Some("b"))
        .json(&portal())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    assert!(app.app().clients.list().await.unwrap().is_empty());
}

async fn the_client_reads_updates_and_deletes_its_registration(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let reg = app.register_ok(&portal()).await;
    let uri = reg["registration_client_uri"].as_str().unwrap().to_owned();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let mut token = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Read: the same metadata, and a new token replacing the old one.
    let read = app.http.get(&uri).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["client_id"], client_id.as_str());
    assert_eq!(body["redirect_uris"], reg["redirect_uris"]);
    assert!(
        body.get("client_secret").is_none(),
        "the secret is never shown again"
    );
    let new_token = body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, token);
    let stale = app.http.get(&uri).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        stale.status(),
        401,
        "the old registration token is discarded"
    );
    token = new_token;

    // Update: replace the metadata.
    let update = json!({
        "client_id": client_id,
        "client_name": "Permit portal (new)",
        "redirect_uris": ["https://portal.agency.example/cb2"],
        "client_secret": reg["client_secret"],
    });
    let res = app
        .http
        .put(&uri)
        .bearer_auth(&token)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["client_name"], "Permit portal (new)");
    assert_eq!(
        body["redirect_uris"],
        json!(["https://portal.agency.example/cb2"])
    );
    assert!(
        body.get("contacts").is_none(),
        "an update replaces, it does not merge"
    );
    token = body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Update refusals (RFC 7592 §2.2).
    for (bad, why) in [
        (
            json!({"redirect_uris": ["https://portal.agency.example/cb"]}),
            "no client_id",
        ),
        (
            json!({"client_id": "someone-else", "redirect_uris": ["https://portal.agency.example/cb"]}),
            "other client_id",
        ),
        (
            json!({"client_id": client_id, "redirect_uris": ["https://portal.agency.example/cb"], "registration_access_token": "x"}),
            "token in body",
        ),
        (
            json!({"client_id": client_id, "redirect_uris": ["https://portal.agency.example/cb"], "client_secret": "wrong"}),
            "wrong secret",
        ),
        (
            json!({"client_id": client_id, "redirect_uris": ["http://evil.example/cb"]}),
            "invalid redirect",
        ),
    ] {
        let res = app
            .http
            .put(&uri)
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{why}");
    }
    let unchanged = app.app().clients.get(&client_id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.metadata.client_name.as_deref(),
        Some("Permit portal (new)")
    );

    // Another client's token does not open this one.
    let other = app.register_ok(&portal()).await;
    let res = app
        .http
        .get(&uri)
        .bearer_auth(other["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Delete.
    let res = app
        .http
        .delete(&uri)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(app.app().clients.get(&client_id).await.unwrap().is_none());
    let res = app.http.get(&uri).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401, "a deleted client's token opens nothing");
    let res = app
        .http
        .get(app.url("/register/no-such-client"))
        .bearer_auth(REGISTRATION_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "unknown client and wrong token look the same"
    );
}

on_both_stacks!(
    a_portal_registers_and_gets_credentials_once,
    a_machine_client_needs_no_redirect_uri,
    a_public_native_client_gets_no_secret,
    invalid_metadata_is_refused_with_the_rfc_error,
    registration_without_the_initial_access_token_is_unauthorised,
    the_client_reads_updates_and_deletes_its_registration,
);

#[tokio::test]
async fn registration_is_closed_without_a_configured_initial_access_token() {
    let env = crate::helpers::TestEnv::new(Stack::Embedded).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = env.settings(port, "");
    settings.registration_token = None;
    let server = civitas::startup::start_on(
        listener,
        settings,
        std::sync::Arc::new(civitas::clock::SystemClock),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{base}/register"))
        .bearer_auth("")
        .json(&portal())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .post(format!("{base}/register"))
        .bearer_auth(REGISTRATION_TOKEN)
        .json(&portal())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let discovery: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        discovery.get("registration_endpoint").is_none(),
        "a closed endpoint is not advertised"
    );
    server.shutdown().await.unwrap();
}
