//! Levels of assurance: what a sign-in reaches, what a relying party may
//! demand, step-up and `unmet_authentication_requirements`; and the eID
//! binding store that identity proofing writes to.

use civitas::assurance::Level;
use civitas::eid::{self, EidError, ProvenIdentity};
use serde_json::json;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{param, redirect_params};

fn identity(person: &str, level: Level) -> ProvenIdentity {
    ProvenIdentity {
        connector: "sim".into(),
        scheme: "simulated-eid".into(),
        country: "EE".into(),
        person_identifier: person.into(),
        given_name: Some("Mari".into()),
        family_name: Some("Maasikas".into()),
        birthdate: Some("1990-05-17".into()),
        level,
    }
}

async fn one_national_identity_binds_to_one_account_and_is_stored_encrypted(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (db, keys, now) = (&app.app().db, &app.app().eid_keys, app.app().clock.now());
    let a = app.app().accounts.create("A", None).await.unwrap();
    let b = app.app().accounts.create("B", None).await.unwrap();
    eid::bind(
        db,
        keys,
        &a.id,
        &identity("38001085718", Level::Substantial),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        eid::proofing_level(db, &a.id).await.unwrap(),
        Some(Level::Substantial)
    );
    // The same person on another account: refused, nothing changes.
    let err = eid::bind(db, keys, &b.id, &identity("38001085718", Level::High), now)
        .await
        .unwrap_err();
    assert!(matches!(err, EidError::BoundElsewhere));
    assert_eq!(eid::proofing_level(db, &b.id).await.unwrap(), None);
    // Another person on the bound account: refused.
    assert!(matches!(
        eid::bind(db, keys, &a.id, &identity("49002124277", Level::High), now)
            .await
            .unwrap_err(),
        EidError::AccountBoundToOther
    ));
    // Re-proofing the same person updates the level.
    eid::bind(db, keys, &a.id, &identity("38001085718", Level::High), now)
        .await
        .unwrap();
    let binding = eid::binding(db, keys, &a.id).await.unwrap().unwrap();
    assert_eq!(binding.identity.level, Level::High);
    assert_eq!(binding.identity.person_identifier, "38001085718");
    // The identifier is stored only encrypted and hashed, never in the clear.
    let row: (String, String) = sqlx::query_as(
        "SELECT person_identifier_enc, identity_hash FROM eid_bindings WHERE account_id = $1",
    )
    .bind(a.id.as_str())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(!row.0.contains("38001085718") && !row.1.contains("38001085718"));
    assert!(
        !format!("{:?}", binding.identity).contains("38001085718"),
        "Debug hides the identifier"
    );
    let events = civitas::audit::for_account(db, &a.id, 10).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| !e.detail.to_string().contains("38001085718"))
    );
}

async fn a_demand_above_the_session_level_gets_step_up_or_unmet_requirements_never_a_lower_token(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let mut synced = SoftAuthenticator::new(&app.base, true);
    let mut b = Browser::new(&app);
    b.create_account(&mut synced, "Uno", "uno@example.eu", None)
        .await;

    // No eID: low. A demand for substantial with prompt=none: unmet.
    let (q, _) = app.auth_query(&rp, "openid", "&acr_values=substantial&prompt=none");
    let params = redirect_params(&b.get(&format!("/authorize?{q}")).await);
    assert_eq!(
        param(&params, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    assert_eq!(param(&params, "state").as_deref(), Some("st-123"));
    // Without prompt=none: the step-up page, which can only cancel here.
    let (q, _) = app.auth_query(
        &rp,
        "openid",
        "&acr_values=http%3A%2F%2Feidas.europa.eu%2FLoA%2Fsubstantial",
    );
    let page = b.page(&format!("/authorize?{q}")).await;
    assert!(
        page.contains("needs a higher level of assurance") && !page.contains("step-up-passkey"),
        "{page}"
    );
    let auth = crate::rp::hidden(&page, "auth");
    b.csrf = crate::rp::hidden(&page, "csrf");
    let res = b.post_form("/authorize/cancel", &[("auth", &auth)]).await;
    assert_eq!(
        param(&redirect_params(&res), "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    // The claims parameter with an essential acr demands the same.
    let claims =
        crate::rp::urlencode(r#"{"id_token":{"acr":{"essential":true,"values":["substantial"]}}}"#);
    let (q, _) = app.auth_query(&rp, "openid", &format!("&claims={claims}&prompt=none"));
    let params = redirect_params(&b.get(&format!("/authorize?{q}")).await);
    assert_eq!(
        param(&params, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    // An unknown level is a bad request.
    let (q, _) = app.auth_query(&rp, "openid", "&acr_values=gold");
    let params = redirect_params(&b.get(&format!("/authorize?{q}")).await);
    assert_eq!(param(&params, "error").as_deref(), Some("invalid_request"));

    // Proofed at high by eID, signed in with a synced passkey: substantial.
    crate::eid::prove_in_session(&app, &b, &identity("38001085718", Level::High)).await;
    let (status, _) = b.sign_in(&mut synced, None).await;
    assert_eq!(status, 200);
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
        "a synced passkey caps at substantial"
    );
    // A demand for high: no passkey of hers reaches it yet, so the step-up
    // page asks for an eID proof with a device-bound passkey.
    let (q, verifier) = app.auth_query(&rp, "openid", "&acr_values=high");
    let page = b.page(&format!("/authorize?{q}")).await;
    assert!(
        !page.contains("data-testid=\"step-up-passkey\"")
            && page.contains("Level high also needs a passkey that stays on one device"),
        "{page}"
    );
    let handle = crate::rp::hidden(&page, "auth");
    // The citizen adds a device-bound passkey and signs in with it: enrolled
    // in a session at substantial, it counts at substantial.
    let mut bound = SoftAuthenticator::new(&app.base, false);
    b.page("/account").await;
    let (_, begin) = b.post_json("/passkeys/register/begin", &json!({})).await;
    let cred = bound.create(&begin["options"]);
    assert_eq!(
        b.post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": cred})
        )
        .await
        .0,
        200
    );
    let (status, done) = b.sign_in(&mut bound, Some(&handle)).await;
    assert_eq!(status, 200, "{done}");
    let next = done["next"].as_str().unwrap().to_owned();
    let page = b.page(&next).await;
    assert!(page.contains("needs a higher level of assurance"), "{page}");
    // Proven at high in a session of that passkey, it reaches high: the
    // step-up page now offers it, and a sign-in with it gets the consent.
    crate::eid::prove_in_session(&app, &b, &identity("38001085718", Level::High)).await;
    let page = b.page(&next).await;
    assert!(page.contains("data-testid=\"step-up-passkey\""), "{page}");
    let (status, done) = b.sign_in(&mut bound, Some(&handle)).await;
    assert_eq!(status, 200, "{done}");
    let consent = b.page(&next).await;
    b.csrf = crate::rp::hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[
                ("auth", &crate::rp::hidden(&consent, "auth")),
                ("decision", "allow"),
            ],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let tokens: serde_json::Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let claims = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        claims["acr"],
        Level::High.uri(),
        "the ID token states the level reached"
    );
    assert_eq!(claims["amr"], json!(["user", "mfa", "hwk"]));
}

async fn a_client_registered_default_acr_values_applies_when_the_request_names_none(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let res = app
        .register(
            &json!({"redirect_uris": [crate::rp::CALLBACK], "default_acr_values": ["platinum"]}),
        )
        .await;
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    let rp = app
        .portal(json!({"default_acr_values": ["substantial"]}))
        .await;
    assert_eq!(
        rp.registration["default_acr_values"],
        json!(["substantial"])
    );
    let browser = app.sign_in("Dee", "dee@example.eu").await;
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=none");
    let params = redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await);
    assert_eq!(
        param(&params, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    // Asking explicitly for low overrides the default.
    let (q, _) = app.auth_query(&rp, "openid", "&acr_values=low");
    let res = app.browse(Some(&browser), &format!("/authorize?{q}")).await;
    assert_eq!(res.status(), 200, "consent page, not step-up");
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["acr_values_supported"].as_array().unwrap().len(), 3);
}

on_both_stacks!(
    one_national_identity_binds_to_one_account_and_is_stored_encrypted,
    a_demand_above_the_session_level_gets_step_up_or_unmet_requirements_never_a_lower_token,
    a_client_registered_default_acr_values_applies_when_the_request_names_none,
);

#[tokio::test]
async fn a_session_at_high_times_out_sooner() {
    use civitas::clock::{ManualClock, UnixTime};
    use civitas::sessions::{Authentication, Sessions};
    let clock = ManualClock::new(UnixTime(1_000_000));
    let settings = civitas::config::Settings::from_toml(
        "[sessions]\nidle_timeout = \"30m\"\nidle_timeout_high = \"10m\"",
    )
    .unwrap()
    .sessions;
    let sessions = Sessions::new(
        civitas::ephemeral::Cache::open("memory", "t").unwrap(),
        std::sync::Arc::new(clock.clone()),
        settings,
    );
    let at = |level: Level| Authentication {
        account_id: civitas::accounts::AccountId::new("a"),
        amr: vec!["user".into()],
        acr: level.uri().into(),
        credential: None,
    };
    let (_, high) = sessions.establish(at(Level::High), None).await.unwrap();
    let (_, low) = sessions.establish(at(Level::Low), None).await.unwrap();
    clock.advance(11 * 60);
    assert!(sessions.current(high.expose()).await.unwrap().is_none());
    assert!(sessions.current(low.expose()).await.unwrap().is_some());
}
