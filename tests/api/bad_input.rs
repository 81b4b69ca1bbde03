//! Bad input gets a 4xx JSON error and never a 5xx; the server keeps serving;
//! an internal failure never shows its cause.

use serde_json::Value;

use crate::helpers::{REGISTRATION_TOKEN, Stack, TestApp};
use crate::on_both_stacks;

async fn post_register(app: &TestApp, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    // No connection reuse: a refused 1 MB body closes its connection.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = fresh
        .post(app.url("/register"))
        .bearer_auth(REGISTRATION_TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn malformed_bodies_get_a_json_4xx_and_the_server_keeps_serving(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let json = "application/json";
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed JSON", json, b"{\"redirect_uris\": [".to_vec(), 400),
        ("not an object", json, b"[1,2,3]".to_vec(), 400),
        ("invalid UTF-8", json, b"{\"client_name\": \"\xff\xfe\"}".to_vec(), 400),
        (
            "duplicate member",
            json,
            br#"{"redirect_uris": ["https://a.example/cb"], "redirect_uris": ["https://b.example/cb"]}"#.to_vec(),
            400,
        ),
        ("trailing data", json, br#"{"redirect_uris": ["https://a.example/cb"]} {}"#.to_vec(), 400),
        ("wrong type", json, br#"{"redirect_uris": [42]}"#.to_vec(), 400),
        ("wrong content type", "text/plain", br#"{"redirect_uris": ["https://a.example/cb"]}"#.to_vec(), 415),
        ("1 MB body", json, vec![b' '; 1024 * 1024], 413),
        ("empty body", json, Vec::new(), 400),
    ];
    for (what, content_type, body, expected) in cases {
        let (status, body) = post_register(&app, content_type, body).await;
        assert_eq!(status, expected, "{what}: {body}");
        assert!(
            body["error"].is_string(),
            "{what}: a JSON error body, got {body}"
        );
    }
    let (_, body) = post_register(&app, json, br#"{"redirect_uris": [42]}"#.to_vec()).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uris"),
        "{body}"
    );

    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(
        app.app().clients.list().await.unwrap().is_empty(),
        "nothing was written"
    );
}

async fn unknown_paths_are_404_as_json_or_as_a_page(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let res = app.get("/no/such/endpoint").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");

    let res = app
        .http
        .get(app.url("/no/such/page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"en\">") && html.contains("<h1>Page not found</h1>"),
        "{html}"
    );
}

async fn bad_authorization_headers_are_refused_cleanly(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    for value in [
        "Bearer",
        "Bearer ",
        "Basic abc",
        "bearer\tx",
        "Bearer \u{7f}",
    ] {
        let res = app
            .http
            .get(app.url("/register/some-client"))
            .header("authorization", value)
            .send()
            .await;
        let Ok(res) = res else { continue }; // the HTTP client itself refused the header
        assert!(
            res.status().is_client_error(),
            "{value:?}: {}",
            res.status()
        );
    }
}

async fn an_internal_failure_shows_only_a_request_id(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    // Break the schema under the running instance: a failure that is
    // Civitas's own (a lost connection would be a 503 naming the database).
    sqlx::query("ALTER TABLE clients RENAME TO clients_gone")
        .execute(app.app().db.pool())
        .await
        .unwrap();
    let res = app
        .register(&serde_json::json!({"redirect_uris": ["https://a.example/cb"]}))
        .await;
    assert_eq!(res.status(), 500);
    let header_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["request_id"], header_id.as_str());
    for leak in ["pool", "sqlx", "closed", "database", "postgres", "sqlite"] {
        assert!(
            !text.to_lowercase().contains(leak),
            "the cause leaked: {text}"
        );
    }

    // A database that is gone is a 503 that says so, without the cause, and
    // readiness reports it.
    app.app().db.close().await;
    let res = app
        .register(&serde_json::json!({"redirect_uris": ["https://a.example/cb"]}))
        .await;
    assert_eq!(res.status(), 503);
    let text = res.text().await.unwrap();
    assert!(text.contains("temporarily_unavailable"), "{text}");
    for leak in ["pool", "sqlx", "closed", "postgres", "sqlite"] {
        assert!(
            !text.to_lowercase().contains(leak),
            "the cause leaked: {text}"
        );
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["cache"], "ok");
}

/// The request id is always Civitas's own: a caller's `x-request-id` is
/// neither echoed, nor shown as the reference to quote, nor logged as the
/// id; it is logged apart, quoted.
async fn a_caller_chosen_request_id_is_replaced_and_logged_apart(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let logs = crate::logs::start();
    sqlx::query("ALTER TABLE clients RENAME TO clients_gone")
        .execute(app.app().db.pool())
        .await
        .unwrap();
    let res = app
        .http
        .get(app.url(
            "/authorize?client_id=someone&response_type=code&scope=openid\
             &redirect_uri=https%3A%2F%2Frp.example%2Fcb",
        ))
        .header("accept", "text/html")
        .header("x-request-id", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = res.text().await.unwrap();
    assert_ne!(id, "forged");
    assert!(html.contains("quote this reference"), "{html}");
    assert!(html.contains(&format!("<code>{id}</code>")), "{html}");
    assert!(!html.contains("forged"), "{html}");

    let res = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "forged request_id=also-forged")
        .send()
        .await
        .unwrap();
    let other = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(other != id && !other.contains("forged"), "{other}");

    let text = logs.finish();
    let line = text
        .lines()
        .find(|l| l.contains("internal error") && l.contains(&format!("request_id={id}")))
        .unwrap_or_else(|| panic!("no internal error line for {id}: {text}"));
    assert!(
        line.contains("http.request.header.x_request_id=\"forged\""),
        "{line}"
    );
    // The caller's value appears only in its own field, quoted, with its
    // space made visible, so it cannot pass for another field.
    let field_a = "http.request.header.x_request_id=\"forged\"";
    let field_b = "http.request.header.x_request_id=\"forged?request_id=also-forged\"";
    assert!(text.contains(field_b), "{text}");
    for line in text.lines().filter(|l| l.contains("forged")) {
        let rest = line.replace(field_b, "").replace(field_a, "");
        assert!(!rest.contains("forged"), "{line}");
    }
}

on_both_stacks!(
    a_caller_chosen_request_id_is_replaced_and_logged_apart,
    malformed_bodies_get_a_json_4xx_and_the_server_keeps_serving,
    unknown_paths_are_404_as_json_or_as_a_page,
    bad_authorization_headers_are_refused_cleanly,
    an_internal_failure_shows_only_a_request_id,
);

async fn every_protocol_endpoint_answers_malformed_input_with_a_4xx(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(serde_json::json!({})).await;
    let form = "application/x-www-form-urlencoded";
    let big = vec![b'a'; 1024 * 1024];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "duplicate parameter",
            b"grant_type=client_credentials&grant_type=authorization_code".to_vec(),
        ),
        ("invalid UTF-8", b"grant_type=\xff\xfe&code=\xc3".to_vec()),
        ("garbage", b"%%%&&&===".to_vec()),
        ("1 MB", big.clone()),
        ("empty", Vec::new()),
    ];
    // No connection reuse: a server that refuses a 1 MB body closes the
    // connection, and the next request must not inherit it.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for endpoint in [
        "/token",
        "/introspect",
        "/revoke",
        "/userinfo",
        "/authorize",
        "/logout",
        "/consent",
        "/logout/confirm",
    ] {
        for (what, body) in &bodies {
            let sent = fresh
                .post(app.url(endpoint))
                .basic_auth(&rp.client_id, rp.secret.as_deref())
                .header("content-type", form)
                .body(body.clone())
                .send()
                .await;
            // A server may refuse an oversized body before reading it all and
            // close the connection: that, too, is a refusal.
            let res = match sent {
                Ok(r) => r,
                Err(_) if *what == "1 MB" => continue,
                Err(e) => panic!("{endpoint} {what}: {e}"),
            };
            let status = res.status();
            assert!(
                status.is_client_error() || (endpoint == "/logout" && status == 200),
                "{endpoint} {what}: {status}"
            );
        }
        let res = app
            .http
            .post(app.url(endpoint))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_client_error() || (endpoint == "/logout" && res.status() == 200),
            "{endpoint} json: {}",
            res.status()
        );
    }
    // Oversized and malformed query strings at the browser endpoints.
    let long = "x".repeat(20_000);
    for path in [
        format!("/authorize?client_id={}&state={long}", rp.client_id),
        "/authorize?client_id=%ff%fe".to_owned(),
        "/authorize?client_id=a&client_id=b".to_owned(),
        format!("/logout?id_token_hint={long}"),
        "/authorize/resume?auth=nope".to_owned(),
        "/authorize/resume".to_owned(),
        "/consent?auth=nope".to_owned(),
    ] {
        let res = app.get(&path).await;
        assert!(
            res.status().is_client_error(),
            "{}: {}",
            &path[..path.len().min(60)],
            res.status()
        );
    }
    assert_eq!(app.get("/healthz").await.status(), 200);
}

on_both_stacks!(every_protocol_endpoint_answers_malformed_input_with_a_4xx);

#[test]
fn the_session_cookie_is_http_only_lax_host_only_and_secure_on_https() {
    let http = civitas::config::Settings::from_toml("").unwrap();
    let https =
        civitas::config::Settings::from_toml("issuer = \"https://id.example.gov\"").unwrap();
    let plain = civitas::web::session::set(&http, "v")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(plain, "civitas_session=v; Path=/; HttpOnly; SameSite=Lax");
    let secure = civitas::web::session::set(&https, "v")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        secure,
        "__Host-civitas_session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
    );
    assert!(!secure.contains("Domain"), "host-only");
}

#[tokio::test]
async fn sessions_end_after_their_idle_and_absolute_timeouts() {
    use civitas::clock::{ManualClock, UnixTime};
    use civitas::sessions::{Authentication, Sessions};
    let clock = ManualClock::new(UnixTime(1_000_000));
    let settings = civitas::config::Settings::from_toml(
        "[sessions]\nidle_timeout = \"10m\"\nabsolute_timeout = \"1h\"",
    )
    .unwrap()
    .sessions;
    let sessions = Sessions::new(
        civitas::ephemeral::Cache::open("memory", "t").unwrap(),
        std::sync::Arc::new(clock.clone()),
        settings,
    );
    let auth = Authentication {
        account_id: civitas::accounts::AccountId::new("a1"),
        amr: vec!["user".into()],
        acr: "low".into(),
        credential: None,
    };
    let (_, idle) = sessions.establish(auth.clone(), None).await.unwrap();
    clock.advance(9 * 60);
    assert!(
        sessions.current(idle.expose()).await.unwrap().is_some(),
        "use restarts the idle timer"
    );
    clock.advance(9 * 60);
    assert!(sessions.current(idle.expose()).await.unwrap().is_some());
    clock.advance(11 * 60);
    assert!(
        sessions.current(idle.expose()).await.unwrap().is_none(),
        "idle for 11 minutes"
    );

    let (_, busy) = sessions.establish(auth, None).await.unwrap();
    for _ in 0..7 {
        clock.advance(9 * 60);
        let _ = sessions.current(busy.expose()).await.unwrap();
    }
    assert!(
        sessions.current(busy.expose()).await.unwrap().is_none(),
        "past the absolute timeout, however active"
    );
}
