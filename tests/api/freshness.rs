//! Freshness is checked once (protocol review M2): `max_age` and
//! `prompt=login` are met by the sign-in made for the request, and the
//! consent page and the chooser never send the citizen back to sign in
//! again, however long they take.

use std::sync::Arc;

use civitas::clock::{Clock as _, ManualClock, SystemClock};
use serde_json::json;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestEnv};
use crate::on_both_stacks;
use crate::rp::{hidden, param, redirect_params};

async fn a_first_visit_with_max_age_zero_signs_in_once_and_consents_once(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = env.spawn_with(clock.clone(), "").await;
    let rp = app.portal(json!({})).await;
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Ada", "ada@example.eu", None)
        .await;
    clock.advance(3_600);

    // max_age=0: the session from an hour ago does not count; sign in.
    let (q, verifier) = app.auth_query(&rp, "openid", "&max_age=0");
    let res = b.get(&format!("/authorize?{q}")).await;
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/signin?auth="), "{to}");
    let handle = to["/signin?auth=".len()..].to_owned();
    b.page(&to).await;
    let (status, done) = b.sign_in(&mut key, Some(&handle)).await;
    assert_eq!(status, 200, "{done}");
    // The citizen reads the consent page for two minutes.
    clock.advance(60);
    let consent = b.page(done["next"].as_str().unwrap()).await;
    assert!(consent.contains("consent-allow"), "{consent}");
    clock.advance(60);
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form("/consent", &[("auth", &handle), ("decision", "allow")])
        .await;
    let params = redirect_params(&res);
    let code = param(&params, "code").unwrap_or_else(|| panic!("a code, not {params:?}"));
    let tokens: serde_json::Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let claims = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(
        claims["auth_time"].as_i64().unwrap() >= clock.now().0 - 120,
        "the sign-in made for this request"
    );
}

async fn max_age_is_measured_when_the_request_arrives(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = env.spawn_with(clock.clone(), "").await;
    let rp = app.portal(json!({})).await;
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Ada", "ada@example.eu", None)
        .await;
    // Signed in 100 s ago, max_age=300: the session counts…
    clock.advance(100);
    let (q, _) = app.auth_query(&rp, "openid", "&max_age=300");
    let consent = b.page(&format!("/authorize?{q}")).await;
    assert!(consent.contains("consent-allow"), "{consent}");
    // …and still does when the citizen answers after 300 s more.
    clock.advance(300);
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    assert!(
        param(&redirect_params(&res), "code").is_some(),
        "{:?}",
        res.headers().get("location")
    );
    // A request that arrives when the session is older than max_age still
    // asks for a sign-in.
    clock.advance(10);
    let (q, _) = app.auth_query(&rp, "openid", "&max_age=300&prompt=consent");
    let res = b.get(&format!("/authorize?{q}")).await;
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/signin?auth="), "{to}");
}

async fn prompt_login_is_met_by_one_sign_in_however_long_consent_takes(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = env.spawn_with(clock.clone(), "").await;
    let rp = app.portal(json!({})).await;
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Ada", "ada@example.eu", None)
        .await;
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=login");
    let res = b.get(&format!("/authorize?{q}")).await;
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/signin?auth="), "a new sign-in: {to}");
    let handle = to["/signin?auth=".len()..].to_owned();
    b.page(&to).await;
    let (_, done) = b.sign_in(&mut key, Some(&handle)).await;
    clock.advance(600);
    let consent = b.page(done["next"].as_str().unwrap()).await;
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form("/consent", &[("auth", &handle), ("decision", "allow")])
        .await;
    assert!(
        param(&redirect_params(&res), "code").is_some(),
        "{:?}",
        res.headers().get("location")
    );
}

on_both_stacks!(
    a_first_visit_with_max_age_zero_signs_in_once_and_consents_once,
    max_age_is_measured_when_the_request_arrives,
    prompt_login_is_met_by_one_sign_in_however_long_consent_takes,
);
