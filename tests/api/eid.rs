//! eID enrollment against the development simulator as a real upstream over
//! HTTP: binding, levels, step-up through eID, upstream failures and eID
//! recovery.

use std::sync::Arc;

use civitas::assurance::Level;
use civitas::clock::SystemClock;
use civitas_eid_simulator::{self as simulator, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;
use crate::rp::{hidden, param, redirect_params};

/// Civitas with one connector, and the simulator it points at.
pub async fn with_simulator(stack: Stack) -> Option<(TestApp, RunningSimulator)> {
    with_simulator_and(stack, "").await
}

/// As [`with_simulator`], with `connector` TOML added to the connector's table.
pub async fn with_simulator_and(
    stack: Stack,
    connector: &str,
) -> Option<(TestApp, RunningSimulator)> {
    let env = TestEnv::new(stack).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Another site than Civitas (`http://localhost:PORT`), as a real eID provider is.
    let sim_issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let extra = format!(
        "[[eid.connectors]]\nid = \"sim\"\nname = \"Test eID\"\nissuer = \"{sim_issuer}\"\nclient_id = \"civitas\"\n\
         scheme = \"simulated-eid\"\ncountry = \"EE\"\n{connector}\n"
    );
    let app = env.spawn_with(Arc::new(SystemClock), &extra).await;
    let sim = simulator::start(
        listener,
        SimulatorConfig {
            issuer: sim_issuer,
            fixtures: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/eid-identities.json"),
            keys_dir: app.env.dir.path().join("simulator-keys"),
            client_id: "civitas".into(),
            redirect_uri: format!("{}/eid/callback", app.base),
            client_jwks_uri: format!("{}/eid/jwks", app.base),
        },
    )
    .await
    .unwrap();
    Some((app, sim))
}

/// Goes from `start` (a Civitas path) through the simulator's page, choosing
/// `identity`, `level`, `fault` and approving (or cancelling); the response
/// of Civitas's callback.
pub(crate) async fn through_eid(
    b: &mut Browser<'_>,
    start: &str,
    identity: &str,
    level: &str,
    fault: &str,
    approve: bool,
) -> reqwest::Response {
    let callback = to_callback(b, start, identity, level, fault, approve).await;
    b.get(&callback).await
}

/// As [`through_eid`], but stops at the upstream's redirect back: the
/// callback's path, not yet delivered to Civitas.
pub(crate) async fn to_callback(
    b: &mut Browser<'_>,
    start: &str,
    identity: &str,
    level: &str,
    fault: &str,
    approve: bool,
) -> String {
    let res = b.get(start).await;
    assert_eq!(res.status(), 303, "{start}");
    let upstream = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        upstream.contains("code_challenge_method=S256") && upstream.contains("nonce="),
        "{upstream}"
    );
    let page = b
        .app
        .http
        .get(&upstream)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request = hidden(&page, "request");
    let sim_base = upstream.split("/authorize").next().unwrap().to_owned();
    let res = b
        .app
        .http
        .post(format!("{sim_base}/authorize/select"))
        .form(&[
            ("request", request.as_str()),
            ("identity", identity),
            ("level", level),
            ("fault", fault),
            ("action", if approve { "approve" } else { "deny" }),
        ])
        .send()
        .await
        .unwrap();
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&b.app.base), "{callback}");
    callback[b.app.base.len()..].to_owned()
}

/// What the eID callback does, for tests without an upstream: binds
/// `identity` to the account of the browser's session and raises the
/// ceiling of the passkey that session signed in with (an eID proof made in
/// a session of a passkey is what lets that passkey count at its level).
pub(crate) async fn prove_in_session(
    app: &TestApp,
    b: &Browser<'_>,
    identity: &civitas::eid::ProvenIdentity,
) -> civitas::accounts::AccountId {
    let session = app
        .app()
        .sessions
        .current(b.session_cookie().expect("a session cookie"))
        .await
        .unwrap()
        .expect("a live session");
    civitas::eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &session.account_id,
        identity,
        civitas::clock::Clock::now(app.app().clock.as_ref()),
    )
    .await
    .unwrap();
    if let Some(credential) = &session.credential {
        app.app()
            .passkeys
            .raise_level(&session.account_id, credential, identity.level)
            .await
            .unwrap();
    }
    session.account_id
}

pub(crate) async fn signed_up(
    app: &TestApp,
    device_bound: bool,
) -> (Browser<'_>, SoftAuthenticator, civitas::accounts::AccountId) {
    let mut key = SoftAuthenticator::new(&app.base, !device_bound);
    let mut b = Browser::new(app);
    b.create_account(&mut key, "Mari", "mari@example.eu", None)
        .await;
    let account = b.account_id().await;
    (b, key, account)
}

async fn a_citizen_enrolls_at_substantial_then_re_proofs_at_high(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, account) = signed_up(&app, true).await;
    let page = b.page("/account").await;
    assert!(page.contains("data-testid=\"eid-enroll-sim\""));
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=eid-bound")
    );
    let db = &app.app().db;
    assert_eq!(
        civitas::eid::proofing_level(db, &account).await.unwrap(),
        Some(Level::Substantial)
    );
    let session = app
        .app()
        .sessions
        .current(b.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.acr,
        Level::Substantial.uri(),
        "the session's level rises at once"
    );
    assert!(
        b.page("/account")
            .await
            .contains("Proven with simulated-eid at level <strong>substantial</strong>")
    );
    let binding = civitas::eid::binding(db, &app.app().eid_keys, &account)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        binding.identity.person_identifier, "38001085718",
        "stored canonical: the simulator's EE prefix is gone"
    );
    assert_eq!(binding.identity.given_name.as_deref(), Some("Mari"));
    assert_eq!(binding.identity.country, "EE");

    // A relying party demanding substantial now gets it.
    let rp = app.portal(json!({})).await;
    let (q, verifier) = app.auth_query(&rp, "openid", "&acr_values=substantial");
    let consent = b.page(&format!("/authorize?{q}")).await;
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let tokens: Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap())["acr"],
        Level::Substantial.uri()
    );

    // Re-proofing at high updates the binding; with a device-bound passkey, high.
    b.page("/account").await;
    through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "high",
        "",
        true,
    )
    .await;
    assert_eq!(
        civitas::eid::proofing_level(db, &account).await.unwrap(),
        Some(Level::High)
    );
    let session = app
        .app()
        .sessions
        .current(b.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.acr, Level::High.uri());
    // One entry per proofing, naming scheme, country and level only.
    let bound: Vec<_> = crate::audit::since(db, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "eid.bound")
        .collect();
    assert_eq!(bound.len(), 2);
    assert_eq!(bound[0].detail["reproofed"], false);
    assert_eq!(bound[0].fact("level"), Some("substantial"));
    assert_eq!(bound[1].detail["reproofed"], true);
    assert_eq!(bound[1].fact("level"), Some("high"));
    assert_eq!(bound[1].fact("country"), Some("EE"));
}

async fn every_upstream_failure_ends_in_a_clear_page_and_no_binding(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, account) = signed_up(&app, true).await;
    for fault in [
        "bad_state",
        "wrong_nonce",
        "bad_signature",
        "expired",
        "wrong_issuer",
    ] {
        let res = through_eid(
            &mut b,
            "/account/eid/start?connector=sim",
            "mari",
            "substantial",
            fault,
            true,
        )
        .await;
        assert_eq!(res.status(), 400, "{fault}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("Your eID could not be used") && html.contains("Nothing was changed"),
            "{fault}: {html}"
        );
    }
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        false,
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("access_denied"));
    assert_eq!(
        civitas::eid::proofing_level(&app.app().db, &account)
            .await
            .unwrap(),
        None,
        "nothing was bound"
    );
    // A replayed callback finds no flow.
    let res = b.get("/eid/callback?code=abc&state=forged").await;
    assert_eq!(res.status(), 400);
    assert_eq!(crate::audit::count(&app.app().db, "eid.bound").await, 0);
    let res = b.get("/account/eid/start?connector=nope").await;
    assert_eq!(res.status(), 404);
}

async fn an_identity_bound_to_another_account_is_refused_and_changes_nothing(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut first, _k1, _a1) = signed_up(&app, true).await;
    through_eid(
        &mut first,
        "/account/eid/start?connector=sim",
        "jaan",
        "substantial",
        "",
        true,
    )
    .await;
    let (mut second, _k2, a2) = signed_up(&app, true).await;
    let res = through_eid(
        &mut second,
        "/account/eid/start?connector=sim",
        "jaan",
        "high",
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("already bound to another Civitas account")
    );
    assert_eq!(
        civitas::eid::proofing_level(&app.app().db, &a2)
            .await
            .unwrap(),
        None
    );
    let session = app
        .app()
        .sessions
        .current(second.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.acr, Level::Low.uri());
    assert_eq!(
        crate::audit::count(&app.app().db, "eid.bound").await,
        1,
        "the refused binding wrote no entry"
    );
}

async fn step_up_through_eid_continues_the_sign_in(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, _account) = signed_up(&app, false).await;
    let rp = app.portal(json!({})).await;
    let (q, verifier) = app.auth_query(&rp, "openid", "&acr_values=substantial");
    let page = b.page(&format!("/authorize?{q}")).await;
    assert!(page.contains("data-testid=\"step-up-eid-sim\""), "{page}");
    let handle = hidden(&page, "auth");
    let res = through_eid(
        &mut b,
        &format!("/account/eid/start?connector=sim&auth={handle}"),
        "anne",
        "high",
        "",
        true,
    )
    .await;
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("/authorize/resume?auth={handle}")
    );
    let consent = b.page(&format!("/authorize/resume?auth={handle}")).await;
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let tokens: Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let claims = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        claims["acr"],
        Level::Substantial.uri(),
        "proofed at high, but a synced passkey caps at substantial"
    );
    // The step-up: demanded once, succeeded once; then the release.
    let outcomes: Vec<(String, Option<String>)> = crate::audit::since(&app.app().db, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "stepup")
        .map(|e| (e.fact("outcome").unwrap().to_owned(), e.client_id))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("required".to_owned(), Some(rp.client_id.clone())),
            ("succeeded".to_owned(), Some(rp.client_id.clone()))
        ]
    );
    let released = crate::audit::since(&app.app().db, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "claims.released")
        .collect::<Vec<_>>();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].fact("acr"), Some(Level::Substantial.uri()));
}

async fn a_citizen_who_lost_every_passkey_recovers_with_the_same_eid(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _lost, account) = signed_up(&app, true).await;
    through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    // On a new device, with nothing.
    let mut fresh = Browser::new(&app);
    assert!(
        fresh
            .page("/recover")
            .await
            .contains("data-testid=\"eid-recover-sim\"")
    );
    let res = through_eid(
        &mut fresh,
        "/recover/eid?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    assert_eq!(res.headers()["location"].to_str().unwrap(), "/account");
    let session = app
        .app()
        .sessions
        .current(fresh.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(session.restricted && session.account_id == account);
    let mut new_key = SoftAuthenticator::new(&app.base, false);
    fresh.page("/account").await;
    let (_, begin) = fresh
        .post_json("/passkeys/register/begin", &json!({}))
        .await;
    let (status, _) = fresh
        .post_json("/passkeys/register/finish", &json!({"ceremony": begin["ceremony"], "credential": new_key.create(&begin["options"])}))
        .await;
    assert_eq!(status, 200);
    assert!(
        !app.app()
            .sessions
            .current(fresh.session_cookie().unwrap())
            .await
            .unwrap()
            .unwrap()
            .restricted
    );
    // Another person's eID recovers nothing.
    let mut stranger = Browser::new(&app);
    let res = through_eid(
        &mut stranger,
        "/recover/eid?connector=sim",
        "jaan",
        "substantial",
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 404);
    assert!(stranger.session_cookie().is_none());
    let recoveries = crate::audit::since(&app.app().db, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "eid.recovery")
        .collect::<Vec<_>>();
    assert_eq!(recoveries.len(), 1, "only the recovery that happened");
    assert_eq!(recoveries[0].account_id.as_deref(), Some(account.as_str()));
}

on_both_stacks!(
    a_citizen_enrolls_at_substantial_then_re_proofs_at_high,
    every_upstream_failure_ends_in_a_clear_page_and_no_binding,
    an_identity_bound_to_another_account_is_refused_and_changes_nothing,
    step_up_through_eid_continues_the_sign_in,
    a_citizen_who_lost_every_passkey_recovers_with_the_same_eid,
);

async fn an_eid_response_delivered_to_another_browser_is_refused(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut owner, _key, _account) = signed_up(&app, true).await;
    through_eid(
        &mut owner,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    // The attacker starts a recovery with their own eID, then gets the
    // victim's browser to open the callback (login CSRF).
    let mut attacker = Browser::new(&app);
    attacker.page("/recover").await;
    let res = attacker.get("/recover/eid?connector=sim").await;
    let upstream = res.headers()["location"].to_str().unwrap().to_owned();
    let page = app
        .http
        .get(&upstream)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sim_base = upstream.split("/authorize").next().unwrap().to_owned();
    let res = app
        .http
        .post(format!("{sim_base}/authorize/select"))
        .form(&[
            ("request", hidden(&page, "request").as_str()),
            ("identity", "mari"),
            ("level", "substantial"),
            ("fault", ""),
            ("action", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    let mut victim = Browser::new(&app);
    victim.page("/signin").await;
    let res = victim.get(&callback[app.base.len()..]).await;
    assert_eq!(res.status(), 400);
    assert!(
        victim.session_cookie().is_none(),
        "the victim's browser is not signed in to anything"
    );
}

on_both_stacks!(an_eid_response_delivered_to_another_browser_is_refused);
