//! RP-Initiated Logout and Back-Channel Logout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{jwt_claims, jwt_header, param, redirect_params};

/// A relying party's back-channel logout endpoint that fails its first
/// `fail_first` calls (a briefly unavailable RP), then records tokens.
async fn logout_receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (r, c) = (received.clone(), calls.clone());
    let router = axum::Router::new().route(
        "/backchannel",
        post(
            move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let (r, c) = (r.clone(), c.clone());
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) < fail_first {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    r.lock().unwrap().push(form["logout_token"].clone());
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/backchannel",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received, calls)
}

async fn logout_with_id_token_hint_ends_the_session_and_notifies_relying_parties(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (uri, received, calls) = logout_receiver(2).await;
    let rp = app
        .portal(json!({"backchannel_logout_uri": uri, "backchannel_logout_session_required": true}))
        .await;
    let browser = app.sign_in("Lea", "lea@example.eu").await;
    let tokens = app.tokens_for(&rp, &browser, "openid").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sub = jwt_claims(id_token)["sub"].clone();

    let res = app
        .browse(
            Some(&browser),
            &format!(
                "/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
                crate::rp::urlencode("https://portal.agency.example/signed-out")
            ),
        )
        .await;
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let params = redirect_params(&res);
    assert_eq!(param(&params, "state").as_deref(), Some("bye"));
    assert!(
        app.app()
            .sessions
            .current(&browser.cookie)
            .await
            .unwrap()
            .is_none(),
        "the session is gone"
    );
    let res = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "tokens of the session are revoked");
    // prompt=none now finds no session.
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=none");
    let params = redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await);
    assert_eq!(param(&params, "error").as_deref(), Some("login_required"));

    // The RP was down twice; the durable queue retried until it answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tokens = received.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1, "delivered exactly once");
    assert!(calls.load(Ordering::SeqCst) >= 3);
    let logout_token = &tokens[0];
    assert_eq!(jwt_header(logout_token)["typ"], "logout+jwt");
    let (_, claims) = app.app().keys.verify(logout_token).unwrap();
    assert_eq!(claims["sid"], browser.sid.as_str());
    assert_eq!(claims["sub"], sub);
    assert_eq!(claims["aud"], rp.client_id.as_str());
    assert!(
        claims["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some()
    );
    assert!(claims.get("nonce").is_none());
}

async fn logout_without_a_hint_asks_first_and_never_redirects_to_unregistered_uris(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Mo", "mo@example.eu").await;
    // An unregistered post-logout URI: confirmation page, then no redirect.
    let res = app
        .browse(
            Some(&browser),
            &format!(
                "/logout?client_id={}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F",
                rp.client_id
            ),
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("data-testid=\"logout-confirm\""));
    assert!(
        app.app()
            .sessions
            .current(&browser.cookie)
            .await
            .unwrap()
            .is_some(),
        "nothing happens before confirmation"
    );
    let handle = crate::rp::hidden(&html, "handle");
    let csrf = crate::rp::hidden(&html, "csrf");
    let forged = app
        .browse_post(
            Some(&browser),
            "/logout/confirm",
            &[("handle", &handle), ("csrf", "forged")],
        )
        .await;
    assert_eq!(forged.status(), 400);
    assert!(
        app.app()
            .sessions
            .current(&browser.cookie)
            .await
            .unwrap()
            .is_some()
    );
    // The forged attempt used up the handle; ask again and confirm properly.
    let res = app
        .browse(
            Some(&browser),
            &format!("/logout?client_id={}", rp.client_id),
        )
        .await;
    let html = res.text().await.unwrap();
    let (handle, csrf2) = (
        crate::rp::hidden(&html, "handle"),
        crate::rp::hidden(&html, "csrf"),
    );
    assert_ne!(csrf, csrf2);
    let done = app
        .browse_post(
            Some(&browser),
            "/logout/confirm",
            &[("handle", &handle), ("csrf", &csrf2)],
        )
        .await;
    assert_eq!(done.status(), 200, "signed-out page, no redirect");
    assert!(done.text().await.unwrap().contains("You are signed out"));
    assert!(
        app.app()
            .sessions
            .current(&browser.cookie)
            .await
            .unwrap()
            .is_none()
    );
    // A bad hint is refused with a page.
    let res = app
        .browse(None, "/logout?id_token_hint=forged.token.value")
        .await;
    assert_eq!(res.status(), 400);
}

async fn an_expired_id_token_hint_is_still_accepted(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Nia", "nia@example.eu").await;
    let tokens = app.tokens_for(&rp, &browser, "openid").await;
    let mut claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    claims["exp"] = json!(1);
    let expired = app
        .app()
        .keys
        .sign(civitas::keys::Alg::RS256, "JWT", &claims)
        .unwrap();
    let res = app
        .browse(
            Some(&browser),
            &format!(
                "/logout?id_token_hint={expired}&post_logout_redirect_uri={}",
                crate::rp::urlencode("https://portal.agency.example/signed-out")
            ),
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "https://portal.agency.example/signed-out"
    );
    let _: Value = json!(null);
}

on_both_stacks!(
    logout_with_id_token_hint_ends_the_session_and_notifies_relying_parties,
    logout_without_a_hint_asks_first_and_never_redirects_to_unregistered_uris,
    an_expired_id_token_hint_is_still_accepted,
);
